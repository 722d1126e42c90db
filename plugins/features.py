"""The ``features`` decision: named feature profiles inserted into the cargo argv (DESIGN §6).

Knob ``features`` (string): the name of a profile declared under
``[feature_profiles]`` in the profile file, e.g. ``minimal = ["--no-default-features"]``.

Statuses:

- ``default`` — the knob is not set (or empty): cargo's own feature selection.
- ``<name>`` — the profile's arguments are inserted by ``exec`` into the cargo argv
  before any ``--`` (``Decision.cargo_args``; the engine does the insertion).
  Without a command (``env``, ``explain``) it is the profile ``exec`` would
  apply; ``env`` cannot pass cargo arguments, and the reason says so.
- ``ignored-explicit-cargo-args`` — the cargo argv already selects features
  (``--features``/``-F``/``--all-features``/``--no-default-features`` before ``--``):
  the caller's arguments are left alone.
- ``not-applicable:<name>`` — profile ``<name>`` is selected but there is
  nothing to insert it into: ``exec`` runs a command that is not cargo, or a
  cargo command that takes no feature arguments (``cargo clean``, ``cargo fmt``,
  ``cargo --version``…). Nothing is inserted, and the status does not claim
  the profile was applied.

An unknown name is an error (exit 2) listing the declared profiles.
"""

from __future__ import annotations

from buildpolicy import hookimpl
from buildpolicy.errors import BuildpolicyError
from buildpolicy.model import Decision, KnobSpec

# Decisions depend only on what is read through the DecideContext (and the
# conditions and files declared there): a warm `env` may be replayed (buildpolicy.replay).
BUILDPOLICY_REPLAYABLE = True

# cargo subcommands that accept --features/--no-default-features.
FEATURE_COMMANDS = frozenset({
    "build", "check", "test", "bench", "run", "doc", "clippy", "rustc", "rustdoc", "fix", "install", "package",
    "publish", "tree", "metadata",
})


@hookimpl
def buildpolicy_declare_knobs():
    """Declare the ``features`` knob (a feature profile name)."""
    return [
        KnobSpec(
            name="features",
            type="string",
            description="feature profile from [feature_profiles] in the profile file, inserted into the cargo argv by exec",
        )
    ]


@hookimpl
def buildpolicy_decide(ctx):
    """Decide the feature profile; raise BuildpolicyError (exit 2) for an undeclared name."""
    name = (ctx.knob("features") or "").strip()
    if not name:
        return Decision("features", None, "default", "knob features is not set: cargo's own feature selection")
    profiles = ctx.feature_profiles
    source = ctx.knob_source("features")
    if name not in profiles:
        declared = ", ".join(sorted(profiles)) or "none (add a [feature_profiles] table to buildpolicy.toml)"
        raise BuildpolicyError(f"knob features = {name!r} ({source}) is not a declared feature profile; declared: {declared}")
    args = tuple(profiles[name])
    shown = " ".join(args) or "(no arguments)"
    if ctx.fact("cargo.explicit_features"):
        return Decision(
            "features", None, "ignored-explicit-cargo-args",
            f"knob features = {name} ({source}) is ignored: the cargo command line selects features itself",
        )
    if ctx.cargo_argv is None:
        if ctx.command == "exec":  # exec passes no cargo argv for any other program
            return Decision("features", None, f"not-applicable:{name}",
                            f"feature profile {name} ({source}) not applied: the command is not cargo; nothing inserted")
        return Decision("features", list(args), name,
                        f"feature profile {name} ({source}): {shown}; only `buildpolicy exec` can pass cargo arguments")
    command = ctx.fact("cargo.command")
    if command not in FEATURE_COMMANDS:
        return Decision("features", None, f"not-applicable:{name}",
                        f"feature profile {name} ({source}) not applied: cargo {command or '(no subcommand)'} "
                        "takes no feature arguments; nothing inserted")
    return Decision("features", list(args), name, f"feature profile {name} ({source}): {shown} inserted before any `--`",
                    cargo_args=args)
