"""Type checking of comparisons and conditions, at load time.

Types are those of the facts model; see the package docstring for the rules.
"""

from __future__ import annotations

from buildpolicy.policy.expr.nodes import Compare, Fact, IsNull, Literal
from buildpolicy.policy.expr.tokens import Fault, Tok

NUMERIC = frozenset({"int", "size", "number"})
ARTICLE = {"int": "an int", "any": "any value", "null": "null"}


def type_class(t: str) -> str:
    """The comparison class of a type: int/size/number all compare as numbers."""
    return "number" if t in NUMERIC else t


def with_article(t: str) -> str:
    """A type name with its article, for messages."""
    return ARTICLE.get(t, f"a {t}")


class Typed:
    """A parsed sub-expression: node, type, element type (lists) and source span."""

    __slots__ = ("node", "type", "elem", "pos", "end")

    def __init__(self, node, type_, pos, end, elem="any"):
        self.node = node
        self.type = type_
        self.elem = elem
        self.pos = pos
        self.end = end


def src(text: str, typed: Typed) -> str:
    """Source text of a sub-expression, shortened for messages."""
    snippet = " ".join(text[typed.pos:typed.end].split())
    return snippet if len(snippet) <= 40 else snippet[:37] + "..."


def describe(text: str, typed: Typed) -> str:
    """A sub-expression and its type, for messages: ``memory.total (a size)``."""
    return f"{src(text, typed)} ({with_article(typed.type)})"


def require_condition(text: str, typed: Typed, where: str) -> None:
    """Conditions must be bool (or any); anything else is a load-time type error."""
    if typed.type in ("bool", "any"):
        return
    hint = ""
    if isinstance(typed.node, Fact):
        example = {"string": "== '...'", "list": "!= []", "null": ""}.get(typed.type, "> 0")
        hint = f"; compare it, e.g. {typed.node.name} {example}"
    raise Fault(typed.pos, f"{where} needs a condition, but {describe(text, typed)} is not "
                            f"a bool{hint}")


def check_compare(text: str, op: str, op_tok: Tok, left: Typed, right: Typed) -> Typed:
    """Type-check ``left op right`` (sub-expressions of ``text``) and build its node."""
    span = (left.pos, right.end)
    lt, rt = left.type, right.type
    mismatch = (f"type mismatch: cannot compare {describe(text, left)} with "
                f"{describe(text, right)} using '{op}'")

    if op in ("==", "!="):
        if lt == "null" or rt == "null":
            # The documented exception: an explicit test for an unknown fact.
            if lt == "null" and rt == "null":
                return Typed(Literal(op == "=="), "bool", *span)
            operand = right if lt == "null" else left
            return Typed(IsNull(operand.node, op == "!="), "bool", *span)
        if lt != "any" and rt != "any" and type_class(lt) != type_class(rt):
            raise Fault(op_tok.pos, mismatch)
        return Typed(Compare(op, left.node, right.node), "bool", *span)

    for side in (left, right):
        if side.type == "null":
            raise Fault(side.pos, f"'{op}' with null is always false; test a fact with "
                                   "'== null' or '!= null'")

    if op in ("in", "not in"):
        if rt == "list":
            if lt == "list":
                raise Fault(left.pos, f"the left side of '{op}' must be a single value, "
                                       f"but {describe(text, left)} is a list")
            if lt != "any" and right.elem != "any" and type_class(lt) != type_class(right.elem):
                raise Fault(op_tok.pos, f"type mismatch: {describe(text, left)} can never "
                                         f"be in {src(text, right)} (a list of "
                                         f"{type_class(right.elem)}s)")
        elif rt == "string":
            if lt not in ("string", "any"):
                raise Fault(op_tok.pos, f"type mismatch: '{op}' with a string on the right "
                                         f"tests for a substring, but "
                                         f"{describe(text, left)} is not a string")
        elif rt != "any":
            raise Fault(right.pos, f"the right side of '{op}' must be a list or a string, "
                                    f"but {describe(text, right)} is not")
        return Typed(Compare(op, left.node, right.node), "bool", *span)

    # Ordering: numbers with numbers, strings with strings.
    for side in (left, right):
        if side.type in ("bool", "list"):
            raise Fault(side.pos, f"'{op}' cannot order {describe(text, side)}; only "
                                   "numbers, sizes and strings have an order")
    if lt != "any" and rt != "any" and type_class(lt) != type_class(rt):
        raise Fault(op_tok.pos, mismatch)
    return Typed(Compare(op, left.node, right.node), "bool", *span)
