"""``--facts FILE``: read fact overrides from JSON or TOML, dotted keys or nested tables.

A facts file is input from the command line, so it is read as the user gave it
but never without bounds: a regular file or a pipe (``--facts <(…)``) of at
most ``MAX_FACTS_BYTES``, values nested at most ``MAX_NESTING`` deep and
numbers that are finite and fit in 64 bits; anything else is an error (exit 2)
with the file's line and column, never a traceback or a hang.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from buildpolicy.errors import BuildpolicyError, Diagnostic, closest
from buildpolicy.facts.coerce import coerce_fact
from buildpolicy.facts.store import FactRegistry, FactSpec, make_registry

MAX_FACTS_BYTES = 16 << 20
MAX_NESTING = 32  # as in policy files (buildpolicy.policy.tomlpos)
_INT_RANGE = (-(1 << 63), (1 << 64) - 1)  # what a fact can mean: a count, a byte size

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]|-?(?:\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|NaN|-?Infinity')


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """Flatten nested tables into dotted names: ``{"memory": {"total": 1}}`` → ``{"memory.total": 1}``.

    ``{"env": {"CI": "1"}}`` becomes ``env.CI`` and ``{"tool": {"ld.lld": …}}`` ``tool.ld.lld``.
    """
    flat: dict[str, Any] = {}
    # Depth first, in file order, without recursion: a stack of the tables being walked.
    stack = [(prefix, iter(data.items()))]
    while stack:
        name_prefix, items = stack[-1]
        for key, value in items:
            name = f"{name_prefix}.{key}" if name_prefix else str(key)
            if isinstance(value, dict):
                stack.append((name, iter(value.items())))
                break
            flat[name] = value
        else:
            stack.pop()
    return flat


def _bad_number(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and not _INT_RANGE[0] <= value <= _INT_RANGE[1]


def _first_problem(data: Any) -> str | None:
    """What is wrong with parsed ``data``: nested too deeply, or a number out of range; None when nothing."""
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_NESTING:
            return "nesting"
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif _bad_number(value):
            return "number"
    return None


def _nesting_message() -> str:
    return f"values nested more than {MAX_NESTING} levels deep"


def _number_message(literal: str) -> str:
    return f"number {literal} is out of range (a fact's number is finite and fits in 64 bits)"


def _json_problem_at(text: str, problem: str) -> tuple[int, str]:
    """The offset and message of the first too-deep value or out-of-range number in JSON ``text``.

    Depths count as in ``_first_problem``: the top-level object is at 0, its values at 1.
    """
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in ("]", "}"):
            depth -= 1
            continue
        if problem == "nesting":
            if depth > MAX_NESTING:
                return match.start(), _nesting_message()
        elif token[0] not in '"[{':
            try:
                number = float(token) if any(c in token for c in ".eEIN") else int(token)
            except ValueError:  # more digits than int() converts
                return match.start(), _number_message(token[:40])
            if _bad_number(number):
                return match.start(), _number_message(token[:40])
        if token in ("[", "{"):
            depth += 1
    return 0, _nesting_message() if problem == "nesting" else "a number is out of range"


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _parse_json(path: Path, text: str) -> Any:
    import json

    def refuse_constant(name: str):
        raise ValueError(name)  # NaN, Infinity: not JSON, and not a fact

    try:
        data = json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise BuildpolicyError(Diagnostic(path, exc.lineno, exc.colno, f"invalid JSON: {exc.msg}")) from None
    except RecursionError:
        problem = "nesting"
    except ValueError:  # a refused constant, or an integer of more digits than int() takes
        problem = "number"
    else:
        problem = _first_problem(data)
        if problem is None:
            return data
    offset, message = _json_problem_at(text, problem)
    raise BuildpolicyError(Diagnostic(path, *_position(text, offset), f"invalid JSON: {message}"))


def _parse_toml(path: Path, text: str) -> Any:
    from buildpolicy.policy.tomlpos import parse_toml

    doc = parse_toml(path, text)  # TomlSyntaxError (exit 2) at file:line:col, deep nesting included
    stack: list[tuple[tuple, Any]] = [((), doc.data)]
    while stack:  # the first out-of-range number, located by its key path
        keypath, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((keypath + (key,), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((keypath + (index,), item) for index, item in reversed(list(enumerate(value))))
        elif _bad_number(value):
            line, col = doc.value_pos(keypath) or (None, None)
            raise BuildpolicyError(Diagnostic(path, line, col, f"invalid TOML: {_number_message(str(value))}"))
    return doc.data


def load_facts_file(path: str | Path, extra_specs: Mapping[str, FactSpec] | Iterable[FactSpec] = ()) -> dict[str, Any]:
    """Read a facts file (``.json`` is JSON, anything else TOML) into coerced overrides.

    Keys may be dotted (``"memory.total" = "16GiB"``) or nested (``[memory] total = …``).
    Raises BuildpolicyError for unreadable or malformed files (with file:line:col),
    unknown fact names (all listed, with suggestions) and values of the wrong type.
    ``extra_specs`` adds plugin facts, as for ``FactStore``.
    """
    from buildpolicy.filestate import read_bounded

    registry = make_registry(extra_specs)
    path = Path(path)
    try:
        # A pipe is fine (`--facts <(…)`); /dev/zero, a directory, a FIFO nobody writes to are not.
        text = read_bounded(path, MAX_FACTS_BYTES, pipes=True).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildpolicyError(f"{path}: cannot read facts file: {getattr(exc, 'strerror', None) or exc}") from None
    data = _parse_json(path, text) if path.suffix.lower() == ".json" else _parse_toml(path, text)
    if not isinstance(data, dict):
        raise BuildpolicyError(f"{path}: a facts file must hold a table of facts, not {type(data).__name__}")
    facts = flatten(data)
    errors: list[str] = []
    unknown = [name for name in facts if registry.fact_type(name) is None]
    if unknown:
        errors.append(f"{path}: unknown fact(s): {', '.join(_with_suggestion(n, registry) for n in unknown)}")
    result = {}
    for name, value in facts.items():
        if name in unknown:
            continue
        try:
            result[name] = coerce_fact(name, registry.fact_type(name), value, origin=str(path))
        except BuildpolicyError as exc:
            errors.extend(exc.messages)
    if errors:
        raise BuildpolicyError(errors)
    return result


def _with_suggestion(name: str, registry: FactRegistry) -> str:
    close = closest(name, registry.known_fact_names())
    return f"{name} (did you mean {close}?)" if close else name
