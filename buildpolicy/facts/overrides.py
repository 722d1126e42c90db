"""``--facts FILE``: read fact overrides from JSON or TOML, dotted keys or nested tables."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from buildpolicy.errors import BuildpolicyError, Diagnostic, closest
from buildpolicy.facts.coerce import coerce_fact
from buildpolicy.facts.store import FactRegistry, FactSpec, make_registry

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """Flatten nested tables into dotted names: ``{"memory": {"total": 1}}`` → ``{"memory.total": 1}``.

    ``{"env": {"CI": "1"}}`` becomes ``env.CI`` and ``{"tool": {"ld.lld": …}}`` ``tool.ld.lld``.
    """
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def _parse(path: Path, text: str) -> Any:
    if path.suffix.lower() == ".json":
        import json

        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise BuildpolicyError(Diagnostic(path, exc.lineno, exc.colno, f"invalid JSON: {exc.msg}")) from None
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        line, col = (int(match.group(1)), int(match.group(2))) if match else (None, None)
        message = _TOML_POSITION.sub("", message)
        raise BuildpolicyError(Diagnostic(path, line, col, f"invalid TOML: {message}")) from None


def load_facts_file(path: str | Path, extra_specs: Mapping[str, FactSpec] | Iterable[FactSpec] = ()) -> dict[str, Any]:
    """Read a facts file (``.json`` is JSON, anything else TOML) into coerced overrides.

    Keys may be dotted (``"memory.total" = "16GiB"``) or nested (``[memory] total = …``).
    Raises BuildpolicyError for unreadable or malformed files (with file:line:col),
    unknown fact names (all listed, with suggestions) and values of the wrong type.
    ``extra_specs`` adds plugin facts, as for ``FactStore``.
    """
    registry = make_registry(extra_specs)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildpolicyError(f"{path}: cannot read facts file: {getattr(exc, 'strerror', None) or exc}") from None
    data = _parse(path, text)
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
