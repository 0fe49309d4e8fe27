"""Refuse XML documents that declare dangerous entities, before any parser sees them.

feedparser 6 already defends itself: its ``replace_doctype`` drops every entity
declaration except plain literals, it turns off external general entities on the SAX
parser, and expat >= 2.4 caps entity amplification. We checked each against
billion-laughs and XXE documents (tests/test_parse.py). This guard is the second wall
(issue 6), and it turns a hostile document into a clear ``ParseError`` instead of a
half-parsed feed: a DOCTYPE may declare only internal entities whose value is literal
text (no external ``SYSTEM``/``PUBLIC`` entities, no parameter entities, no references
to other entities).
"""

from __future__ import annotations

import codecs
import re

__all__ = ["entity_problem", "sniff_text"]

_DOCTYPE = re.compile(r"<!DOCTYPE\b")
# A DOCTYPE with an optional internal subset, quote-aware so '>' or ']' inside a quoted
# value does not end it early.
_DOCTYPE_FULL = re.compile(
    r"""<!DOCTYPE(?:[^\[>"']|"[^"]*"|'[^']*')*(?:\[(?:[^\]"']|"[^"]*"|'[^']*')*\])?\s*>"""
)
_ENTITY = re.compile(r"""<!ENTITY(?:[^>"']|"[^"]*"|'[^']*')*>""")
_SAFE_ENTITY = re.compile(r"""<!ENTITY\s+[\w.:-]+\s+("[^"&%]*"|'[^'&%]*')\s*>""")
_CHAR_REF = re.compile(r"&#(?:[0-9]+|x[0-9a-fA-F]+);")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def sniff_text(data: bytes) -> str:
    """Decode enough of a document to look at its markup (BOM, then UTF-16/32 guess).

    Not the document's real decoding (feedparser does that); an ASCII-compatible
    reading of the markup is all the checks here need.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, "replace")
    head = data[:4]
    for pattern, codec in (
        (b"\0\0\0<", "utf-32-be"),
        (b"<\0\0\0", "utf-32-le"),
        (b"\0<", "utf-16-be"),
        (b"<\0", "utf-16-le"),
    ):
        if head.startswith(pattern):
            return data.decode(codec, "replace")
    return data.decode("latin-1")


def entity_problem(data: bytes) -> str | None:
    """Say why a document's entity declarations are refused, or None.

    Args:
        data: The document as fetched.

    Returns:
        A reason naming the first offending declaration, or None.
    """
    text = sniff_text(data)
    start = _DOCTYPE.search(text)
    if start is None:
        return None
    doctype = _DOCTYPE_FULL.match(text, start.start())
    subset = doctype.group(0) if doctype else text[start.start() :]
    for match in _ENTITY.finditer(subset):
        if not _SAFE_ENTITY.fullmatch(_CHAR_REF.sub("", match.group(0))):
            shown = " ".join(match.group(0).split())[:80]
            return f"entity declaration refused (external, parameter or nested): {shown}"
    if doctype is None and "<!ENTITY" in subset:
        return "malformed DOCTYPE with entity declarations"
    return None
