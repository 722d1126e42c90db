"""Knob values as people read them: ``get``, ``knobs``, and the notes of ``set``/``unset``.

Values are shown as a user would type them (``unset``, ``none``, ``a, b``,
``on``), never as Python values (``None``, ``()``). Sources are the layer and
the file:line, or the variable, that gave the value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from buildpolicy.errors import BuildpolicyError, closest


def display_value(value: Any) -> str:
    """A knob value as a person reads (and ``set`` accepts) it."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value) if value else "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def json_value(value: Any) -> Any:
    """A knob value for JSON (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value


def source_text(provenance) -> str:
    """Where a knob's value came from: ``user ~/.config/buildpolicy/knobs.toml:6``, ``env $BUILDPOLICY_JOBS``…"""
    if provenance.layer == "default":  # source: "default (declared by plugin jobs)"
        return "default of " + provenance.source.removeprefix("default (declared by ").removesuffix(")")
    if provenance.file:
        return f"{provenance.layer} {provenance.where()}"
    return f"{provenance.layer} {provenance.source}"


def source_json(provenance) -> dict[str, Any]:
    """A knob's source for JSON: layer, file, line, source."""
    return provenance.to_json()


def resolve_all(cwd: Path, environ) -> tuple[dict, dict]:
    """``(specs, values)``: every declared knob and its effective value here, as ``env``
    would resolve it (untrusted project values left out and reported, not refused).

    A bad value the user wrote (a file, ``--set``) is an error here too (exit 2, file:line:col).
    """
    from buildpolicy.engine.pipeline import Request, prepare
    from buildpolicy.policy.knobs import resolve_knobs

    prepared = prepare(Request(cwd=cwd, environ=environ, command="knobs"))
    warnings: list[str] = []
    values = resolve_knobs(prepared.knob_specs.values(), prepared.file_knobs, prepared.baseline, (), warnings.append)
    return prepared.knob_specs, values


def unknown_knob(name: str, known) -> BuildpolicyError:
    """The error for a knob name nothing declares, with the closest one."""
    close = closest(name, sorted(known))
    hint = f"did you mean {close!r}?" if close else "`buildpolicy knobs` lists them"
    return BuildpolicyError(f"unknown knob {name!r} ({hint})")


# Statuses of a decision that kept what the caller's environment chose.
INHERITED_STATUSES = ("inherited", "external:")


def environment_notes(cwd: Path, environ, name: str, declared_by: str) -> list[str]:
    """What in the caller's environment still decides instead of knob ``name``, after a ``set``.

    For each variable the knob's decision (the decision of that name, or of the plugin
    declaring it) would set: a value the caller's environment holds either still wins
    (an inherited value wins unless forced), or is replaced by ``env``/``exec`` while
    cargo run without buildpolicy still reads it. Empty when nothing can be told (the
    run fails here): the edit itself already succeeded.
    """
    from buildpolicy.engine.pipeline import Request, evaluate

    try:
        result = evaluate(Request(cwd=cwd, environ=environ, command="set", trust="report"))
    except BuildpolicyError:
        return []
    plugin = declared_by.removeprefix("plugin ") if declared_by.startswith("plugin ") else None
    sources = {f"plugin {d.source}" for key, d in result.decisions.items() if key == name or d.source == plugin}
    notes = []
    decision = result.decisions.get(name)
    if decision is not None and str(decision.status).startswith(INHERITED_STATUSES):
        # The plugin itself kept what the caller's environment chose (linker `inherited:gcc`).
        notes.append(f"decision {name} is {decision.status} in this environment: {decision.reason}")
    for var, others in sorted(result.overridden.items()):
        for value, where, why in others:
            if where.source in sources and why.startswith("the caller's value wins"):
                notes.append(f"{var}={result.baseline.get(var, '')!r} in this environment still wins over the "
                             f"{value!r} that knob {name} gives (an inherited value wins); unset {var} to use it")
    for var, value in sorted(result.set_env.items()):
        before = result.baseline.get(var)
        if before is not None and before != value and result.provenance[var].source in sources:
            notes.append(f"{var}={before!r} in this environment: `buildpolicy env`/`exec` replace it with {value!r} "
                         f"(knob {name} beats it), but cargo run without buildpolicy still reads {before!r}")
    return notes
