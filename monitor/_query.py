"""The watchlist query language: syntax tree, parser, printer, and text folding (issue 4).

luqum parses the Lucene syntax; :func:`parse_query` turns its tree into the small frozen
tree below, refusing every construct the matcher does not implement, and expands
``@alias`` references. Errors are :class:`~monitor.errors.QueryError` with a 1-based
column; no luqum exception leaves this module.

:func:`normalise` folds query words and article text alike, and keeps what it needs to
map a position in the folded text back to the original string. The grammar and the
folding rules are described in :mod:`monitor.match`.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate, repeat
from operator import sub
from typing import Any, Protocol, TypeAlias

from luqum import tree as lq  # type: ignore[import-untyped,unused-ignore]
from luqum.thread import parse as _luqum_parse  # type: ignore[import-untyped,unused-ignore]

from .errors import QueryError

__all__ = [
    "FIELDS",
    "And",
    "Field",
    "Normalised",
    "Not",
    "Or",
    "Phrase",
    "Prefix",
    "Proximity",
    "Query",
    "Term",
    "core",
    "format_query",
    "holds_without_terms",
    "is_unspaced",
    "normalise",
    "parse_query",
    "query_terms",
    "word_count",
]

FIELDS = ("title", "body", "source")


@dataclass(frozen=True, slots=True)
class Term:
    """A word (or hyphenated/dotted compound) as written, e.g. ``USFJ``, ``U.S.-Japan``."""

    text: str

    @property
    def term(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Prefix:
    """A word with a trailing wildcard; ``text`` keeps the ``*`` (``deter*``)."""

    text: str

    @property
    def term(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words in this order; ``text`` is what stood between the quotes."""

    text: str

    @property
    def term(self) -> str:
        return f'"{self.text}"'


@dataclass(frozen=True, slots=True)
class Proximity:
    """Words in any order, with at most ``distance`` other words among them."""

    text: str
    distance: int

    @property
    def term(self) -> str:
        return f'"{self.text}"~{self.distance}'


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Query, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Query, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Query


@dataclass(frozen=True, slots=True)
class Field:
    """Restricts ``item`` to one field: ``title``, ``body`` or ``source``."""

    name: str
    item: Query


Query: TypeAlias = Term | Prefix | Phrase | Proximity | And | Or | Not | Field
Leaf: TypeAlias = Term | Prefix | Phrase | Proximity

# Quote characters pasted from word processors, replaced one for one before parsing so
# that columns stay right.
_QUOTES = str.maketrans(dict.fromkeys("“”„‟″＂", '"'))
_LOWER_OPERATORS = {"and", "or", "not"}
_SYMBOL_OPERATORS = {"&&": "AND", "||": "OR", "!": "NOT"}
_POSITION = re.compile(r"position (\d+)")
_UNEXPECTED = re.compile(r"unexpected\s+'(.*)' at position")
_LAST_TOKEN = re.compile(r"(\S+)\s*$")


def parse_query(text: str, aliases: Mapping[str, Sequence[str]] | None = None) -> Query:
    """Parse a watchlist query into its syntax tree.

    Args:
        text: the query, in the Lucene-style syntax described in :mod:`monitor.match`.
        aliases: named term sets usable as ``@name``; each entry is itself query text.

    Returns:
        The tree, with aliases expanded into ``Or`` nodes.

    Raises:
        QueryError: the query is empty, does not parse, uses something unsupported
            (fuzzy, boost, range, regex, leading or inner wildcard), an unknown field or
            alias, or would match articles that contain none of its terms.
    """
    query = _Converter(aliases or {}, ()).parse(text)
    if holds_without_terms(query):
        raise QueryError(
            "the query matches articles that contain none of its terms "
            "(NOT and - need a term to match beside them)",
            1,
        )
    return query


def format_query(query: Query) -> str:
    """Print a tree with explicit precedence, e.g. ``a b OR c`` as ``(a AND (b OR c))``.

    Args:
        query: a parsed query.

    Returns:
        Query text that parses back to the same tree.
    """
    if isinstance(query, And | Or):
        op = " AND " if isinstance(query, And) else " OR "
        return "(" + op.join(format_query(q) for q in query.items) + ")"
    if isinstance(query, Not):
        return "NOT " + format_query(query.item)
    if isinstance(query, Field):
        return f"{query.name}:{format_query(query.item)}"
    return query.term


def query_terms(query: Query) -> tuple[str, ...]:
    """List the literal terms of a query as written, negated ones included, in order.

    Args:
        query: a parsed query.

    Returns:
        Distinct terms such as ``USFJ``, ``deter*``, ``"joint force headquarters"``.
    """
    return tuple(dict.fromkeys(leaf.term for leaf in iter_leaves(query)))


