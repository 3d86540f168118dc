"""The staff query language (ngôn ngữ truy vấn): parsed by a Lark grammar into a typed AST.

The AST is backend-neutral; each backend compiles it (see `tantivy_backend.compile_query`).
Semantics, stated once so every backend agrees:

- Words are diacritic-insensitive ("binh phuoc" finds "Bình Phước"); juxtaposed words are ANDed.
- Precedence, tightest first: NEAR, NOT (also `-x`, `!x`, KHÔNG), AND (also VÀ, `&&`), OR (HOẶC, `||`).
  So `a -b c` is `a AND (NOT b) AND c` and `a OR b c` is `a OR (b AND c)`.
- Operators are recognised only in upper case; lower-case "và", "không" are ordinary words.
- A quoted phrase with diacritics matches exactly (diacritics kept); without, it is folded.
- `đất*` is a prefix search; `*` alone matches everything; an empty query matches everything.
- Field filters: see `FIELDS`. `date:A..B` is inclusive of whole days in Asia/Ho_Chi_Minh.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Literal

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from index.backend import QueryError
from schema.labels import SENTIMENTS, TOPICS, TOXICITY_LABELS

try:
    from zoneinfo import ZoneInfo

    VIETNAM_TZ: tzinfo = ZoneInfo("Asia/Ho_Chi_Minh")
except Exception:  # pragma: no cover - tzdata missing: Vietnam has had no DST since 1975
    VIETNAM_TZ = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")

MAX_QUERY_CHARS = 20_000
MAX_DEPTH = 32
MIN_PREFIX_CHARS = 2
DEFAULT_NEAR_DISTANCE = 5

TextScope = Literal["all", "title", "text", "author"]
KeywordField = Literal[
    "source", "site", "topic", "sentiment", "source_type", "toxicity", "cluster_id", "entity", "id"
]

#: Field name typed by staff → (kind, canonical name).
FIELDS: dict[str, tuple[str, str]] = {
    "title": ("text", "title"),
    "text": ("text", "text"),
    "body": ("text", "text"),
    "author": ("text", "author"),
    "source": ("keyword", "source"),
    "site": ("keyword", "site"),
    "topic": ("keyword", "topic"),
    "sentiment": ("keyword", "sentiment"),
    "type": ("keyword", "source_type"),
    "source_type": ("keyword", "source_type"),
    "toxicity": ("keyword", "toxicity"),
    "cluster": ("keyword", "cluster_id"),
    "cluster_id": ("keyword", "cluster_id"),
    "entity": ("keyword", "entity"),
    "id": ("keyword", "id"),
    "date": ("date", "date"),
}

_VOCABULARIES: dict[str, set[str]] = {
    "topic": set(TOPICS),
    "sentiment": set(SENTIMENTS),
    "toxicity": set(TOXICITY_LABELS),
    "source_type": {"news", "social", "forum"},
}


# ---------------------------------------------------------------- AST


@dataclass(frozen=True)
class MatchAll:
    """Every document (empty query or `*`)."""


@dataclass(frozen=True)
class Term:
    """One typed word; folded (diacritic-insensitive). Several tokens (`covid-19`) match as a phrase."""

    text: str
    scope: TextScope = "all"
    prefix: bool = False


@dataclass(frozen=True)
class Phrase:
    """A quoted phrase (cụm từ chính xác); `exact` keeps diacritics when the user typed them."""

    text: str
    scope: TextScope = "all"
    exact: bool = False


@dataclass(frozen=True)
class Keyword:
    """An exact value of a keyword field (topic code, source id, host, entity name…)."""

    field: KeywordField
    value: str


@dataclass(frozen=True)
class DateRange:
    """Half-open [start, end) on the publication date (falls back to the fetch date)."""

    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class Near:
    """Both sides within `distance` words of each other, in either order."""

    left: Term | Phrase
    right: Term | Phrase
    distance: int


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


Node = MatchAll | Term | Phrase | Keyword | DateRange | Near | And | Or | Not


# ---------------------------------------------------------------- text helpers


def fold(text: str) -> str:
    """Lowercase and strip Vietnamese diacritics (đ→d), as the folded index fields do."""
    lowered = unicodedata.normalize("NFC", text).lower().replace("đ", "d")
    decomposed = unicodedata.normalize("NFD", lowered)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def keyword_key(text: str) -> str:
    """The comparable form of a name (entity, author): folded words joined by one space."""
    return " ".join(re.findall(r"\w+", fold(text)))


def has_diacritics(text: str) -> bool:
    return fold(text) != unicodedata.normalize("NFC", text).lower()


def _searchable(text: str) -> bool:
    return any(c.isalnum() for c in text)


# ---------------------------------------------------------------- grammar

_GRAMMAR = r"""
start: or_expr
or_expr: and_expr (OR and_expr)*
and_expr: unary (AND? unary)*
unary: NOT unary -> negation
     | near
