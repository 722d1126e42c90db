"""The grammar of ``when`` expressions (see the package docstring), parsed into nodes."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from buildpolicy.policy.expr.nodes import And, Expr, Fact, Literal, Not, Or
from buildpolicy.policy.expr.tokens import COMPARE_OPS, ExprError, Fault, Tok, diagnostic, tokenize, unknown_fact_message
from buildpolicy.policy.expr.typecheck import Typed, check_compare, describe, require_condition, src, type_class, with_article

#: The fact types ``fact_type`` may return.
FACT_TYPES = frozenset({"string", "int", "size", "number", "bool", "list", "any"})
#: How deep parentheses and ``not`` may nest. The parser and the evaluation recurse
#: once per level: past this, a positioned error instead of a RecursionError.
MAX_NESTING = 64
#: The most tokens a ``when`` may have: 100 times a long hand-written one. Rules are
#: compiled at the first prompt after an edit; megabytes of expression would make it slow.
MAX_TOKENS = 5_000


def _balanced(terms: list[Typed], node_class) -> Typed:
    """``a and b and c …`` as a balanced tree of ``node_class`` (And or Or), left to right.

    Both are associative and evaluate left to right either way; a balanced tree
    keeps a chain of 100,000 terms 17 levels deep, so evaluating or pickling
    it never exhausts the stack.
    """
    while len(terms) > 1:
        paired = [Typed(node_class(a.node, b.node), "bool", a.pos, b.end) for a, b in zip(terms[::2], terms[1::2])]
        if len(terms) % 2:
            paired.append(terms[-1])
        terms = paired
    return terms[0]


class Parser:
    def __init__(self, text, tokens, fact_type, known_facts):
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.fact_type = fact_type
        self.known_facts = known_facts
        self.facts: set[str] = set()
        self.depth = 0  # open parentheses and `not`s around the current position

    # -- helpers --------------------------------------------------------------------

    @property
    def tok(self) -> Tok:
        tok = self.tokens[self.i]
        if tok.kind == "long":
            raise Fault(tok.pos, f"expression too long: more than {MAX_TOKENS} tokens")
        return tok

    def peek(self, ahead=1) -> Tok:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def src(self, typed: Typed) -> str:
        """Source text of a sub-expression, shortened for messages."""
        return src(self.text, typed)

    def describe(self, typed: Typed) -> str:
        """A sub-expression and its type, for messages."""
        return describe(self.text, typed)

    def tok_text(self, tok: Tok) -> str:
        return "end of expression" if tok.kind == "eof" else repr(self.text[tok.pos:tok.end])

    def at_compare_op(self) -> bool:
        tok = self.tok
        return ((tok.kind == "op" and tok.value in COMPARE_OPS)
                or tok.is_("kw", "in")
                or (tok.is_("kw", "not") and self.peek().is_("kw", "in")))

    # -- grammar --------------------------------------------------------------------

    def parse(self) -> Typed:
        if self.tok.kind == "eof":
            raise Fault(0, "empty expression")
        result = self.parse_or()
        tok = self.tok
        if tok.kind != "eof":
            if tok.is_("op", ")"):
                raise Fault(tok.pos, "unmatched ')'")
            raise Fault(tok.pos, f"unexpected {self.tok_text(tok)} after a complete "
                                  "expression; expected 'and', 'or' or the end")
        require_condition(self.text, result, "a 'when' expression")
        return result

    def parse_or(self) -> Typed:
        terms = [self.parse_and()]
        while self.tok.is_("kw", "or"):
            # Check the left side first so errors are reported left to right.
            require_condition(self.text, terms[-1], "'or'")
            self.advance()
            terms.append(self.parse_and())
            require_condition(self.text, terms[-1], "'or'")
        return _balanced(terms, Or)

    def parse_and(self) -> Typed:
        terms = [self.parse_not()]
        while self.tok.is_("kw", "and"):
            # Check the left side first so errors are reported left to right.
            require_condition(self.text, terms[-1], "'and'")
            self.advance()
            terms.append(self.parse_not())
            require_condition(self.text, terms[-1], "'and'")
        return _balanced(terms, And)

    def enter(self, tok: Tok) -> None:
        """One level deeper (a ``(`` or a ``not`` at ``tok``); a Fault past ``MAX_NESTING``."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise Fault(tok.pos, f"expression nested too deeply: more than {MAX_NESTING} levels of "
                                 "parentheses and 'not'")

    def parse_not(self) -> Typed:
        if self.tok.is_("kw", "not"):
            self.enter(self.tok)
            start = self.advance().pos
            operand = self.parse_not()
            require_condition(self.text, operand, "'not'")
            self.depth -= 1
            return Typed(Not(operand.node), "bool", start, operand.end)
        return self.parse_comparison()

    def parse_comparison(self) -> Typed:
        left = self.parse_operand()
        if not self.at_compare_op():
            return left
        op_tok = self.advance()
        op = op_tok.value
        if op == "not":
            self.advance()
            op = "not in"
        right = self.parse_operand()
        result = check_compare(self.text, op, op_tok, left, right)
        if self.at_compare_op():
            # Python would read `a < b < c` as `a < b and b < c`; other languages as
            # `(a < b) < c`.  Refuse rather than pick one silently.
            raise Fault(self.tok.pos, "comparisons cannot be chained; combine them with "
                                      "'and'")
        return result

    def parse_operand(self) -> Typed:
        tok = self.tok
        kind = tok.kind
        if kind == "num":
            self.advance()
            return Typed(Literal(tok.value), "int" if type(tok.value) is int else "number",
                         tok.pos, tok.end)
        if kind == "size":
            self.advance()
            return Typed(Literal(tok.value), "size", tok.pos, tok.end)
        if kind == "str":
            self.advance()
            return Typed(Literal(tok.value), "string", tok.pos, tok.end)
        if kind == "kw" and tok.value in ("true", "false"):
            self.advance()
            return Typed(Literal(tok.value == "true"), "bool", tok.pos, tok.end)
        if kind == "kw" and tok.value == "null":
            self.advance()
            return Typed(Literal(None), "null", tok.pos, tok.end)
        if kind == "name":
            return self.parse_fact()
        if tok.is_("op", "["):
            return self.parse_list()
        if tok.is_("op", "("):
            self.enter(tok)
            self.advance()
            inner = self.parse_or()
            if not self.tok.is_("op", ")"):
                if self.tok.kind == "eof":
                    raise Fault(tok.pos, "unclosed '('")
                raise Fault(self.tok.pos, f"expected ')' but found {self.tok_text(self.tok)}")
            end = self.advance().end
            self.depth -= 1
            return Typed(inner.node, inner.type, tok.pos, end, inner.elem)
        if kind == "eof":
            raise Fault(tok.pos, "unexpected end of expression; expected a value or a fact")
        raise Fault(tok.pos, f"unexpected {self.tok_text(tok)}; expected a value or a fact")

    def parse_fact(self) -> Typed:
        tok = self.advance()
        name = tok.value
        type_ = self.fact_type(name)
        if type_ is None:
            raise Fault(tok.pos, unknown_fact_message(name, self.known_facts))
        if type_ not in FACT_TYPES:
            type_ = "any"  # a plugin's own type name: be permissive, check nothing
        self.facts.add(name)
        return Typed(Fact(name, type_ == "size"), type_, tok.pos, tok.end)

    def parse_list(self) -> Typed:
        start = self.advance().pos
        items: list = []
        elem = "any"
        first_item: Typed | None = None
        while not self.tok.is_("op", "]"):
            if self.tok.kind == "eof":
                raise Fault(start, "unclosed '['")
            item_tok = self.tok
            if item_tok.kind == "name" or item_tok.is_("op", "(") or item_tok.is_("op", "["):
                raise Fault(item_tok.pos, "list elements must be literal values")
            item = self.parse_operand()
            if item.type == "null":
                raise Fault(item.pos, "null cannot be a list element")
            if first_item is None:
                first_item, elem = item, item.type
            elif type_class(item.type) != type_class(elem):
                raise Fault(item.pos, f"list mixes {with_article(elem)} ({self.src(first_item)}) and "
                                       f"{self.describe(item)}")
            elif item.type != elem:
                elem = "number"  # e.g. [1, 1.5] or [1, 1GiB]: still numbers
            items.append(item.node.value)
            if self.tok.is_("op", ","):
                self.advance()
            elif not self.tok.is_("op", "]"):
                if self.tok.kind == "eof":
                    raise Fault(start, "unclosed '['")
                raise Fault(self.tok.pos, f"expected ',' or ']' but found "
                                           f"{self.tok_text(self.tok)}")
        end = self.advance().end
        return Typed(Literal(tuple(items)), "list", start, end, elem)


def compile_expr(text: str, *, fact_type: Callable[[str], str | None], file=None,
                 line: int | None = None, col: int | None = None,
                 known_facts: Iterable[str] = ()) -> Expr:
    """Parse and type-check a ``when`` expression.

    ``fact_type(name)`` returns the fact's type (one of :data:`FACT_TYPES`) or None for an
    unknown name; ``known_facts`` feeds the "did you mean" suggestion.  ``line``/``col``
    (1-based) locate the first character of ``text`` in ``file``; errors are reported at
    that position plus the fault's offset (multi-line texts handled).

    Raises :class:`ExprError` for syntax errors, unknown facts and type mismatches.
    """
    try:
        parser = Parser(text, tokenize(text, MAX_TOKENS), fact_type, known_facts)
        root = parser.parse()
    except Fault as fault:
        raise ExprError(diagnostic(text, fault.offset, fault.message, file, line, col)) from None
    return Expr(text, frozenset(parser.facts), root.node)
