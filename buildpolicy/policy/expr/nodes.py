"""The compiled form of an expression: a small tree of plain nodes, and its evaluation.

Every node has ``eval(lookup, trace)`` returning its value; condition nodes return
True, False or None (null).  ``trace.unknown`` is a set collecting facts that were
consulted and were null; ``trace.exact``/``trace.condition``, when set, learn how the
result depends on each fact (see ``Expr.evaluate``).  Nodes are plain __slots__
classes so they pickle (protocol >= 2).
"""

from __future__ import annotations

from collections.abc import Callable

TYPE_CHECKING = False  # typing is not imported at run time: it costs a full `env` milliseconds
if TYPE_CHECKING:
    from typing import Any

from buildpolicy.policy.expr.ops import OPS, compare
from buildpolicy.sizes import parse_size


class Trace:
    __slots__ = ("unknown", "exact", "condition")

    def __init__(self, exact, condition):
        self.unknown: set[str] = set()
        self.exact = exact
        self.condition = condition


class Node:
    """A node of a compiled expression. Each class pickles as its constructor call
    (``__reduce__``: the class and its slots in order), the cheapest form to write and
    to read for the tens of thousands of nodes a large policy set caches."""

    __slots__ = ()

    def __repr__(self):
        args = ", ".join(repr(getattr(self, name)) for name in self.__slots__)
        return f"{type(self).__name__}({args})"


class Literal(Node):
    """A constant (lists are stored as tuples)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return (Literal, (self.value,))

    def eval(self, lookup, trace):
        return self.value


class Fact(Node):
    """A fact reference; ``is_size`` converts string values such as ``'16GiB'``."""

    __slots__ = ("name", "is_size")

    def __init__(self, name: str, is_size: bool = False):
        self.name = name
        self.is_size = is_size

    def __reduce__(self):
        return (Fact, (self.name, self.is_size))

    def eval(self, lookup, trace):
        if trace.exact is not None:
            trace.exact(self.name)
        return self.read(lookup, trace)

    def read(self, lookup, trace):
        """The fact's value, without telling ``trace`` how it is used."""
        value = lookup(self.name)
        if value is None:
            trace.unknown.add(self.name)
        elif self.is_size and value.__class__ is str:
            # A --facts file may spell sizes as text; convert rather than fail to compare.
            try:
                value = parse_size(value)
            except ValueError:
                pass
        return value


class Not(Node):
    """``not X``: X that is null (a comparison with an unknown fact) counts as false, so ``not X`` is true."""

    __slots__ = ("operand",)

    def __init__(self, operand):
        self.operand = operand

    def __reduce__(self):
        return (Not, (self.operand,))

    def eval(self, lookup, trace):
        return self.operand.eval(lookup, trace) is not True


class And(Node):
    """``and``, short-circuiting on a false left side (null counts as false)."""

    __slots__ = ("left", "right")

    def __init__(self, left, right):
        self.left = left
        self.right = right

    def __reduce__(self):
        return (And, (self.left, self.right))

    def eval(self, lookup, trace):
        return self.left.eval(lookup, trace) is True and self.right.eval(lookup, trace) is True


class Or(Node):
    """``or``, short-circuiting on a true left side (null counts as false)."""

    __slots__ = ("left", "right")

    def __init__(self, left, right):
        self.left = left
        self.right = right

    def __reduce__(self):
        return (Or, (self.left, self.right))

    def eval(self, lookup, trace):
        return self.left.eval(lookup, trace) is True or self.right.eval(lookup, trace) is True


class IsNull(Node):
    """``X == null`` (``negate`` False) or ``X != null``: never null itself."""

    __slots__ = ("operand", "negate")

    def __init__(self, operand, negate: bool):
        self.operand = operand
        self.negate = negate

    def __reduce__(self):
        return (IsNull, (self.operand, self.negate))

    def eval(self, lookup, trace):
        return (self.operand.eval(lookup, trace) is None) is not self.negate


