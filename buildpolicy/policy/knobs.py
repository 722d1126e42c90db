"""Resolve knob values through the layers (DESIGN §5).

Sources, lowest to highest: the declared default, ``[knobs]`` values in the
builtin, pack, project, site and user files, the environment
(``BUILDPOLICY_<KNOB>`` then the declared aliases), and ``--set knob=value``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

TYPE_CHECKING = False  # typing is not imported at run time: it costs a full `env` milliseconds
if TYPE_CHECKING:
    from typing import Any

from buildpolicy.record import evolve, frozen
from buildpolicy.errors import BuildpolicyError, Diagnostic, closest
from buildpolicy.model import LAYER_RANK, KnobSpec, KnobValue, Provenance
from buildpolicy.sizes import parse_size

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

# The auto|on|off switch every knob-governed rule gets unless it is declared otherwise.
RULE_KNOB_VALUES = ("auto", "on", "off")


def rule_knob_spec(name: str, rule_id: str) -> KnobSpec:
    """The implicit declaration of a knob named by a rule's ``knob`` field."""
    return KnobSpec(
        name=name,
        type="enum",
        default="auto",
        values=RULE_KNOB_VALUES,
        description=f"auto uses the `when` of rule {rule_id}; on applies it always; off never",
        declared_by=f"rule {rule_id}",
    )


def coerce(spec: KnobSpec, raw: Any) -> Any:
    """Convert ``raw`` to the knob's type; raise ValueError saying what is allowed.

    Values from environment variables are strings: a list knob's value is
    comma-separated there. A spec's ``check`` then vets the typed value.
    """
    if spec.value_aliases and isinstance(raw, (str, int, float, bool)):
        # Keys are strings in TOML; TOML `1` and env "1" both match "1".
        key = str(raw).lower() if isinstance(raw, bool) else str(raw).strip()
        raw = dict(spec.value_aliases).get(key, raw)
    value = _convert(spec, raw)
    if spec.check is not None and value is not None:
        problem = spec.check(value)
        if problem:
            raise ValueError(problem)
    return value


def parse_seconds(raw: Any) -> float:
    """A duration in seconds from ``1.5``, ``"1.5"``, ``"1.5s"`` or ``"300ms"``; ValueError otherwise."""
    import math

    if isinstance(raw, bool):
        raise ValueError("not a duration")
    if isinstance(raw, (int, float)):
        value = float(raw)
    else:
        text = str(raw).strip().lower()
        scale = 1.0
        if text.endswith("ms"):
            text, scale = text[:-2], 0.001
        elif text.endswith("s"):
            text = text[:-1]
        value = float(text.strip()) * scale  # ValueError for junk
    if not math.isfinite(value) or value < 0:
        raise ValueError("not a duration")
    return value


def _convert(spec: KnobSpec, raw: Any) -> Any:
    kind = spec.type
    if kind == "seconds":
        try:
            value = parse_seconds(raw)
        except ValueError:
            raise ValueError(spec.allowed()) from None
        if spec.minimum is not None and value < spec.minimum:
            raise ValueError(spec.allowed())
        return value
    if kind == "enum":
        value = str(raw).strip().lower() if isinstance(raw, str) else raw
        if isinstance(raw, bool):  # TOML `true`/`false` for on/off enums
            value = "on" if raw else "off"
        if value not in spec.values:
            raise ValueError(spec.allowed())
        return value
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(spec.allowed())
    if kind == "int":
        if isinstance(raw, bool):
            raise ValueError(spec.allowed())
        try:
            value = raw if isinstance(raw, int) else int(str(raw).strip(), 10)
        except ValueError:
            raise ValueError(spec.allowed()) from None
        if spec.minimum is not None and value < spec.minimum:
            raise ValueError(spec.allowed())
        return value
    if kind == "size":
        value = parse_size(raw)  # ValueError names the allowed forms
        if spec.minimum is not None and value < spec.minimum:
            raise ValueError(spec.allowed() + f" of at least {spec.minimum:g}")
        return value
    if kind == "list":
        if isinstance(raw, str):
            items = tuple(part.strip() for part in raw.split(",") if part.strip())
        elif isinstance(raw, (list, tuple)):
            items = tuple(str(item) for item in raw)
        else:
            raise ValueError(spec.allowed())
        if any("\0" in item for item in items):
            raise ValueError(spec.allowed() + " without NUL characters")
        return items
    if isinstance(raw, (dict, list)):
        raise ValueError(spec.allowed())
    if "\0" in str(raw):
        raise ValueError(spec.allowed() + " without NUL characters")
    return str(raw)


@frozen
class FileKnob:
    """A knob value written in a file's ``[knobs]`` table."""

    name: str
    value: Any
    provenance: Provenance  # the key in `[knobs]`, with its line and column
    value_at: tuple[int | None, int | None] = (None, None)  # line and column of the value

    def value_where(self) -> str:
        """``file:line:col`` of the value (for a bad value), else of the key."""
        line, col = self.value_at
        if line is None:
            return self.provenance.where()
        return ":".join(str(p) for p in (self.provenance.file, line, col) if p is not None)


