"""Tokens → syntax tree, by recursive descent over the grammar in rules/README.md.

    query  = or
    or     = and { "OR" and }
    and    = unary { ["AND"] unary }          (adjacency is AND, as in Google)
    unary  = ("NOT" | "-") unary | near
    near   = prim { ("NEAR/" INT | "ONEAR/" INT) prim }
    prim   = [field ":"] ( "(" or ")" | phrase ["~" INT] | term )

The parser raises only QuerySyntaxError (a hypothesis test holds it to that), and checks the rules
the grammar cannot express: a query needs a positive term, NEAR/ operands must have word positions.
"""

from __future__ import annotations

from watcher.query.ast import And, Near, Node, Not, Or, Phrase, Term
from watcher.query.errors import QuerySyntaxError, QueryWarning
from watcher.query.lexer import MAX_DISTANCE, Token, canon, tokenize_query
from watcher.query.text import fold, is_cjk, tokenize

_BINARY = ("AND", "OR", "near")
_SHORT_WILDCARD = "wildcard needs at least 3 characters before *"


def parse(text: str) -> Node:
    """Parse a query; raises QuerySyntaxError (with offset/length into `text`)."""
    return parse_with_warnings(text)[0]


def parse_with_warnings(text: str) -> tuple[Node, list[QueryWarning]]:
    """Parse a query and also return the warnings (e.g. AND and OR mixed without parentheses)."""
    if not isinstance(text, str):
        raise QuerySyntaxError(f"a query must be text, not {type(text).__name__}", 0, 0)
    if not text.strip():
        raise QuerySyntaxError("the query is empty", 0, len(text))
    try:
        parser = _Parser(text, tokenize_query(text))
        node = parser.parse()
    except RecursionError:
        raise QuerySyntaxError("the query is nested too deeply", 0, len(text)) from None
    _check_positive(node)
    return node, parser.warnings


def _end(node: Node | Token) -> int:
    return node.offset + node.length


def _span(first: Node | Token, last: Node | Token) -> tuple[int, int]:
    return first.offset, _end(last) - first.offset


def _describe(token: Token) -> str:
    return {"near": f"{token.text}/{token.number}", "-": "-"}.get(token.kind, token.kind)


