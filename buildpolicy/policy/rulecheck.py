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
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
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


def _compile(schema: Any) -> Callable[[Any], bool]:
    """A predicate that is True only for values ``schema`` certainly accepts."""
    if schema is True:
        return lambda value: True
    if not isinstance(schema, dict) or set(schema) - _ANNOTATIONS - {
        "type", "properties", "additionalProperties", "required", "propertyNames", "items", "pattern", "minLength",
    }:
        raise _Unsupported
    checks: list[Callable[[Any], bool]] = []
    kinds = schema.get("type")
    if kinds is not None:
        tests = [_TYPES[kind] for kind in ([kinds] if isinstance(kinds, str) else kinds)]
        checks.append(lambda value: any(test(value) for test in tests))
    if "pattern" in schema:
        search = re.compile(schema["pattern"]).search
        checks.append(lambda value: not isinstance(value, str) or search(value) is not None)
    if "minLength" in schema:
        least = schema["minLength"]
        checks.append(lambda value: not isinstance(value, str) or len(value) >= least)
    if "items" in schema:
        item = _compile(schema["items"])
        checks.append(lambda value: not isinstance(value, list) or all(item(v) for v in value))
    if "propertyNames" in schema:
        name = _compile(schema["propertyNames"])
        checks.append(lambda value: not isinstance(value, dict) or all(name(k) for k in value))
    if "required" in schema:
        required = tuple(schema["required"])
        checks.append(lambda value: not isinstance(value, dict) or all(k in value for k in required))
    properties = {key: _compile(sub) for key, sub in schema.get("properties", {}).items()}
    other = schema.get("additionalProperties", True)
    rest = None if other is False else _compile(other)
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
    return lambda value: all(check(value) for check in checks)


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
