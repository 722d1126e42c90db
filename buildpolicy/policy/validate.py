"""Schema validation of profile and policy files, reported as ``file:line:col`` diagnostics.

The JSON Schemas in ``schema/`` are the contract (and what editors use through a
``#:schema`` comment). Every schema error is reported, not just the first, each
located at the offending key or value in the TOML source and worded for a TOML
user: key paths such as ``rule[2].env.FOO`` and ``knobs.linker.aliases[1]``,
TOML type names, a suggestion for a misspelt key. ``str(error)`` is never shown
(it dumps the schema).
"""

from __future__ import annotations

import datetime
import re
from _thread import allocate_lock  # threading's Lock, without importing threading (a prompt after an edit validates)

from buildpolicy.errors import Diagnostic, closest
from buildpolicy.filestate import json_value
from buildpolicy.policy.tomlpos import TomlDocument

__all__ = ["KINDS", "validate_document", "validate_data", "toml_path"]

KINDS = ("profile", "policy")

_schemas: dict = {}
_validators: dict = {}
_lock = allocate_lock()

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
    "array": "an array",
    "object": "a table",
    "null": "null",
}

# Human wording for the schemas' patterns.
_PATTERN_HELP = {
    r"^[A-Za-z0-9][A-Za-z0-9._:-]*$": "a rule id starts with a letter or digit and contains only letters, digits, '.', '_', ':' and '-'",
    r"^[a-z][a-z0-9_]*$": "a knob name starts with a lower-case letter and contains only lower-case letters, digits and '_'",
    r"^[A-Za-z_][A-Za-z0-9_]*$": "an environment variable name contains only letters, digits and '_' and does not start with a digit",
}


def _schema(kind: str) -> dict:
    """The JSON Schema of ``kind`` documents, read once."""
    schema = _schemas.get(kind)
    if schema is None:
        if kind not in KINDS:
            raise ValueError(f"unknown document kind {kind!r} (expected one of {', '.join(KINDS)})")
        from buildpolicy.data import schema_dir

        with _lock:
            schema = _schemas.get(kind)
            if schema is None:
                path = schema_dir() / f"{kind}.schema.json"
                schema = _schemas[kind] = json_value(path.read_text(encoding="utf-8"))
    return schema


def _validator(kind: str):
    """Return the compiled (and cached) validator for ``kind``."""
    validator = _validators.get(kind)
    if validator is None:
        schema = _schema(kind)
        from jsonschema import Draft202012Validator

        with _lock:
            validator = _validators.get(kind)
            if validator is None:
                validator = _validators[kind] = Draft202012Validator(schema)
    return validator


def validate_document(doc: TomlDocument, kind: str) -> list[Diagnostic]:
    """Validate a parsed profile (``kind="profile"``) or policy file (``"policy"``).

    Returns every problem found, as Diagnostics sorted by position in the file;
    an empty list means the document conforms to its schema.
    """
    return validate_data(doc.data, kind, doc)


_fast_checks: dict = {}  # kind -> (rule checker, document checker) of buildpolicy.policy.rulecheck


def schema_errors(data: dict, kind: str):
    """jsonschema's errors for ``data`` as a ``kind`` document. A document the fast check
    of ``buildpolicy.policy.rulecheck`` vouches for as a whole has none (and jsonschema is
    not even imported); otherwise the rules it vouches for are not walked again."""
    from buildpolicy.policy.rulecheck import document_checker, rule_checker, schema_errors as errors_of

    checks = _fast_checks.get(kind)
    if checks is None:
        schema = _schema(kind)
        checks = _fast_checks[kind] = (rule_checker(schema), document_checker(schema))
    rule_check, document_check = checks
    if document_check is not None and document_check(data):
        return iter(())
    return errors_of(_validator(kind), data, rule_check)


def validate_data(data: dict, kind: str, doc: TomlDocument | None = None) -> list[Diagnostic]:
    """Validate ``data`` against the ``kind`` schema; positions come from ``doc`` when given."""
    errors = sorted(schema_errors(data, kind), key=lambda e: (_path_sort_key(e.absolute_path), e.validator))
    diagnostics: list[Diagnostic] = []
    seen: set = set()
    for error in errors:
        for keypath, where, message in _describe(error, data, _schema(kind)):
            line, col = _position(doc, keypath, where)
            diagnostic = Diagnostic(doc.path if doc is not None else None, line, col, message)
            ident = (line, col, message)
            if ident not in seen:
                seen.add(ident)
                diagnostics.append(diagnostic)
    diagnostics.sort(key=Diagnostic.sort_key)
    return diagnostics


def _path_sort_key(path) -> tuple:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in path)


def _position(doc: TomlDocument | None, keypath: tuple, where: str) -> tuple[int | None, int | None]:
    """Where to point: the key (``where == "key"``) or the value; 1:1 when nothing is recorded."""
    if doc is None:
        return None, None
    pos = doc.key_pos(keypath) if where == "key" else doc.value_pos(keypath)
    return pos or (1, 1)


# --------------------------------------------------------------------------- wording


def toml_path(keypath) -> str:
    """Spell a key path TOML-style: ``rule[2].env.FOO``, ``knobs."odd.key"``."""
    out = []
    for part in keypath:
        if isinstance(part, int):
            out.append(f"[{part}]")
        else:
            key = part if _BARE_KEY.match(part) else _quoted(part)
            out.append(("." if out else "") + key)
    return "".join(out) or "top level"


def _quoted(text: str) -> str:
    """``text`` as a double-quoted string (JSON's escapes are TOML's), for messages only:
    json is imported here, not on the way to a valid document."""
    import json

    return json.dumps(text, ensure_ascii=False)


