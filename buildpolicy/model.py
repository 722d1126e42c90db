"""Typed values passed between the engine, plugins and renderers.

Everything here is frozen: plugins propose values, the engine decides, and
every value the engine outputs travels with its provenance. The checks every
environment variable name and value passes (``check_name``, ``check_value``)
live here too: the engine applies them when composing, renderers when printing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

TYPE_CHECKING = False  # typing is not imported at run time: it costs a full `env` milliseconds
if TYPE_CHECKING:
    from typing import Any

from buildpolicy.record import evolve, field, frozen  # evolve: for plugins (Decision, KnobSpec)
from buildpolicy.errors import BuildpolicyError

# Layers from lowest to highest precedence (DESIGN §2). "pack" sits inside
# "project" below the project's own files, so it gets its own lower rank.
LAYERS = ("builtin", "pack", "project", "site", "user", "env", "cli")
LAYER_RANK = {name: rank for rank, name in enumerate(LAYERS)}


class HandledWarning(str):
    """A warning about a situation buildpolicy already handles correctly (the caller's
    RUSTFLAGS would shadow the target's, so the decided flags join RUSTFLAGS instead).

    ``env`` and ``exec`` say it once per change of situation (``buildpolicy.output.said``);
    ``explain`` and ``doctor`` always. A ``str``, so a result's ``warnings`` (and the JSON
    contract's list) stay plain strings.
    """

    __slots__ = ()


@frozen
class Provenance:
    """Where a value came from: layer, file, line, and the rule id, plugin or variable."""

    layer: str
    source: str
    file: str | None = None
    line: int | None = None
    col: int | None = None  # for messages; not part of the JSON contract

    def where(self) -> str:
        """``file:line:col`` (as much of it as is known), or the source when there is no file."""
        if not self.file:
            return self.source
        return ":".join(str(part) for part in (self.file, self.line, self.col) if part is not None)

    def describe(self) -> str:
        """Human form: ``project policies/mem.toml:4 rule low-memory-incremental``, ``plugin jobs``."""
        where = ""
        if self.file:
            where = f" {self.file}" + (f":{self.line}" if self.line else "")
        if self.source.startswith(self.layer):  # "plugin jobs", not "plugin plugin jobs"
            return f"{self.source}{where}"
        return f"{self.layer}{where} {self.source}".strip()

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "file": self.file, "line": self.line, "source": self.source}


KNOB_TYPES = ("enum", "int", "size", "bool", "string", "list", "seconds")


@frozen
class KnobSpec:
    """A declared knob: typed, with a default and its environment names.

    ``on_invalid`` is ``"error"`` (exit 2) or ``"warn"`` (warn on stderr and fall
    back to the next lower source), for knobs the design lets fall back.
    ``check`` is an optional ``callable(value) -> str | None`` run on the typed
    value: a returned string says what is wrong and makes the value bad like a
    type error (``remote_hosts`` refuses host names starting with ``-``).
    ``seconds`` knobs hold a float duration (``1.5``, ``"1.5s"``, ``"300ms"``).
    ``value_aliases`` maps legacy values to real ones before validation (a team's
    old ``JCODE_FAST_LINKER=1`` meaning ``auto``). A ``secret`` knob holds a
    reference to a secret (``sccache_dist_token``): a bad value, which may be the
    secret itself, is never repeated in an error.
    """

    name: str
    type: str
    default: Any = None
    values: tuple[str, ...] = ()
    minimum: float | None = None
    description: str = ""
    aliases: tuple[str, ...] = ()
    value_aliases: tuple[tuple[str, Any], ...] = ()
    on_invalid: str = "error"
    declared_by: str = ""
    check: Callable[[Any], str | None] | None = field(default=None, eq=False, repr=False)
    secret: bool = False

    @property
    def env_names(self) -> tuple[str, ...]:
        """``BUILDPOLICY_<KNOB>`` first, then the declared aliases."""
        return (f"BUILDPOLICY_{self.name.upper()}", *self.aliases)

    def allowed(self) -> str:
        """Describe the allowed values for error messages (with any legacy values)."""
        text = self._allowed_values()
        if self.value_aliases:
            text += " (legacy values: " + ", ".join(f"{old} means {new}" for old, new in self.value_aliases) + ")"
        return text

    def _allowed_values(self) -> str:
        if self.type == "enum":
            return "one of " + ", ".join(self.values)
        if self.type == "int":
            low = "" if self.minimum is None else f" >= {self.minimum:g}"
            return f"an integer{low}"
        if self.type == "size":
            return "a size such as 1792MiB or 2GiB, or a byte count"
        if self.type == "bool":
            return "true or false (also on/off, yes/no, 1/0)"
        if self.type == "list":
            return "a list (comma-separated in an environment variable)"
        if self.type == "seconds":
            low = "" if self.minimum is None else f" >= {self.minimum:g}"
            return f"a duration in seconds such as 1.5, 1.5s or 300ms{low}"
        return "a string"


@frozen
class KnobValue:
    """A knob's effective value and where it came from.

    ``rejected`` holds what was said about bad values of higher sources that were
    ignored on the way to this one (an inherited ``BUILDPOLICY_JOBS=four``).
    """

    value: Any
    provenance: Provenance
    rejected: tuple[str, ...] = ()


@frozen
class EnvTemplate:
    """One ``env`` entry of a rule, before ``${fact}`` interpolation."""

    name: str
    value: str
    line: int | None = None
    col: int | None = None  # of the name, for messages


@frozen
class Rule:
    """A compiled rule (DESIGN §4) with the place it was defined."""

    id: str
    layer: str
    file: str
    line: int | None
    order: int  # load order, for a deterministic rustflags order
    description: str = ""
    when: Any = None  # buildpolicy.policy.expr.nodes.Expr or None (always matches)
    knob: str | None = None
    status: str | None = None
    env: tuple[EnvTemplate, ...] = ()
    unset: tuple[str, ...] = ()
    decide: tuple[tuple[str, Any], ...] = ()
    rustflags: tuple[str, ...] = ()
    priority: int = 0
    force: bool = False
    enabled: bool = True
    # (part, line, col) of the rule's parts for messages: "id", "decide.<name>", "unset.<name>".
    positions: tuple[tuple[str, int | None, int | None], ...] = field(default=(), eq=False, repr=False)

    @property
    def provenance(self) -> Provenance:
        return Provenance(self.layer, f"rule {self.id}", self.file, self.line)

    def position(self, part: str) -> tuple[int | None, int | None]:
        """``(line, col)`` of ``part`` of the rule in its file; the rule's own line when unknown."""
        for name, line, col in self.positions:
            if name == part:
                return line, col
        return self.line, None

    def where(self, part: str) -> str:
        """``file:line:col`` of ``part`` of the rule (see ``position``)."""
        line, col = self.position(part)
        return ":".join(str(p) for p in (self.file, line, col) if p is not None)


@frozen
class TargetDecision:
    """A decision's outcome for one target triple of a cross build (``--target``,
    ``CARGO_BUILD_TARGET``, ``[build] target``) other than the host.

    ``rustflags`` go into that target's rustflags variable only; the decision's own
    ``status`` and ``rustflags`` stay the host's.
    """

    triple: str
    value: Any
    status: str
    reason: str
    rustflags: tuple[str, ...] = field(default=(), converter=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "status": self.status, "reason": self.reason}


@frozen
class Decision:
    """What a decision plugin proposes (DESIGN §6).

    ``status`` is the machine-readable string of the design, ``reason`` the human
    explanation. ``set_env``/``unset`` patch the environment; ``rustflags`` are
    fragments for the composed rustflags; ``cargo_args`` are inserted into the
    cargo argv before any ``--`` (feature profiles). ``force`` lets the patch
    replace inherited values (a plugin that honours inherited values checks
    ``ctx.environ`` itself and proposes nothing).
    """

    name: str
    value: Any
    status: str
    reason: str
    set_env: tuple[tuple[str, str], ...] = field(default=(), converter=lambda v: tuple(sorted(dict(v).items())))
    unset: tuple[str, ...] = field(default=(), converter=tuple)
    rustflags: tuple[str, ...] = field(default=(), converter=tuple)
    cargo_args: tuple[str, ...] = field(default=(), converter=tuple)
    force: bool = False
    source: str = ""  # plugin name, filled in by the engine
    details: tuple[str, ...] = field(default=(), converter=tuple)  # more lines for `explain` (a table)
    # Per target triple of a cross build; a decision that gives them has its `rustflags`
    # apply to the host only (every other decision's rustflags apply to every target).
    targets: tuple[TargetDecision, ...] = field(default=(), converter=tuple)

    def to_json(self) -> dict[str, Any]:
        data = {"value": self.value, "status": self.status, "reason": self.reason, "source": self.source}
        if self.details:
            data["details"] = list(self.details)
        if self.targets:
            data["targets"] = {target.triple: target.to_json() for target in self.targets}
        return data


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_name(name: str) -> None:
    """Raise :class:`BuildpolicyError` unless *name* is a portable variable name.

    Portable means ``^[A-Za-z_][A-Za-z0-9_]*$``: the names every supported shell
    can assign without quoting and every supported file format can carry.
    """
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise BuildpolicyError(
            f"invalid environment variable name {name!r}: "
            "a name must match [A-Za-z_][A-Za-z0-9_]*"
        )


def check_value(name: str, value: str) -> None:
    """Raise :class:`BuildpolicyError` if *value* cannot be an environment value.

    The only such value for a string is one with a NUL character: the
    environment is an array of NUL-terminated C strings, so the value would be
    silently cut short.  Every other character can be rendered exactly.
    """
    if not isinstance(value, str):
        raise BuildpolicyError(
            f"value of environment variable {name} must be a string, "
            f"not {type(value).__name__}"
        )
    if "\0" in value:
        raise BuildpolicyError(
            f"value of environment variable {name} contains a NUL character, "
            "which an environment variable cannot hold"
        )