near: atom (NEAR atom)*
atom: LPAR or_expr RPAR -> group
    | FIELD field_value -> field
    | PHRASE -> phrase
    | WORD -> word
field_value: LPAR or_expr RPAR -> group
           | PHRASE -> phrase
           | WORD -> word

LPAR: "("
RPAR: ")"
PHRASE: /"[^"]*"/
OR.4: /(OR|HOẶC|\|\|)(?=[\s()"]|$)/
AND.4: /(AND|VÀ|&&)(?=[\s()"]|$)/
NOT.4: /(NOT|KHÔNG)(?=[\s()"]|$)/ | /[-!](?=[^\s\-!)])/
NEAR.4: /NEAR(\/\d+)?(?=[\s()"]|$)/
FIELD.3: /[A-Za-z_]+:/
WORD: /[^\s()"]+/
%ignore /\s+/
%ignore /\+(?=[^\s+])/
"""

_OPERATOR_WORDS = {"OR", "HOẶC", "||", "AND", "VÀ", "&&", "NOT", "KHÔNG", "NEAR"}

_PARSER = Lark(
    _GRAMMAR, parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=False
)


def _error(position: int | None, en: str, vi: str) -> QueryError:
    where = f"At position {position}: " if position is not None else ""
    where_vi = f"Tại vị trí {position}: " if position is not None else ""
    return QueryError(f"{where}{en}.", position, f"{where_vi}{vi}.")


def _check_nesting(query: str) -> None:
    """Refuse deep nesting before parsing: bounded work, and a clear error instead of a crash."""
    depth = 0
    in_quote = False
    for position, char in enumerate(query):
        if char == '"':
            in_quote = not in_quote
        elif not in_quote and char == "(":
            depth += 1
            if depth > MAX_DEPTH:
                raise _error(
                    position,
                    f"Parentheses are nested deeper than {MAX_DEPTH} levels; simplify the query",
                    f"Dấu ngoặc lồng nhau quá {MAX_DEPTH} cấp; hãy đơn giản hoá truy vấn",
                )


def _check_tree_depth(tree: Tree) -> None:
    """Bound nesting of NOT chains and groups (iteratively: the check itself must not recurse)."""
    stack: list[tuple[Tree | Token, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Tree):
            continue
        if node.data in ("negation", "group"):
            depth += 1
            if depth > MAX_DEPTH:
                position = None if node.meta.empty else node.meta.start_pos
                raise _error(
                    position,
                    f"The query nests NOT or parentheses deeper than {MAX_DEPTH} levels; simplify it",
                    f"Truy vấn lồng NOT hoặc dấu ngoặc quá {MAX_DEPTH} cấp; hãy đơn giản hoá",
                )
        stack.extend((child, depth) for child in node.children)


def _translate_lark_error(query: str, exc: UnexpectedInput) -> QueryError:
    if isinstance(exc, UnexpectedCharacters):
        position = exc.pos_in_stream or 0
        char = query[position] if position < len(query) else ""
        if char == '"':
            return _error(
                position,
                'Unbalanced quote: a phrase opened with " is never closed; add the closing "',
                'Dấu ngoặc kép chưa được đóng: hãy thêm dấu " để kết thúc cụm từ',
            )
        return _error(position, f"Unexpected character {char!r}", f"Ký tự không hợp lệ {char!r}")
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        return _error(
            len(query),
            "The query ends too early (after an operator, a field name or an open parenthesis?)",
            "Truy vấn kết thúc quá sớm (thiếu từ sau toán tử, tên trường hoặc thiếu dấu ngoặc đóng?)",
        )
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        position = token.start_pos
        if token.type == "RPAR":
            return _error(
                position,
                "Unmatched closing parenthesis ')'; remove it or add '(' before",
                "Dấu ngoặc đóng ')' không có ngoặc mở tương ứng",
            )
        return _error(
            position,
            f"Unexpected {token.value!r}: an operator needs a word on both sides",
            f"Không mong đợi {token.value!r}: toán tử cần có từ ở cả hai bên",
        )
    return _error(None, f"Invalid query: {exc}", f"Truy vấn không hợp lệ: {exc}")  # pragma: no cover


def parse(query: str) -> Node:
    """Parse what staff typed into an AST; raises `QueryError` (English + Vietnamese) on bad input."""
    text = unicodedata.normalize("NFC", query)
    if len(text) > MAX_QUERY_CHARS:
        raise _error(
            MAX_QUERY_CHARS,
            f"The query is too long ({len(text)} characters; the limit is {MAX_QUERY_CHARS})",
            f"Truy vấn quá dài ({len(text)} ký tự; tối đa {MAX_QUERY_CHARS})",
        )
    if not text.strip():
        return MatchAll()
    _check_nesting(text)
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as exc:
        raise _translate_lark_error(text, exc) from None
    _check_tree_depth(tree)
    try:
        node = _Builder(text).build(tree.children[0])
    except RecursionError:  # pragma: no cover - _check_tree_depth bounds the depth first
        raise _error(None, "The query is nested too deeply", "Truy vấn lồng nhau quá sâu") from None
    if node is None:
        raise _error(
            0,
            "The query has no searchable words (only punctuation)",
            "Truy vấn không có từ nào để tìm (chỉ có dấu câu)",
        )
    return node


# ---------------------------------------------------------------- tree → AST


class _Builder:
    """Turns the Lark tree into AST nodes; `None` means "nothing searchable here" (e.g. a lone dash)."""

    def __init__(self, query: str) -> None:
        self.query = query

    def build(self, tree: Tree | Token) -> Node | None:
        assert isinstance(tree, Tree)
        rule = tree.data
        children = [c for c in tree.children if not (isinstance(c, Token) and c.type in {"OR", "AND"})]
        if rule == "or_expr":
            return _combine(Or, [self.build(c) for c in children])
        if rule == "and_expr":
            return _combine(And, [self.build(c) for c in children])
        if rule == "negation":
            inner = self.build(children[1])
            return None if inner is None else Not(inner)
        if rule == "unary":
            return self.build(children[0])
        if rule == "near":
            return self._near(tree.children)
        if rule == "group":
            return self.build(children[1])
        head = children[0]
        if rule == "field" and isinstance(head, Token):
            return self._field(head, children[1])
        if rule == "phrase" and isinstance(head, Token):
            return self._phrase(head)
        if rule == "word" and isinstance(head, Token):
            return self._word(head)
        raise AssertionError(f"unknown rule {rule}")  # pragma: no cover

    def _phrase(self, token: Token) -> Phrase | None:
        inner = token.value[1:-1]
        if not _searchable(inner):
            return None
        return Phrase(inner, exact=has_diacritics(inner))

    def _word(self, token: Token) -> Node | None:
        value: str = token.value
        position = token.start_pos or 0
        if value == "*":
            return MatchAll()
        if value in _OPERATOR_WORDS:
            raise _error(
                position,
                f"The operator {value} needs a word or group on both sides (quote it to search the word)",
                f"Toán tử {value} cần có từ hoặc nhóm ở cả hai bên (đặt trong ngoặc kép để tìm chính từ này)",
            )
        for char in "~^[]{}":
            if char in value:
                raise _error(
                    position + value.index(char),
                    f"{char!r} is Lucene syntax we do not support (fuzzy, boost or range); "
                    "quote the word to search it literally, use date:A..B for date ranges",
                    f"{char!r} là cú pháp Lucene không được hỗ trợ; hãy đặt từ trong ngoặc kép, "
                    "dùng date:A..B cho khoảng ngày",
                )
        star = value.find("*")
        if star != -1 and star != len(value) - 1:
            raise _error(
                position + star,
                "A wildcard * is only allowed at the end of a word (prefix search, e.g. đất*)",
                "Ký tự * chỉ được dùng ở cuối từ (tìm theo tiền tố, ví dụ đất*)",
            )
        if star != -1:
            stem = value[:-1]
            if sum(c.isalnum() for c in stem) < MIN_PREFIX_CHARS:
                raise _error(
                    position,
                    f"A prefix search needs at least {MIN_PREFIX_CHARS} letters before *",
                    f"Tìm theo tiền tố cần ít nhất {MIN_PREFIX_CHARS} chữ cái trước dấu *",
                )
            return Term(stem, prefix=True)
        if not _searchable(value):
            return None
        return Term(value)

    def _near(self, items: list[Tree | Token]) -> Node | None:
        if len(items) == 1:
            return self.build(items[0])
        operands: list[Term | Phrase] = []
        distances: list[int] = []
        for item in items:
            if isinstance(item, Token):  # NEAR or NEAR/n
                _, _, number = item.value.partition("/")
                distances.append(int(number) if number else DEFAULT_NEAR_DISTANCE)
                if distances[-1] > 100:
                    raise _error(
                        item.start_pos,
                        "NEAR distance must be at most 100 words",
                        "Khoảng cách NEAR tối đa là 100 từ",
                    )
                continue
            node = self.build(item)
            if not isinstance(node, Term | Phrase) or (isinstance(node, Term) and node.prefix):
                start = item.meta.start_pos if not item.meta.empty else None
                raise _error(
                    start,
                    "NEAR joins two words or quoted phrases (no groups, fields or wildcards)",
                    "NEAR chỉ nối hai từ hoặc hai cụm từ trong ngoặc kép (không dùng ngoặc, trường, ký tự *)",
                )
            operands.append(node)
        pairs = [Near(a, b, d) for a, b, d in zip(operands, operands[1:], distances, strict=False)]
        return pairs[0] if len(pairs) == 1 else And(tuple(pairs))

    def _field(self, field_token: Token, value: Tree | Token) -> Node | None:
        name = field_token.value[:-1]
        position = field_token.start_pos
        spec = FIELDS.get(name.lower())
        if spec is None:
            known = ", ".join(sorted(FIELDS))
            raise _error(
                position,
                f"Unknown field {name!r} (known fields: {known}); to search the text {field_token.value!r} "
                "put it in quotes",
                f"Trường {name!r} không tồn tại (các trường hợp lệ: {known}); để tìm nguyên văn, hãy đặt "
                "trong ngoặc kép",
            )
        kind, canonical = spec
        assert isinstance(value, Tree)
        if kind == "date":
            if value.data != "word":
                raise _error(
                    position,
                    "date: takes a day or a range like date:2026-11-01..2026-11-27",
                    "date: nhận một ngày hoặc một khoảng, ví dụ date:2026-11-01..2026-11-27",
                )
            token = value.children[0]
            assert isinstance(token, Token)
            return parse_date_range(token.value, token.start_pos or 0)
        inner = self.build(value)
        if inner is None:
            return None
        return _rescope(inner, kind, canonical, position or 0)


def _combine(kind: type[And] | type[Or], nodes: list[Node | None]) -> Node | None:
    kept = [n for n in nodes if n is not None]
    if not kept:
        return None
    if len(kept) == 1:
        return kept[0]
    flat: list[Node] = []
    for node in kept:
        flat.extend(node.children if isinstance(node, kind) else (node,))
    return kind(tuple(flat))


def _rescope(node: Node, kind: str, field: str, position: int) -> Node:
    """Apply `field:` to the unscoped words and phrases of `node` (`title:(a OR b)`)."""
    if isinstance(node, And | Or):
        return type(node)(tuple(_rescope(c, kind, field, position) for c in node.children))
    if isinstance(node, Not):
        return Not(_rescope(node.child, kind, field, position))
    if isinstance(node, Near) and kind == "text":
        left, right = (_rescope(n, kind, field, position) for n in (node.left, node.right))
        assert isinstance(left, Term | Phrase) and isinstance(right, Term | Phrase)
        return Near(left, right, node.distance)
    if isinstance(node, Term | Phrase) and node.scope == "all":
        if kind == "text":
            if isinstance(node, Term):
                return Term(node.text, field, node.prefix)  # type: ignore[arg-type]
            return Phrase(node.text, field, node.exact)  # type: ignore[arg-type]
        if isinstance(node, Term) and node.prefix:
            raise _error(
                position,
                f"Prefix search (*) does not work on {field}:",
                f"Không dùng tìm theo tiền tố (*) với trường {field}:",
            )
        return _keyword(field, node.text, position)
    if isinstance(node, MatchAll):
        return node
    raise _error(
        position,
        f"{field}: cannot contain this kind of expression",
        f"Trường {field}: không chứa được biểu thức loại này",
    )


def _keyword(field: str, raw: str, position: int) -> Keyword:
    value = raw.strip()
    if field in ("entity",):
        value = keyword_key(value)
    elif field == "site":
        value = value.lower().removeprefix("http://").removeprefix("https://").split("/")[0]
        value = value.removeprefix("www.")
    elif field in _VOCABULARIES:
        value = value.lower()
        if value not in _VOCABULARIES[field]:
            allowed = ", ".join(sorted(_VOCABULARIES[field]))
            raise _error(
                position,
                f"Unknown {field} {raw!r}; allowed: {allowed}",
                f"Giá trị {raw!r} của {field} không hợp lệ; giá trị hợp lệ: {allowed}",
            )
    return Keyword(field, value)  # type: ignore[arg-type]


# ---------------------------------------------------------------- dates

_DAY = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")
_DAY_VN = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def _period(text: str, position: int) -> tuple[date, date]:
    """A year, month or day → [first day, day after the last day)."""
    match = _DAY.match(text)
    vn = _DAY_VN.match(text)
    try:
        if vn:
            day = date(int(vn.group(3)), int(vn.group(2)), int(vn.group(1)))
            return day, day + timedelta(days=1)
        if match:
            year = int(match.group(1))
            if not 1900 <= year <= 2200:
                raise ValueError("year out of range 1900–2200")
            if match.group(3):
                day = date(year, int(match.group(2)), int(match.group(3)))
                return day, day + timedelta(days=1)
            if match.group(2):
                first = date(year, int(match.group(2)), 1)
                return first, (first + timedelta(days=32)).replace(day=1)
            return date(year, 1, 1), date(year + 1, 1, 1)
    except ValueError as exc:
        raise _error(
            position, f"Invalid date {text!r} ({exc})", f"Ngày không hợp lệ {text!r} ({exc})"
        ) from None
    raise _error(
        position,
        f"Invalid date {text!r}; write YYYY-MM-DD, YYYY-MM, YYYY or DD/MM/YYYY",
        f"Ngày không hợp lệ {text!r}; hãy viết YYYY-MM-DD, YYYY-MM, YYYY hoặc DD/MM/YYYY",
    )


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def parse_date_range(text: str, position: int = 0, tz: tzinfo = VIETNAM_TZ) -> DateRange:
    """`2026-11-01..2026-11-27`, `2026-11`, `..2026-11-27`: whole local days, end inclusive."""
    if ".." in text:
        left, _, right = text.partition("..")
        start = _period(left, position)[0] if left else None
        end = _period(right, position + len(left) + 2)[1] if right else None
        if start is None and end is None:
            raise _error(
                position, "A date range needs at least one end", "Khoảng ngày cần ít nhất một đầu mút"
            )
        if start is not None and end is not None and start >= end:
            raise _error(
                position,
                f"The date range {text!r} ends before it starts",
                f"Khoảng ngày {text!r} kết thúc trước khi bắt đầu",
            )
    else:
        start, end = _period(text, position)
    return DateRange(
        _local_midnight(start, tz) if start else None,
        _local_midnight(end, tz) if end else None,
    )


# ---------------------------------------------------------------- explain


def _describe(node: Node, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    if isinstance(node, MatchAll):
        lines.append(f"{pad}ALL")
    elif isinstance(node, Term):
        kind = "PREFIX" if node.prefix else "WORD"
        lines.append(f"{pad}{kind} {node.text!r} in {node.scope} (diacritic-insensitive)")
    elif isinstance(node, Phrase):
        mode = "exact, diacritics kept" if node.exact else "diacritic-insensitive"
        lines.append(f"{pad}PHRASE {node.text!r} in {node.scope} ({mode})")
    elif isinstance(node, Keyword):
        lines.append(f"{pad}FIELD {node.field} = {node.value!r}")
    elif isinstance(node, DateRange):
        start = node.start.isoformat() if node.start else "-∞"
        end = node.end.isoformat() if node.end else "+∞"
        lines.append(f"{pad}DATE [{start}, {end})")
    elif isinstance(node, Near):
        lines.append(f"{pad}NEAR/{node.distance} (either order)")
        _describe(node.left, depth + 1, lines)
        _describe(node.right, depth + 1, lines)
    elif isinstance(node, And | Or):
        lines.append(f"{pad}{'AND' if isinstance(node, And) else 'OR'}")
        for child in node.children:
            _describe(child, depth + 1, lines)
    elif isinstance(node, Not):
        lines.append(f"{pad}NOT")
        _describe(node.child, depth + 1, lines)


def explain(query: str) -> str:
    """The parsed query as an indented tree (`duluan search --explain`); raises `QueryError`."""
    lines: list[str] = []
    _describe(parse(query), 0, lines)
    return "\n".join(lines)


def format_error(query: str, error: QueryError) -> str:
    """Both messages and the query with a caret under the offending position, for terminals."""
    lines = [str(error), error.message_vi]
    if error.position is not None and len(query) <= 200:
        lines += [f"  {query}", "  " + " " * min(error.position, len(query)) + "^"]
    return "\n".join(lines)


def positive_leaves(node: Node) -> list[Term | Phrase | Near]:
    """The text parts of a query that a matching document contains (for highlighting), NOTs excluded."""
    if isinstance(node, Term | Phrase | Near):
        return [node]
    if isinstance(node, And | Or):
        return [leaf for child in node.children for leaf in positive_leaves(child)]
    return []