def iter_leaves(query: Query) -> list[Leaf]:
    """Every leaf of ``query``, depth first."""
    if isinstance(query, And | Or):
        return [leaf for q in query.items for leaf in iter_leaves(q)]
    if isinstance(query, Not | Field):
        return iter_leaves(query.item)
    return [query]


def holds_without_terms(query: Query) -> bool:
    """Whether ``query`` holds for an article in which none of its terms occur."""
    if isinstance(query, And):
        return all(holds_without_terms(q) for q in query.items)
    if isinstance(query, Or):
        return any(holds_without_terms(q) for q in query.items)
    if isinstance(query, Not):
        return not holds_without_terms(query.item)
    if isinstance(query, Field):
        return holds_without_terms(query.item)
    return False


class _Converter:
    """Turns one query text into our tree; ``stack`` holds the aliases being expanded."""

    def __init__(self, aliases: Mapping[str, Sequence[str]], stack: tuple[str, ...]) -> None:
        self.aliases = aliases
        self.stack = stack
        self.in_field = False

    def parse(self, text: str) -> Query:
        text = text.translate(_QUOTES)
        if not text.strip():
            raise QueryError("empty query", 1)
        _check_balance(text)
        try:
            parsed = _luqum_parse(text)
        except Exception as exc:  # luqum raises several types, some not its own
            # Our message says what and where; luqum's own text stays on __context__.
            raise _syntax_error(text, exc) from None
        return self.convert(parsed)

    def convert(self, node: Any) -> Query:
        handler = _HANDLERS.get(type(node))
        if handler is None:
            raise _unsupported(node)
        return handler(self, node)

    def operation(self, node: Any) -> Query:
        kind: type[And] | type[Or] = Or if isinstance(node, lq.OrOperation) else And
        items: list[Query] = []
        for child in node.children:
            item = self.convert(child)
            items.extend(item.items if isinstance(item, kind) else (item,))
        return kind(tuple(items))

    def negation(self, node: Any) -> Query:
        return Not(self.signed(node))

    def passthrough(self, node: Any) -> Query:
        if isinstance(node, lq.Plus):
            return self.signed(node)
        return self.convert(node.children[0])

    def signed(self, node: Any) -> Query:
        """The operand of -, + or NOT; ``-or`` plainly means the word, so it is allowed."""
        operand = node.a
        if isinstance(operand, lq.Word) and str(operand.value).lower() in _LOWER_OPERATORS:
            return Term(str(operand.value))
        return self.convert(operand)

    def field(self, node: Any) -> Query:
        name = str(node.name).lower()
        if name not in FIELDS:
            raise QueryError(f"unknown field {node.name!r} (use title, body or source)",
                             _column(node))  # fmt: skip
        if self.in_field:
            raise QueryError(f"field {name}: inside another field", _column(node))
        self.in_field = True
        try:
            return Field(name, self.convert(node.expr))
        finally:
            self.in_field = False

    def word(self, node: Any) -> Query:
        value = str(node.value)
        if value.startswith("@"):
            return self.alias(value[1:], _column(node))
        _check_word(value, _column(node))
        if value.endswith("*") and not value.endswith("\\*"):
            return Prefix(value)
        return Term(value)

    def phrase(self, node: Any) -> Query:
        text = str(node.value)[1:-1]
        _check_phrase(text, _column(node))
        return Phrase(text)

    def proximity(self, node: Any) -> Query:
        text = str(node.term.value)[1:-1]
        _check_phrase(text, _column(node))
        return Proximity(text, int(node.degree)) if len(text.split()) > 1 else Phrase(text)

    def alias(self, name: str, column: int | None) -> Query:
        entries = self.aliases.get(name)
        if entries is None:
            raise QueryError(f"unknown alias @{name}", column)
        if name in self.stack:
            raise QueryError(f"alias @{name} refers to itself", column)
        if isinstance(entries, str) or not entries:
            raise QueryError(f"alias @{name} must be a non-empty list of terms", column)
        inner = _Converter(self.aliases, (*self.stack, name))
        inner.in_field = self.in_field
        items: list[Query] = []
        for entry in entries:
            try:
                item = inner.parse(str(entry))
            except QueryError as exc:
                where = f" (column {exc.column} of the entry)" if exc.column else ""
                raise QueryError(f"alias @{name} entry {entry!r}: {exc.message}{where}",
                                 column) from None  # fmt: skip
            items.extend(item.items if isinstance(item, Or) else (item,))
        return items[0] if len(items) == 1 else Or(tuple(items))


_HANDLERS: dict[type, Callable[[_Converter, Any], Query]] = {
    lq.AndOperation: _Converter.operation,
    lq.UnknownOperation: _Converter.operation,
    lq.OrOperation: _Converter.operation,
    lq.Not: _Converter.negation,
    lq.Prohibit: _Converter.negation,
    lq.Plus: _Converter.passthrough,
    lq.Group: _Converter.passthrough,
    lq.FieldGroup: _Converter.passthrough,
    lq.SearchField: _Converter.field,
    lq.Word: _Converter.word,
    lq.Phrase: _Converter.phrase,
    lq.Proximity: _Converter.proximity,
}

