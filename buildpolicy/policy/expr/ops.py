"""The comparison operators of the rule language, with its rules for bools, lists and null.

A module of its own (standard library only) so that the warm ``env`` replay
(``buildpolicy.replay``) re-checks recorded comparisons with exactly the
evaluator's semantics without importing the parser.
"""

from __future__ import annotations


def _as_tuple(value):
    return tuple(value) if value.__class__ is list else value


def _op_eq(left, right):
    # Python says True == 1; the language keeps bools apart from numbers.
    if (left.__class__ is bool) is not (right.__class__ is bool):
        return False
    return _as_tuple(left) == _as_tuple(right)


def _op_ne(left, right):
    return not _op_eq(left, right)


def _ordering(compare):
    # Nodes store the operator's spelling and look these up in OPS at evaluation time, so
    # no function object ends up inside a pickled policy.
    def op(left, right):
        if left.__class__ is bool or right.__class__ is bool:
            return None
        try:
            return compare(left, right)
        except TypeError:  # only reachable with `any` facts of mismatched kinds
            return None
    return op


# Lambdas, not the operator module: one import fewer on the warm replay.
_op_lt = _ordering(lambda left, right: left < right)
_op_le = _ordering(lambda left, right: left <= right)
_op_gt = _ordering(lambda left, right: left > right)
_op_ge = _ordering(lambda left, right: left >= right)


def _op_in(left, right):
    if isinstance(right, (tuple, list, frozenset, set)):
        if isinstance(left, (bool, int, float)):
            return any(_op_eq(left, item) for item in right)
        return left in right
    if isinstance(right, str):
        return left in right if isinstance(left, str) else None
    return None


def _op_not_in(left, right):
    result = _op_in(left, right)
    return None if result is None else not result


OPS = {
    "==": _op_eq, "!=": _op_ne, "<": _op_lt, "<=": _op_le, ">": _op_gt, ">=": _op_ge,
    "in": _op_in, "not in": _op_not_in,
}


def compare(op: str, value, constant):
    """``value <op> constant`` as the rule language evaluates it: null when either is null."""
    return None if value is None or constant is None else OPS[op](value, constant)