class Compare(Node):
    """A binary comparison; null if either operand is null."""

    __slots__ = ("op", "left", "right")

    def __init__(self, op: str, left, right):
        self.op = op
        self.left = left
        self.right = right

    def __reduce__(self):
        return (Compare, (self.op, self.left, self.right))

    def eval(self, lookup, trace):
        if trace.condition is not None and self.left.__class__ is Fact and self.right.__class__ is Literal:
            # `fact <op> constant`: the result depends on the fact only through this
            # comparison, so the trace learns the comparison, not the exact value.
            left = self.left.read(lookup, trace)
            result = compare(self.op, left, self.right.value)
            trace.condition(self.left.name, self.op, self.right.value, result)
            return result
        left = self.left.eval(lookup, trace)
        if left is None:
            return None  # decided: don't probe the right side
        right = self.right.eval(lookup, trace)
        if right is None:
            return None
        return OPS[self.op](left, right)


class Expr:
    """A compiled, type-checked ``when`` expression.

    ``text`` is the source, ``facts_used`` every fact name it references.  Instances are
    immutable in practice and picklable.
    """

    __slots__ = ("text", "facts_used", "_root")

    def __init__(self, text: str, facts_used: frozenset, root: Node):
        self.text = text
        self.facts_used = facts_used
        self._root = root

    def __getstate__(self):
        return (self.text, self.facts_used, self._root)

    def __setstate__(self, state):
        self.text, self.facts_used, self._root = state

    def evaluate(self, lookup: Callable[[str], Any], *, exact: Callable[[str], None] | None = None,
                 condition: Callable[[str, str, Any, Any], None] | None = None) -> tuple[bool, frozenset[str]]:
        """Evaluate against ``lookup(name) -> value or None``.

        Returns ``(matched, unknown)``: ``matched`` is True only when the expression is
        definitely true (null counts as false, see the module docstring); ``unknown`` are
        the facts that were consulted and were null.  Facts after a decided ``and``/``or``
        are not looked up.

        With ``condition`` (and ``exact``) given, the evaluation reports what its result
        depends on: ``condition(fact, op, constant, outcome)`` for each ``fact <op>
        constant`` comparison evaluated, ``exact(fact)`` for a fact used any other way.
        While every reported comparison keeps its outcome and every exact fact its value,
        the result cannot change (the warm ``env`` replay relies on this).
        """
        trace = Trace(exact, condition)
        result = self._root.eval(lookup, trace)
        return result is True, frozenset(trace.unknown)

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"

    def __eq__(self, other):
        if not isinstance(other, Expr):
            return NotImplemented
        return self.text == other.text and repr(self._root) == repr(other._root)

    def __hash__(self):
        return hash(self.text)


def _conjuncts(node: Node):
    if isinstance(node, And):
        yield from _conjuncts(node.left)
        yield from _conjuncts(node.right)
    else:
        yield node


def required_values(expr: Expr | None) -> dict[str, Any]:
    """Facts the expression pins to one value in its top-level ``and`` chain.

    ``os == 'linux' and process.earlyoom and not ci`` gives
    ``{"os": "linux", "process.earlyoom": True, "ci": False}``. ``check`` uses
    it to tell whether two rules can ever match together.
    """
    pinned: dict[str, Any] = {}
    if expr is None:
        return pinned
    for node in _conjuncts(expr._root):
        if isinstance(node, Fact):
            pinned[node.name] = True
        elif isinstance(node, Not) and isinstance(node.operand, Fact):
            pinned[node.operand.name] = False
        elif isinstance(node, Compare) and node.op == "==":
            if isinstance(node.left, Fact) and isinstance(node.right, Literal):
                pinned[node.left.name] = node.right.value
            elif isinstance(node.right, Fact) and isinstance(node.left, Literal):
                pinned[node.right.name] = node.left.value
    return pinned


def may_both_match(first: Expr | None, second: Expr | None) -> bool:
    """False when the two expressions pin one fact to different values, else True."""
    a, b = required_values(first), required_values(second)
    return all(a[name] == b[name] for name in a.keys() & b.keys())