_UNSUPPORTED = {
    lq.Fuzzy: 'fuzzy terms (word~N) are not supported; for proximity write "a b"~N',
    lq.Boost: "boosts (^N) are not supported",
    lq.Regex: "regular expressions (/.../) are not supported",
    lq.Range: "ranges ([a TO b]) are not supported",
    lq.From: "comparisons (>, >=) are not supported",
    lq.To: "comparisons (<, <=) are not supported",
}


def _unsupported(node: Any) -> QueryError:
    message = _UNSUPPORTED.get(type(node), f"unsupported construct {str(node)!r}")
    return QueryError(message, _column(node))


def _column(node: Any) -> int | None:
    return None if node.pos is None else int(node.pos) + 1


def _check_word(value: str, column: int | None) -> None:
    if value in _SYMBOL_OPERATORS:
        raise QueryError(f"write {_SYMBOL_OPERATORS[value]} instead of {value}", column)
    if value.lower() in _LOWER_OPERATORS:
        raise QueryError(
            f"{value!r} is not an operator: write {value.upper()} for the operator, "
            f'or "{value}" to search for the word',
            column,
        )
    bare = value.replace("\\*", "").replace("\\?", "")
    if bare.startswith(("*", "?")):
        raise QueryError(f"leading wildcard in {value!r} is not supported", column)
    if "?" in bare or "*" in bare[:-1]:
        raise QueryError(f"only a trailing * wildcard is supported, not {value!r}", column)
    if not any(c.isalnum() for c in bare):
        raise QueryError(f"term {value!r} has no letters or digits to match", column)


def _check_phrase(text: str, column: int | None) -> None:
    if not any(c.isalnum() for c in text):
        raise QueryError("phrase has no letters or digits to match", column)
    if re.search(r"(?<!\\)[*?]", text):
        raise QueryError("wildcards inside a phrase are not supported", column)


def _check_balance(text: str) -> None:
    """Report unbalanced parentheses, unclosed quotes and bad proximity with a column."""
    opened: list[int] = []
    quote: int | None = None
    for i, char in _unescaped(text):
        if char == '"' and quote is None:
            quote = i
        elif char == '"':
            quote = None
            _check_slop(text, i + 1)
        elif quote is None and char == "(":
            opened.append(i)
        elif quote is None and char == ")" and not opened:
            raise QueryError("unbalanced parenthesis: ')' without '('", i + 1)
        elif quote is None and char == ")":
            opened.pop()
    if quote is not None:
        raise QueryError("unclosed quote", quote + 1)
    if opened:
        raise QueryError("unbalanced parenthesis: '(' is never closed", opened[-1] + 1)


def _unescaped(text: str) -> list[tuple[int, str]]:
    """The characters of ``text`` with their index, skipping backslash escapes."""
    return [(m.start(), m.group()) for m in re.finditer(r"\\.?|.", text, re.DOTALL)
            if m.group()[0] != "\\"]  # fmt: skip


def _check_slop(text: str, at: int) -> None:
    """Check the ``~N`` that may follow a closing quote at index ``at``."""
    slop = re.match(r"~(\d*)(\.\d*)?", text[at:])
    if slop is not None and (not slop.group(1) or slop.group(2)):
        raise QueryError('proximity needs a whole number of words, e.g. "a b"~5', at + 1)


def _syntax_error(text: str, exc: Exception) -> QueryError:
    """Translate a luqum error into a message and column of our own."""
    message = str(exc)
    found = _POSITION.search(message)
    if found is None:
        return _end_error(text)
    column = int(found.group(1)) + 1
    token = _UNEXPECTED.search(message)
    value = token.group(1) if token else text[column - 1]
    if value in ("AND", "OR"):
        return QueryError(f"dangling operator {value}", column)
    if value == ":":
        return QueryError("field name missing before ':'", column)
    if value == ")":
        return _end_error(text[: column - 1], "unexpected ')'", column)
    return QueryError(f"unexpected {value[:1]!r}", column)


def _end_error(text: str, message: str = "unexpected end of query",
               column: int | None = None) -> QueryError:  # fmt: skip
    """Explain why the query stops short at the end of ``text`` (the whole or a prefix)."""
    last = _LAST_TOKEN.search(text)
    if last is None:
        return QueryError(message, column or 1)
    token, at = last.group(1), last.start(1) + 1
    if token in ("AND", "OR", "NOT", "-", "+"):
        return QueryError(f"dangling operator {token}", at)
    if token.endswith(":"):
        return QueryError(f"field {token} has nothing after it", at)
    if token.endswith("("):
        return QueryError("empty parentheses", at + len(token) - 1)
    return QueryError(message, column or at)


# --- normalisation -----------------------------------------------------------------------

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
