"""Snippets for alerts: a plain-text window around a match's first hit, with the hits'
spans inside it (``monitor.match`` finds the hits)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .types import Hit

_SPACE = re.compile(r"\s")


def make_snippet(text: str, hits: Sequence[Hit], field: str = "body",
                 width: int = 280) -> tuple[str, tuple[tuple[int, int], ...]]:  # fmt: skip
    """Cut a plain-text window of about ``width`` characters around the first hit.

    Args:
        text: the field's original text (the string the hits' offsets point into).
        hits: hits of a match; only those of ``field`` are used.
        field: ``title``, ``body`` or ``source``.
        width: the length to aim for; a hit longer than that is kept whole.

    Returns:
        The snippet (cut at word boundaries, ``…`` where text was cut, whitespace shown
        as spaces) and the spans of the hits inside it, merged and sorted, as offsets
        into the snippet.
    """
    spans = sorted((h.start, h.end) for h in hits
                   if h.field == field and 0 <= h.start < h.end <= len(text))  # fmt: skip
    start, end = _window(text, spans[0] if spans else (0, 0), width)
    head = "…" if start > 0 else ""
    body = _SPACE.sub(" ", text[start:end])
    snippet = head + body + ("…" if end < len(text) else "")
    shift = len(head) - start
    inside = [
        (max(s, start) + shift, min(e, end) + shift) for s, e in spans if s < end and e > start
    ]
    return snippet, _merge(inside)


def _window(text: str, first: tuple[int, int], width: int) -> tuple[int, int]:
    """Where to cut: some context before the first hit, cut between words if possible."""
    start = max(0, first[0] - width // 4)
    if start > 0 and not text[start - 1].isspace():
        gap = _SPACE.search(text, start, first[0])
        start = gap.end() if gap else start
    end = min(len(text), max(start + width, first[1]))
    if end < len(text) and not text[end].isspace():
        gaps = [m.start() for m in _SPACE.finditer(text, first[1], end)]
        end = gaps[-1] if gaps else end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _merge(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)
