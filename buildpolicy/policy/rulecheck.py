"""A fast "certainly valid" check of ``[[rule]]`` tables, read from the schema itself.

Schema validation was the largest part of compiling many rules (jsonschema walks
every keyword of every rule). Almost every rule is valid, so each one is first
checked by a small interpreter of the schema's own ``rule`` definition; only the
rules it cannot vouch for go through jsonschema, which reports their errors as
before. The interpreter knows a subset of JSON Schema (``type``, ``properties``,
``additionalProperties``, ``required``, ``propertyNames``, ``items``,
``pattern``, ``minLength`` and annotations); a schema using anything else turns
the fast path off rather than guess, so the schema stays the one contract.
It only ever says "valid" where jsonschema would: anything unusual (a float
priority, a datetime) is left to jsonschema.

A whole document is checked the same way (``document_checker``: the rules, then the
top level through ``$ref``, ``enum``, ``minItems`` and ``uniqueItems`` too): a document
it vouches for has no errors to report, and jsonschema is not even imported (importing
it and building its validators cost a first ``check`` a tenth of a second). A part of
the schema it does not understand (the ``if``/``then`` of knob declarations) never
vouches, so such a document goes to jsonschema.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

TYPE_CHECKING = False  # typing is not imported at run time: it costs a full `env` milliseconds
if TYPE_CHECKING:
    from typing import Any

_ANNOTATIONS = {"description", "title", "default", "examples", "$comment", "markdownDescription"}
_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


class _Unsupported(Exception):
    pass


def _never(value: Any) -> bool:
    return False


def _all_of(checks: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    """One predicate true when every one of ``checks`` is (loops, not generators: this
    runs for every value of every rule)."""
    if not checks:
        return lambda value: True
    if len(checks) == 1:
        return checks[0]

    def all_of(value) -> bool:
        for check in checks:
            if not check(value):
                return False
        return True

    return all_of


def _compile(schema: Any, defs: dict | None = None, strict: bool = True) -> Callable[[Any], bool]:
    """A predicate that is True only for values ``schema`` certainly accepts.

    ``defs``: the ``$defs`` a ``#/$defs/<name>`` ``$ref`` may name (None: no ``$ref``).
    A keyword it does not know raises ``_Unsupported`` when ``strict``; otherwise that
    part of the schema never vouches for a value (jsonschema then judges it).
    """
    if schema is True:
        return lambda value: True
    known = {"type", "properties", "additionalProperties", "required", "propertyNames", "items", "pattern", "minLength"}
    if defs is not None:
        known |= {"$ref", "enum", "minItems", "uniqueItems"}
    if not isinstance(schema, dict) or set(schema) - _ANNOTATIONS - known:
        if strict:
            raise _Unsupported
        return _never
    checks: list[Callable[[Any], bool]] = []
    if "$ref" in schema:
        ref = schema["$ref"]
        name = ref.removeprefix("#/$defs/")
        if not isinstance(ref, str) or not ref.startswith("#/$defs/") or name not in defs or "/" in name:
            if strict:
                raise _Unsupported
            return _never
        # Resolved when first used: a definition may refer to itself.
        resolved: list = []

        def ref_check(value) -> bool:
            if not resolved:
                resolved.append(_compile(defs[name], defs, strict=False))
            return resolved[0](value)

        checks.append(ref_check)
    kinds = schema.get("type")
    if kinds is not None:
        tests = [_TYPES[kind] for kind in ([kinds] if isinstance(kinds, str) else kinds)]
        checks.append(_any_type(tests))
    if "enum" in schema:
        # Only strings are vouched for: jsonschema's equality of other values (1 and 1.0,
        # true and 1) is left to jsonschema.
        allowed = frozenset(item for item in schema["enum"] if isinstance(item, str))
        checks.append(lambda value: isinstance(value, str) and value in allowed)
    if "pattern" in schema:
        search = re.compile(schema["pattern"]).search
        checks.append(lambda value: not isinstance(value, str) or search(value) is not None)
    if "minLength" in schema:
        least = schema["minLength"]
        checks.append(lambda value: not isinstance(value, str) or len(value) >= least)
    if "minItems" in schema:
        fewest = schema["minItems"]
        checks.append(lambda value: not isinstance(value, list) or len(value) >= fewest)
    if schema.get("uniqueItems") is True:
        checks.append(lambda value: not isinstance(value, list)
                      or (all(isinstance(item, str) for item in value) and len(set(value)) == len(value)))
    if "items" in schema:
        checks.append(_each(_compile(schema["items"], defs, strict), list))
    if "propertyNames" in schema:
        checks.append(_each(_compile(schema["propertyNames"], defs, strict), dict))
    if "required" in schema:
        required = tuple(schema["required"])
        checks.append(lambda value: not isinstance(value, dict) or all(k in value for k in required))
    properties = {key: _compile(sub, defs, strict) for key, sub in schema.get("properties", {}).items()}
    other = schema.get("additionalProperties", True)
    rest = None if other is False else _compile(other, defs, strict)
    if properties or other is not True:
        def check_object(value) -> bool:
            if not isinstance(value, dict):
                return True
            for key, item in value.items():
                test = properties.get(key, rest)
                if test is None or not test(item):
                    return False
            return True

        checks.append(check_object)
    return _all_of(checks)


def _any_type(tests: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    if len(tests) == 1:
        return tests[0]
    return lambda value: any(test(value) for test in tests)


def _each(check: Callable[[Any], bool], container: type) -> Callable[[Any], bool]:
    """``check`` of every item of a list (``container=list``) or every key of a dict."""
    def each(value) -> bool:
        if not isinstance(value, container):
            return True
        for item in value:
            if not check(item):
                return False
        return True

    return each


def rule_checker(schema: dict) -> Callable[[Any], bool] | None:
    """The fast check of one rule table for a profile or policy ``schema``, or None when
    the schema's ``rule`` key is not the plain array of ``$defs/rule`` this expects."""
    defs = schema.get("$defs", {})
    top = schema.get("properties", {}).get("rule", {})
    rules = defs.get("rules", {})
    if (set(top) - _ANNOTATIONS != {"$ref"} or top["$ref"] != "#/$defs/rules"
            or set(rules) - _ANNOTATIONS != {"type", "items"} or rules["type"] != "array"
            or set(rules["items"]) - _ANNOTATIONS != {"$ref"} or rules["items"]["$ref"] != "#/$defs/rule"):
        return None
    try:
        return _compile(defs.get("rule"))
    except (_Unsupported, KeyError, TypeError, re.error):
        return None


