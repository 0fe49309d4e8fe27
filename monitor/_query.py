"""The watchlist query language: syntax tree, parser and printer (issue 4).

luqum parses the Lucene syntax; :func:`parse_query` turns its tree into the small frozen
tree below, refusing every construct the matcher does not implement, and expands
``@alias`` references. Errors are :class:`~monitor.errors.QueryError` with a 1-based
column; no luqum exception leaves this module.

The grammar is described in :mod:`monitor.match`; query words and article text are
folded alike by :mod:`monitor._fold`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from luqum import tree as lq  # type: ignore[import-untyped,unused-ignore]
from luqum.thread import parse as _luqum_parse  # type: ignore[import-untyped,unused-ignore]

from .errors import QueryError

__all__ = [
    "FIELDS",
    "And",
    "Field",
    "Not",
    "Or",
    "Phrase",
    "Prefix",
    "Proximity",
    "Query",
    "Term",
    "format_query",
    "holds_without_terms",
    "parse_query",
    "query_terms",
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
