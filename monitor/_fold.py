"""Text folding for matching (issue 4): :func:`normalise` folds query words and article
text alike, and keeps what it needs to map a position in the folded text back to the
original string. The folding rules are described in :mod:`monitor.match`.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from functools import lru_cache
from itertools import accumulate, repeat
from operator import sub
from typing import Protocol

__all__ = ["Normalised", "core", "is_unspaced", "normalise", "word_count"]

# Scripts written without spaces between words: Thai, Lao, Myanmar, Hangul jamo, Khmer,
# CJK radicals, 々〆〇, kana, bopomofo, CJK ideographs, Hangul syllables.
_U = (
    "\u0e00-\u0eff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u2e80-\u2fdf\u3005-\u3007"
    "\u3021-\u3029\u3031-\u3035\u303b\u303c\u3040-\u30ff\u3100-\u312f\u3130-\u318f"
    "\u31a0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff"
    "\U00020000-\U0003134f"
)
_UNSPACED_CHAR = re.compile(f"[{_U}]")
# After folding, a text holds only word characters, "." and " ".
_SCRIPT_CHANGE = re.compile(f"([{_U}])(?=[^ .{_U}])|([^ .{_U}])(?=[{_U}])")
_ABBREVIATION_DOT = re.compile(r"\.(?<=(?<![^ .])[a-z]\.)(?=[a-z](?![^ .]))")
_CJK_GAP = re.compile(f"([{_U}]) +(?=[{_U}])")
_SPACES = re.compile("  +")
_TOKEN_START = re.compile(f"(?<= )[^ ]|[{_U}]")
_KANA_MARKS = "\u3099\u309a"

_TABLE: dict[int, str] = {}  # ord -> folded text, for the characters that change
_SEEN: set[str] = set()  # characters already folded into _TABLE
_SLOW: set[str] = set()  # characters that do not fold to exactly one character
_UNSPACED: set[str] = set()  # characters that fold to an unspaced-script character


def is_unspaced(char: str) -> bool:
    """Whether ``char`` belongs to a script written without spaces (CJK, Thai, ...)."""
    return _UNSPACED_CHAR.match(char) is not None


@lru_cache(maxsize=65536)
def _fold(cluster: str) -> str:
    """Fold one character (with its combining marks): NFKC, casefold, no accents."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", cluster).casefold())
    text = "".join(c for c in text if c in _KANA_MARKS or not unicodedata.combining(c))
    out = "".join(_fold_class(c) for c in unicodedata.normalize("NFC", text))
    return out if len(out) <= 1 or out.strip(" .") else " "


def _fold_class(char: str) -> str:
    """Letters, digits and marks stay; format characters (soft hyphen, zero-width joiners,
    direction marks) vanish; the dot waits for the abbreviation rule; the rest separates."""
    kind = unicodedata.category(char)
    if kind[0] in "LNM" or char == ".":
        return char
    return "" if kind == "Cf" else " "


def _is_mark(char: str) -> bool:
    return unicodedata.category(char)[0] == "M" or char in "\uff9e\uff9f"


def _learn(chars: set[str]) -> None:
    for char in chars - _SEEN:
        folded = _fold(char)
        if folded != char:
            _TABLE[ord(char)] = folded
        if len(folded) != 1 or _is_mark(char):
            _SLOW.add(char)
        if _UNSPACED_CHAR.search(folded):
            _UNSPACED.add(char)
        _SEEN.add(char)


_learn({chr(i) for i in range(128)})


class _Back(Protocol):
    def back(self, pos: int) -> int: ...


class _Edits:
    """Maps positions after ``rx.sub`` back to ``source``; built only when asked.

    Match ``k`` spans ``starts[k]:ends[k]`` of the source and its replacement, ``width``
    characters long, begins at ``outs[k]`` of the output.
    """

    __slots__ = ("_ends", "_outs", "_rx", "_source", "_starts", "_width")

    def __init__(self, rx: re.Pattern[str], source: str, width: int) -> None:
        self._rx, self._source, self._width = rx, source, width
        self._outs: list[int] | None = None
        self._starts: list[int] = []
        self._ends: list[int] = []

    def _build(self) -> list[int]:
        if self._rx.groups:  # rare (CJK text): walk the matches
            spans = [m.span() for m in self._rx.finditer(self._source)]
            self._starts, self._ends = [a for a, _ in spans], [b for _, b in spans]
        else:  # an article has ~100 runs of spaces: stay in C (split, findall, accumulate)
            self._starts, self._ends = _match_spans(self._rx, self._source)
        width, count = self._width, len(self._starts)
        taken = accumulate(map(sub, self._ends, self._starts), initial=0)  # before match k
        given = range(0, width * count + 1, width) if width else repeat(0)
        outs = self._outs = list(map(sub, self._starts, map(sub, taken, given)))
        return outs

    def back(self, pos: int) -> int:
        outs = self._outs if self._outs is not None else self._build()
        k = bisect_right(outs, pos) - 1
        if k < 0:
            return pos
        start, end, offset = self._starts[k], self._ends[k], pos - outs[k]
        return min(start + offset, end) if offset < self._width else end + offset - self._width