def document_checker(schema: dict) -> Callable[[Any], bool] | None:
    """A predicate true only for documents ``schema`` certainly accepts (None: no fast path).

    The ``rule`` array is judged rule by rule (``rule_checker``); the rest of the document
    by the schema's own top level, with ``rule`` standing in as an empty array (the
    ``rule`` array is valid exactly when each of its tables is: ``rule_checker`` makes
    sure the schema says nothing else about it). A part of the schema this module does
    not understand (the ``if``/``then`` of knob declarations) never vouches, so such a
    document goes to jsonschema.
    """
    rule = rule_checker(schema)
    try:
        top = {key: value for key, value in schema.items() if key not in ("$defs", "$schema", "$id")}
        rest = _compile(top, schema.get("$defs", {}), strict=False)
    except (KeyError, TypeError, re.error):
        return None
    if rule is None:
        return None

    def check(data) -> bool:
        if not isinstance(data, dict):
            return False
        rules = data.get("rule", [])
        if not isinstance(rules, list):
            return False
        for table in rules:
            if not rule(table):
                return False
        return rest({**data, "rule": []}) if "rule" in data else rest(data)

    return check


def schema_errors(validator, data: Any, check: Callable[[Any], bool] | None) -> Iterator[Any]:
    """jsonschema's errors for ``data``, with the rules ``check`` vouches for left out.

    Error paths are those of ``data``: ``rule[i]`` is the i-th rule of the file.
    """
    rules = data.get("rule") if isinstance(data, dict) else None
    if check is None or not isinstance(rules, list):
        yield from validator.iter_errors(data)
        return
    kept = [index for index, table in enumerate(rules) if not check(table)]
    if len(kept) == len(rules):
        yield from validator.iter_errors(data)
        return
    reduced = dict(data, rule=[rules[index] for index in kept])
    for error in validator.iter_errors(reduced):
        path = error.relative_path  # a top-level error's path is its absolute path
        if len(path) > 1 and path[0] == "rule" and isinstance(path[1], int):
            path[1] = kept[path[1]]
        yield error
