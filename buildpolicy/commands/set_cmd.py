"""``buildpolicy set KNOB VALUE [--layer user|site|project]``: write a knob value into a layer file.

The value is checked before anything is written: against the knob's type
(``edit.toml_value``), then by evaluating a run in the working directory with
it (``refuse_if_it_breaks_runs``), so a value such as an undeclared feature
profile never reaches the file to break every later ``env`` and ``exec``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from buildpolicy.errors import BuildpolicyError

HELP = "set a knob in a layer file (checked against the knob first; comments kept)"


def add_arguments(parser) -> None:
    """This command's arguments."""
    from buildpolicy.team.edit import LAYERS

    parser.add_argument("knob", help="the knob's name, e.g. jobs")
    parser.add_argument("value", help="the value (a list knob takes a comma-separated list)")
    parser.add_argument("--layer", choices=LAYERS, default="user",
                        help="user (default: ~/.config/buildpolicy/knobs.toml), site (knobs.toml in the site "
                             "directory) or project (the [knobs] table of buildpolicy.toml)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no notes on stderr")


def known_knob(prepared, name: str):
    """The declaration of knob ``name``; a BuildpolicyError with a suggestion when there is none."""
    from buildpolicy.team.knobinfo import unknown_knob

    spec = prepared.knob_specs.get(name)
    if spec is None:
        raise unknown_knob(name, prepared.knob_specs)
    return spec


def refuse_if_it_breaks_runs(cwd: Path, environ, name: str, raw: str, path: Path, layer: str) -> None:
    """Refuse (exit 2, nothing written) a value that passes the knob's type but fails a run here.

    The type check cannot know everything a value must satisfy: ``features``
    must name a ``[feature_profiles]`` entry of the profile file, a plugin may
    refuse a combination of knobs. So the run is evaluated here with the new
    value (as ``--set``, the highest layer, so it is the value in effect), the
    way ``env`` would evaluate it. Only errors the new value introduces count:
    one the project already has without it is not blamed on the edit.
    """
    from buildpolicy.engine.pipeline import Request, evaluate

    item = f"{name}={raw}"
    try:
        evaluate(Request(cwd=cwd, environ=environ, command="set", cli_sets=(item,)))
        return
    except BuildpolicyError as exc:
        failures = exc.messages
    try:
        evaluate(Request(cwd=cwd, environ=environ, command="set"))
        before: set[str] = set()
    except BuildpolicyError as exc:
        before = {str(m) for m in exc.messages}
    new = [m for m in failures if str(m) not in before]
    if not new:
        return  # the project fails the same way without the new value
    where = f"{layer} {path} [knobs] {name}"
    shown = [m.replace(f"cli --set {item}", where).replace(f"--set {item}", where) if isinstance(m, str) else m for m in new]
    raise BuildpolicyError([
        f"knob {name} = {raw!r} would make every run here fail:",
        *shown,
        f"nothing was written to {path}",
    ])


def run(args, command_argv) -> int:
    """Validate the value against the knob, then edit the layer's file; exit 2 on any problem."""
    from buildpolicy.team.edit import edit_lock, effective_knob, layer_file, set_knob, toml_value
    from buildpolicy.team.knobinfo import display_value, environment_notes
    from buildpolicy.engine.pipeline import Request, prepare
    from buildpolicy.paths import find_profile

    if command_argv is not None:
        raise BuildpolicyError("set takes no command after `--`")
    cwd, environ = Path.cwd(), dict(os.environ)
    prepared = prepare(Request(cwd=cwd, environ=environ, command="set"))
    spec = known_knob(prepared, args.knob)
    value = toml_value(spec, args.value)  # before anything is written
    path = layer_file(args.layer, prepared.paths, find_profile(cwd))
    refuse_if_it_breaks_runs(cwd, environ, spec.name, args.value, path, args.layer)
    was_allowed = args.layer == "project" and _allowed(prepared)
    with edit_lock(path, create=True):  # concurrent sets: each one's read-edit-write is whole
        created = set_knob(path, "profile" if args.layer == "project" else "policy", args.layer, spec.name, value)
    shown = display_value(value)
    sys.stdout.write(f"{spec.name} = {shown} in {path} ({args.layer} layer{', new file' if created else ''})\n")
    if was_allowed:
        print(revoked_trust_note(path), file=sys.stderr)
    if not args.quiet:
        # Same-layer files load in lexical order and the first value wins; a
        # higher layer or a variable beats the file: say so rather than let
        # the user wonder why nothing changed.
        now = effective_knob(cwd, environ, spec.name)
        if now is not None and now.provenance.file != str(path):
            print(f"buildpolicy: note: knob {spec.name} is still {display_value(now.value)} here: "
                  f"{now.provenance.describe()} takes precedence", file=sys.stderr)
        for note in environment_notes(cwd, environ, spec.name, spec.declared_by):
            print(f"buildpolicy: note: {note}", file=sys.stderr)
    return 0


def _allowed(prepared) -> bool:
    """Whether the user allowed the project as it is now (its trust record matches)."""
    from buildpolicy.policy import trust

    if not prepared.policy_set.profile_path:
        return False
    return trust.check(prepared.policy_set, prepared.paths.state_dir).trusted and trust.record_path(
        prepared.paths.state_dir, prepared.policy_set.profile_path).exists()


def revoked_trust_note(profile: Path) -> str:
    """What an edit of an allowed project's buildpolicy.toml did to its trust, and the fix."""
    return (f"buildpolicy: warning: {profile} changed, so `buildpolicy allow` no longer covers it: until it is "
            f"allowed again, `env` and `exec` refuse whatever in the project needs trust.\n"
            f"help: review the change, then run: buildpolicy allow {profile.parent}")