class _Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.pos = 0
        self.warnings: list[QueryWarning] = []
        self.grouped: set[int] = set()  # ids of nodes written inside their own parentheses

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> Node:
        node = self.parse_or(None)
        token = self.peek()
        if token is not None:  # only a stray ')' stops parse_or early
            raise QuerySyntaxError("unbalanced parenthesis: ')' has no matching '('", token.offset)
        return node

    def parse_or(self, field: str | None) -> Node:
        groups = [self.parse_and(field)]
        operators: list[Token] = []
        while (token := self.peek()) is not None and token.kind == "OR":
            operators.append(self.take())
            self._need_operand(token, "OR")
            groups.append(self.parse_and(field))
        if len(groups) == 1:
            return groups[0]
        self._warn_mix(groups, operators)
        children = tuple(c for g in groups for c in (g.children if isinstance(g, Or) else (g,)))
        return Or(children, *_span(groups[0], groups[-1]))

    def parse_and(self, field: str | None) -> Node:
        items = [self.parse_unary(field)]
        while (token := self.peek()) is not None and token.kind not in ("OR", ")"):
            if token.kind == "AND":
                self.take()
                self._need_operand(token, "AND")
            items.append(self.parse_unary(field))
        if len(items) == 1:
            return items[0]
        return And(tuple(items), *_span(items[0], items[-1]))

    def parse_unary(self, field: str | None) -> Node:
        token = self.peek()
        if token is not None and token.kind in ("NOT", "-"):
            self.take()
            self._need_operand(token, "NOT" if token.kind == "NOT" else "-")
            child = self.parse_unary(field)
            return Not(child, token.offset, _end(child) - token.offset)
        return self.parse_near(field)

    def parse_near(self, field: str | None) -> Node:
        left = self.parse_prim(field)
        while (token := self.peek()) is not None and token.kind == "near":
            self.take()
            name = _describe(token)
            self._need_operand(token, name)
            following = self.peek()
            if following is not None and following.kind in ("NOT", "-"):
                raise QuerySyntaxError(
                    f"{name} cannot take an excluded term (NOT/-) as an operand; "
                    "exclude it outside: (a NEAR/5 b) -c",
                    following.offset,
                    following.length,
                )
            right = self.parse_prim(field)
            for operand in (left, right):
                _check_near_operand(operand, name)
            offset, length = _span(left, right)
            left = Near(left, right, token.number or 0, token.ordered, offset, length)
        return left

    def parse_prim(self, field: str | None) -> Node:
        token = self.peek()
        if token is None:  # callers check for a missing operand first
            raise QuerySyntaxError("the query ends too early", len(self.text), 0)
        if token.kind in _BINARY or token.kind in (")",):
            self._misplaced(token)
        self.take()
        if token.kind == "field":
            following = self.peek()
            if following is not None and following.kind in ("NOT", "-"):
                raise QuerySyntaxError(
                    f"put the exclusion before the field: -{token.text}:…",
                    following.offset,
                    following.length,
                )
            return self.parse_prim(token.text)
        if token.kind == "(":
            return self._group(token, field)
        if token.kind == "phrase":
            return _phrase(token, field)
        if token.kind == "word":
            return _word_node(token.text, token.offset, field)
        raise QuerySyntaxError(f"unexpected {_describe(token)}", token.offset, token.length)

    def _group(self, opening: Token, field: str | None) -> Node:
        token = self.peek()
        if token is None:
            raise QuerySyntaxError("unbalanced parenthesis: '(' is never closed", opening.offset)
        if token.kind == ")":
            raise QuerySyntaxError(
                "empty parentheses", opening.offset, _end(token) - opening.offset
            )
        inner = self.parse_or(field)
        closing = self.peek()
        if closing is None or closing.kind != ")":
            raise QuerySyntaxError("unbalanced parenthesis: '(' is never closed", opening.offset)
        self.take()
        self.grouped.add(id(inner))
        return inner

    def _need_operand(self, operator: Token, name: str) -> None:
        """An operator must be followed by something it can apply to."""
        token = self.peek()
        if token is None:
            raise QuerySyntaxError(
                f"operator {name} at the end of the query", operator.offset, operator.length
            )
        if token.kind in _BINARY or token.kind == ")":
            raise QuerySyntaxError(
                f"operator {name} needs a term on its right, not {_describe(token)}",
                operator.offset,
                operator.length,
            )

    def _misplaced(self, token: Token) -> None:
        if token.kind == ")":
            raise QuerySyntaxError("unbalanced parenthesis: ')' has no matching '('", token.offset)
        name = _describe(token)
        if self.pos == 0:
            where = "at the start of the query"
        else:
            before = self.tokens[self.pos - 1]
            where = "after (" if before.kind == "(" else f"after {_describe(before)}"
        raise QuerySyntaxError(
            f"operator {name} {where}: it needs a term on its left", token.offset, token.length
        )

    def _source(self, node: Node) -> str:
        text = self.text[node.offset : _end(node)]
        return f"({text})" if id(node) in self.grouped else text

    def _warn_mix(self, groups: list[Node], operators: list[Token]) -> None:
        mixed = [
            i for i, g in enumerate(groups) if isinstance(g, And) and id(g) not in self.grouped
        ]
        if not mixed:
            return
        near = operators[max(mixed[0] - 1, 0)]
        reading = " OR ".join(
            f"({self._source(g)})"
            if isinstance(g, And) and id(g) not in self.grouped
            else self._source(g)
            for g in groups
        )
        self.warnings.append(
            QueryWarning(
                near.offset,
                "AND and OR are mixed without parentheses (words side by side mean AND); "
                f"this reads as {reading} — add parentheses to say what you mean",
                near.length,
            )
        )


def _phrase(token: Token, field: str | None) -> Node:
    content_offset = token.offset + 1
    if field in ("url", "lang"):
        if token.number is not None:
            raise QuerySyntaxError(f"~N has no meaning for {field}:", token.offset, token.length)
        return _raw_term(token.text, content_offset, len(token.text), field)
    terms: list[Term] = []
    for offset, raw in _split_words(token.text, content_offset):
        node = _word_node(raw, offset, field)
        terms.extend(node.terms if isinstance(node, Phrase) else (node,))  # type: ignore[arg-type]
    if not terms:
        raise QuerySyntaxError(
            "empty phrase: put words between the quotes", token.offset, token.length
        )
    if len(terms) == 1 and token.number is None:
        only = terms[0]
        return Term(only.value, only.kind, field, token.text.strip(), token.offset, token.length)
    if token.number is not None and token.number > MAX_DISTANCE:
        raise QuerySyntaxError("~N is too large", token.offset, token.length)
    return Phrase(tuple(terms), token.number, field, token.text.strip(), token.offset, token.length)


