"""Fact types: check probe results and coerce values given by people (facts files, test cases)."""

from __future__ import annotations

Any = object  # annotations only: importing typing costs milliseconds on the replay path

from buildpolicy.errors import BuildpolicyError

FACT_TYPES = ("string", "int", "size", "bool", "list", "any")

EXPECTED = {
    "string": "a string",
    "int": "an integer",
    "size": "a size such as 16GiB or 512MiB, or a byte count",
    "bool": "true or false",
    "list": "a list",
    "any": "any value",
}


def matches_type(fact_type: str, value: Any) -> bool:
    """True when ``value`` (not None) is a valid probed value of ``fact_type``."""
    if fact_type == "any":
        return True
    if fact_type == "string":
        return isinstance(value, str)
    if fact_type in ("int", "size"):
        # bool is an int subclass; a fact of true is never a count.
        return isinstance(value, int) and not isinstance(value, bool) and (fact_type == "int" or value >= 0)
    if fact_type == "bool":
        return isinstance(value, bool)
    if fact_type == "list":
        return isinstance(value, list)
    return False


def coerce_value(fact_type: str, value: Any) -> Any:
    """Return ``value`` converted to ``fact_type``; None stays None (unknown).

    Sizes accept size strings (``"16GiB"``), bools accept ``"true"``/``"false"``,
    ints accept integral floats and digit strings. Raises ValueError otherwise.
    """
    if value is None or fact_type == "any":
        return value
    if fact_type == "size":
        from buildpolicy.sizes import parse_size

        return parse_size(value)  # raises ValueError for bools, negatives and junk
    if fact_type == "int":
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
        raise ValueError
    if fact_type == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError
    if fact_type == "list":
        if isinstance(value, (list, tuple)):
            return list(value)
        raise ValueError
    if fact_type == "string":
        if isinstance(value, str):
            return value
        raise ValueError
    raise ValueError


def coerce_fact(name: str, fact_type: str, value: Any, origin: str | None = None) -> Any:
    """Coerce the value given for fact ``name``; a bad one raises BuildpolicyError.

    The message names the fact, the value and the expected type, prefixed by
    ``origin`` (a file name) when known.
    """
    try:
        return coerce_value(fact_type, value)
    except ValueError:
        where = f"{origin}: " if origin else ""
        raise BuildpolicyError(
            f"{where}fact {name!r} is {fact_type}: expected {EXPECTED[fact_type]}, got {value!r}"
        ) from None