def _match_spans(rx: re.Pattern[str], text: str) -> tuple[list[int], list[int]]:
    """Start and end of every match of ``rx`` (which has no groups) in ``text``."""
    kept = rx.split(text)
    lengths = [0] * (2 * len(kept) - 1)
    lengths[0::2] = map(len, kept)
    lengths[1::2] = map(len, rx.findall(text))
    edges = list(accumulate(lengths))
    return edges[0:-1:2], edges[1::2]


class _Shift:
    __slots__ = ("_by",)

    def __init__(self, by: int) -> None:
        self._by = by

    def back(self, pos: int) -> int:
        return pos + self._by


class Normalised:
    """A text folded for matching, able to map positions back to the original.

    ``text`` is the original; ``norm`` is folded, single-spaced and padded with one space
    at each end.
    """

    __slots__ = ("_ends", "_spans", "_starts", "_steps", "_tokens", "norm", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._starts: list[int] | None = None
        self._ends: list[int] = []
        self._steps: list[_Back] = []
        self._tokens: list[int] | None = None
        self._spans: dict[tuple[int, int], tuple[int, int]] = {}
        if text.isascii():  # the common case, and every ASCII character folds to one
            self.norm = self._edit(text.translate(_TABLE), False)
            return
        chars = set(text)
        if not chars <= _SEEN:
            _learn(chars)
        folded = text.translate(_TABLE) if chars.isdisjoint(_SLOW) else self._fold_slow()
        self.norm = self._edit(folded, not chars.isdisjoint(_UNSPACED))

    def _fold_slow(self) -> str:
        parts, starts, ends, text, i = [], [], [], self.text, 0
        while i < len(text):
            j = i + 1
            while j < len(text) and _is_mark(text[j]):
                j += 1
            part = _fold(text[i:j])
            parts.append(part)
            starts.extend([i] * len(part))
            ends.extend([j] * len(part))
            i = j
        self._starts, self._ends = starts, ends
        return "".join(parts)

    def _edit(self, text: str, unspaced: bool) -> str:
        if unspaced:
            text = self._sub(_SCRIPT_CHANGE, r"\1\2 ", 2, text)
        text = self._sub(_ABBREVIATION_DOT, "", 0, text).replace(".", " ")
        if unspaced:
            text = self._sub(_CJK_GAP, r"\1", 1, text)
        self._steps.append(_Shift(-1))
        return self._sub(_SPACES, " ", 1, f" {text} ")

    def _sub(self, rx: re.Pattern[str], repl: str, width: int, text: str) -> str:
        out = rx.sub(repl, text)
        if len(out) != len(text):
            self._steps.append(_Edits(rx, text, width))
        return out

    def _origin(self, pos: int) -> int:
        for step in reversed(self._steps):
            pos = step.back(pos)
        return pos

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of ``norm[start:end]`` (which holds no padding space)."""
        span = self._spans.get((start, end))
        if span is None:
            first, last = self._origin(start), self._origin(end - 1)
            if self._starts is not None:
                first, last = self._starts[first], self._ends[last] - 1
            span = self._spans[start, end] = (first, _abbreviation_end(self.text, last + 1))
        return span

    def token(self, pos: int) -> int:
        """The index of the word holding ``norm[pos]`` (each CJK character is a word)."""
        if self._tokens is None:
            self._tokens = [m.start() for m in _TOKEN_START.finditer(self.norm)]
        return bisect_right(self._tokens, pos) - 1


def _abbreviation_end(text: str, end: int) -> int:
    """Take in the last dot of ``U.S.`` that the normalised ``us`` does not cover."""
    if text[end : end + 1] == "." and text[end - 2 : end - 1] == ".":
        return end + 1
    return end


def normalise(text: str) -> Normalised:
    """Fold ``text`` the way queries and articles are compared (see :mod:`monitor.match`).

    Args:
        text: any text.

    Returns:
        The folded text (``.norm``), with ``.span()`` to map positions back.
    """
    return Normalised(text)


def core(text: str) -> str:
    """The normalised words of ``text``, without padding: ``"U.S.-Japan"`` → ``us japan``."""
    return normalise(text).norm.strip(" ")


def word_count(words: str) -> int:
    """How many words normalised ``words`` holds, a CJK character counting as one."""
    return len(_TOKEN_START.findall(f" {words} "))