def _toml_literal(value) -> str:
    """Spell a value as it would be written in TOML (shortened when long)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = _quoted(value) if "'" in value or "\n" in value else f"'{value}'"
    elif isinstance(value, (int, float)):
        text = repr(value)
    elif isinstance(value, (datetime.date, datetime.time)):
        text = value.isoformat()
    else:
        return ""
    return text if len(text) <= 60 else text[:57] + "..."


def _describe_value(value) -> str:
    """``string '5'``, ``integer 5``, ``array``, ``table``..."""
    if isinstance(value, bool):
        kind = "boolean"
    elif isinstance(value, str):
        kind = "string"
    elif isinstance(value, int):
        kind = "integer"
    elif isinstance(value, float):
        kind = "float"
    elif isinstance(value, list):
        return "an array"
    elif isinstance(value, dict):
        return "a table"
    elif isinstance(value, datetime.datetime):
        kind = "date-time"
    elif isinstance(value, datetime.date):
        kind = "date"
    elif isinstance(value, datetime.time):
        kind = "time"
    else:
        return type(value).__name__
    return f"{kind} {_toml_literal(value)}"


def _join_alternatives(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _suggest(word: str, choices) -> str:
    close = closest(word, choices)
    return f"; did you mean '{close}'?" if close else ""


def _container_name(keypath: tuple, data) -> str:
    """Name the table holding an unknown key: ``rule 'x'``, ``rule[3]``, ``knobs.linker``."""
    if len(keypath) == 2 and keypath[0] == "rule" and isinstance(keypath[1], int):
        try:
            rule_id = data["rule"][keypath[1]].get("id")
        except (KeyError, IndexError, TypeError, AttributeError):
            rule_id = None
        if isinstance(rule_id, str):
            return f"rule '{rule_id}'"
    return toml_path(keypath)


def _describe(error, data, root_schema: dict) -> list[tuple[tuple, str, str]]:
    """Turn one jsonschema error into (keypath, "key"|"value", message) items."""
    path = tuple(error.absolute_path)
    schema_path = list(error.absolute_schema_path)
    validator = error.validator
    instance = error.instance
    name = toml_path(path)

    # A top-level key that is neither known nor a table of plugin options.
    if len(path) == 1 and schema_path[:1] == ["additionalProperties"] and validator == "type":
        allowed = list(root_schema.get("properties", {}))
        return [
            (
                path,
                "key",
                f"unknown key '{path[0]}' at top level{_suggest(path[0], allowed)} (allowed: {', '.join(allowed)}; "
                f"any other top-level name must be a [table] of plugin options)",
            )
        ]

    if "propertyNames" in schema_path:
        # jsonschema reports a bad key name at the table holding it.
        bad = instance
        keypath = path + (bad,)
        if validator == "pattern":
            help_text = _PATTERN_HELP.get(error.validator_value, f"it must match {error.validator_value}")
        elif validator == "minLength":
            help_text = "a key must not be empty"
        else:
            help_text = error.message
        what = "knob name" if path == ("knobs",) else "key"
        return [(keypath, "key", f"{toml_path(keypath)}: invalid {what} '{bad}': {help_text}")]

    if validator == "additionalProperties" and isinstance(instance, dict):
        properties = error.schema.get("properties", {})
        patterns = error.schema.get("patternProperties", {})
        extras = [
            key
            for key in instance
            if key not in properties and not any(re.search(p, key) for p in patterns)
        ]
        allowed = list(properties)
        container = _container_name(path, data)
        return [
            (
                path + (key,),
                "key",
                f"unknown key '{key}' in {container}{_suggest(key, allowed)} (allowed: {', '.join(allowed)})",
            )
            for key in extras
        ]

    if validator == "required" and isinstance(instance, dict):
        missing = [key for key in error.validator_value if key not in instance]
        return [(path, "value", f"{name}: missing required key '{key}'") for key in missing]

    if validator == "type":
        expected = error.validator_value
        expected = [expected] if isinstance(expected, str) else list(expected)
        if "number" in expected and "integer" in expected:
            expected.remove("integer")
        names = [_TYPE_NAMES.get(t, t) for t in expected]
        if path == ("rule",) and "array" in expected:
            names = ["an array of tables ([[rule]] headers)"]
        message = f"{name}: expected {_join_alternatives(names)}, got {_describe_value(instance)}"
        if expected == ["string"] and isinstance(instance, (int, float, bool)):
            message += f"; quote it: \"{_toml_literal(instance)}\""
        elif expected == ["array"] and _toml_literal(instance) and not isinstance(instance, (dict, list)):
            item = _quoted(instance) if isinstance(instance, str) else _toml_literal(instance)
            message += f"; write it as a list: [{item}]"
        return [(path, "value", message)]

    if validator == "enum":
        choices = error.validator_value
        message = (
            f"{name}: {_describe_value(instance)} is not one of "
            f"{', '.join(_toml_literal(c) or str(c) for c in choices)}"
        )
        if isinstance(instance, str):
            message += _suggest(instance, choices)
        return [(path, "value", message)]

    if validator == "pattern":
        help_text = _PATTERN_HELP.get(error.validator_value)
        if help_text is None:
            help_text = f"it must match {error.validator_value}"
        return [(path, "value", f"{name}: invalid value {_toml_literal(instance)}: {help_text}")]

    if validator == "uniqueItems":
        return [(path, "value", f"{name}: the array has duplicate items")]

    if validator == "minItems":
        return [(path, "value", f"{name}: the array needs at least {error.validator_value} item(s)")]

    if validator == "minLength" and isinstance(instance, str) and error.validator_value == 1:
        return [(path, "value", f"{name}: must not be empty")]

    # Anything else: jsonschema's own one-line message (never str(error)).
    return [(path, "value", f"{name}: {error.message}")]