def _split_words(content: str, offset: int) -> list[tuple[int, str]]:
    words: list[tuple[int, str]] = []
    start = None
    for i, ch in enumerate(content + " "):
        space = ch.isspace() or canon(ch).isspace()
        if space and start is not None:
            words.append((offset + start, content[start:i]))
            start = None
        elif not space and start is None:
            start = i
    return words


def _word_node(raw: str, offset: int, field: str | None) -> Node:
    """One unquoted word → Term, or Phrase when it holds several tokens (Korea-Japan, LG전자)."""
    if field in ("url", "lang"):
        return _raw_term(raw, offset, len(raw), field)
    body = raw
    wildcard = False
    canonical = [canon(ch) for ch in raw]
    if canonical and canonical[-1] == "*":
        wildcard = True
        body = raw[:-1]
    star = next((i for i, c in enumerate(canonical[: len(body)]) if "*" in c), None)
    if star is not None:
        raise QuerySyntaxError(
            "wildcard * only works at the end of a word (korea*)", offset + star, 1
        )
    folded = fold(body).norm
    tokens = tokenize(folded)
    if not tokens:
        if wildcard:
            raise QuerySyntaxError(_SHORT_WILDCARD, offset, len(raw))
        raise QuerySyntaxError(f"'{raw}' has no letters or digits to search for", offset, len(raw))
    terms = [Term(t, "cjk" if is_cjk(t) else "word", field, t, offset, len(raw)) for t in tokens]
    if wildcard:
        last = terms[-1]
        if not folded[-1:].isalnum() or (last.kind == "word" and len(last.value) < 3):
            raise QuerySyntaxError(_SHORT_WILDCARD, offset, len(raw))
        if last.kind == "word":
            terms[-1] = Term(last.value, "prefix", field, last.text, offset, len(raw))
    if len(terms) == 1:
        only = terms[0]
        return Term(only.value, only.kind, field, raw, offset, len(raw))
    return Phrase(tuple(terms), None, field, raw, offset, len(raw))


def _raw_term(raw: str, offset: int, length: int, field: str) -> Term:
    """url: and lang: compare folded text, not words."""
    value = fold(raw).norm.strip()
    if field == "url":
        value = value.rstrip("*")
    elif "*" in value:
        raise QuerySyntaxError("lang: takes a language code such as en, ko, ja", offset, length)
    if not value:
        raise QuerySyntaxError(f"{field}: needs something to look for", offset, length)
    return Term(value, "substr" if field == "url" else "exact", field, raw.strip(), offset, length)


def _check_near_operand(node: Node, name: str) -> None:
    if isinstance(node, Term) and node.kind in ("substr", "exact"):
        raise QuerySyntaxError(
            f"{name} needs word positions, and {node.field}: has none", node.offset, node.length
        )
    if isinstance(node, Or):
        for child in node.children:
            _check_near_operand(child, name)
    elif isinstance(node, (And, Not)):
        what = "AND" if isinstance(node, And) else "an exclusion"
        raise QuerySyntaxError(
            f"{name} operands must be words, phrases or (… OR …) groups of them, not {what}; "
            "write two NEAR conditions joined by AND instead",
            node.offset,
            node.length,
        )


def _positive(node: Node) -> bool:
    """True when the node can only match if some term is present (a NOT alone matches all)."""
    if isinstance(node, Not):
        return False
    if isinstance(node, And):
        return any(_positive(c) for c in node.children)
    if isinstance(node, Or):
        return all(_positive(c) for c in node.children)
    return True


def _check_positive(node: Node) -> None:
    if _positive(node):
        return
    if isinstance(node, Or):
        culprit = next(c for c in node.children if not _positive(c))
        raise QuerySyntaxError(
            "each OR alternative needs at least one positive term; this one would match "
            "almost every article",
            culprit.offset,
            culprit.length,
        )
    raise QuerySyntaxError(
        "a query needs at least one positive term (NOT/- only excludes)", node.offset, node.length
    )