def resolve_knobs(
    specs: Iterable[KnobSpec],
    file_values: Iterable[FileKnob],
    environ: Mapping[str, str],
    cli_sets: Iterable[str],
    warn,
) -> dict[str, KnobValue]:
    """Return every knob's effective value with its provenance.

    All bad values are reported together as one BuildpolicyError (exit 2),
    except a bad value the environment gives a knob declared ``on_invalid="warn"``:
    what the user typed (``--set``, a file) is an error, inherited environment
    garbage (``BUILDPOLICY_JOBS=four``) is passed to ``warn`` and falls back.
    """
    specs = {spec.name: spec for spec in specs}
    candidates: dict[str, list[tuple[int, Any, Provenance]]] = {name: [] for name in specs}
    errors: list = []
    value_where: dict[int, str] = {}  # id(provenance) -> file:line:col of the value

    for item in file_values:
        if item.name not in specs:
            errors.append(Diagnostic(item.provenance.file, item.provenance.line, item.provenance.col,
                                     f"unknown knob {item.name!r}{_suggest(item.name, specs)}"))
            continue
        value_where[id(item.provenance)] = item.value_where()
        candidates[item.name].append((LAYER_RANK[item.provenance.layer], item.value, item.provenance))

    for spec in specs.values():
        for var in spec.env_names:
            if var in environ:
                candidates[spec.name].append((LAYER_RANK["env"], environ[var], Provenance("env", f"${var}")))
                break  # BUILDPOLICY_<KNOB> beats the aliases

    for item in cli_sets:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep:
            errors.append(f"--set {item!r}: expected knob=value")
            continue
        if name not in specs:
            errors.append(f"--set {item!r}: unknown knob {name!r}{_suggest(name, specs)}")
            continue
        candidates[name].append((LAYER_RANK["cli"], raw, Provenance("cli", f"--set {item}")))

    result: dict[str, KnobValue] = {}
    for name, spec in specs.items():
        chosen = KnobValue(spec.default, Provenance("default", f"default (declared by {spec.declared_by or 'buildpolicy'})"))
        rejected: list[str] = []
        # Highest layer first; a value that fails falls back only for warn-knobs.
        for _rank, raw, provenance in sorted(candidates[name], key=lambda c: c[0], reverse=True):
            try:
                chosen = KnobValue(coerce(spec, raw), provenance)
                break
            except ValueError as exc:
                # An error goes to terminals and CI logs: no password, no secret.
                shown = "(not repeated: it may be the secret)" if spec.secret else _without_passwords(repr(raw))
                source = provenance.source
                if spec.secret and source.startswith("--set "):
                    source = f"--set {name}=…"
                if provenance.file:
                    where = value_where.get(id(provenance)) or provenance.where()
                    message = f"{where}: knob {name!r}: bad value {shown}; allowed: {exc}"
                else:
                    message = (f"knob {name!r}: bad value {shown} from {_without_passwords(source)}; "
                               f"allowed: {exc}")
                if spec.on_invalid == "warn" and provenance.layer == "env":
                    warn(message + " (ignored)")
                    rejected.append(message)
                    continue
                errors.append(message)
                break
        result[name] = evolve(chosen, rejected=tuple(rejected)) if rejected else chosen
    if errors:
        raise BuildpolicyError(errors)
    return result


def _suggest(name: str, known) -> str:
    close = closest(name, known)
    return f" (did you mean {close!r}?)" if close else f" (known: {', '.join(sorted(known))})"


def _without_passwords(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` replaced by ``***``."""
    import re

    return re.sub(r"(://[^/@:\s'\"]*:)[^/@\s'\"]+@", r"\1***@", text)


# BUILDPOLICY_ variables that are buildpolicy's own settings and records, not knobs.
OWN_VARIABLES = frozenset({
    "BUILDPOLICY_SITE_DIR", "BUILDPOLICY_REPLAY", "BUILDPOLICY_ENV_STATE", "BUILDPOLICY_GATE_HELD",
    "BUILDPOLICY_REMOTE_HOST", "BUILDPOLICY_GOVERNOR_INNER", "BUILDPOLICY_GOVERNOR_SOCKET",
    "BUILDPOLICY_GOVERNOR_TRACE",
})


def unknown_knob_variables(specs: Iterable[KnobSpec], environ: Mapping[str, str], also_known=()) -> list[str]:
    """A warning for each ``BUILDPOLICY_<X>`` variable of ``environ`` that no knob reads
    (a typo such as ``BUILDPOLICY_LINKR`` would otherwise be ignored without a word),
    with the closest knob variable. ``also_known`` holds names rules read as ``env.*``
    facts. The value is not shown: it may be a secret meant for a knob spelt right."""
    known = {name for spec in specs for name in spec.env_names} | OWN_VARIABLES | set(also_known)
    warnings = []
    for name in sorted(environ):
        if not name.startswith("BUILDPOLICY_") or name in known:
            continue
        close = closest(name, sorted(n for n in known if n.startswith("BUILDPOLICY_") and n not in OWN_VARIABLES))
        hint = f"did you mean {close}?" if close else "`buildpolicy knobs` lists the knobs and their variables"
        warnings.append(f"ignoring ${name}: no knob reads it ({hint})")
    return warnings
