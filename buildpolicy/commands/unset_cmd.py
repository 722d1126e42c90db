"""``buildpolicy unset KNOB [--layer user|site|project]``: remove a knob value from a layer file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from buildpolicy.errors import BuildpolicyError

HELP = "remove a knob's value from a layer file (comments kept)"


def add_arguments(parser) -> None:
    """This command's arguments."""
    from buildpolicy.team.edit import LAYERS

    parser.add_argument("knob", help="the knob's name, e.g. jobs")
    parser.add_argument("--layer", choices=LAYERS, default="user", help="user (default), site or project")
    parser.add_argument("-q", "--quiet", action="store_true", help="no notes on stderr")


def run(args, command_argv) -> int:
    """Remove the value. Removing a declared knob's missing value is not an error (a note
    says so); a name no knob has and no file holds is (exit 2, with the closest knob)."""
    from buildpolicy.team.edit import edit_lock, effective_knob, layer_file, unset_knob
    from buildpolicy.team.knobinfo import display_value, source_text
    from buildpolicy.engine.envstate import restore_baseline
    from buildpolicy.paths import Paths, find_profile

    if command_argv is not None:
        raise BuildpolicyError("unset takes no command after `--`")
    cwd, environ = Path.cwd(), dict(os.environ)
    # No knob declaration is needed to remove a value: a stale knob of an
    # uninstalled plugin must be removable too, so nothing is loaded first.
    paths = Paths.from_environ(restore_baseline(environ)[0])
    profile = find_profile(cwd)
    path = layer_file(args.layer, paths, profile)
    was_allowed = args.layer == "project" and _allowed(cwd, environ)
    with edit_lock(path):  # concurrent edits: each one's read-edit-write is whole
        removed = unset_knob(path, "profile" if args.layer == "project" else "policy", args.knob, args.layer)
    if not removed:
        _refuse_unknown(cwd, environ, args.knob)
        if not args.quiet:
            print(f"buildpolicy: note: knob {args.knob} has no value in {path} ({args.layer} layer); nothing changed",
                  file=sys.stderr)
        return 0
    sys.stdout.write(f"{args.knob} removed from {path} ({args.layer} layer)\n")
    if was_allowed:
        from buildpolicy.commands.set_cmd import revoked_trust_note

        print(revoked_trust_note(path), file=sys.stderr)
    now = None if args.quiet else effective_knob(cwd, environ, args.knob)
    if now is not None:
        print(f"buildpolicy: note: knob {args.knob} is now {display_value(now.value)} ({source_text(now.provenance)})",
              file=sys.stderr)
    return 0


def _refuse_unknown(cwd: Path, environ, name: str) -> None:
    """Exit 2 for a name no knob is declared under (a typo: ``unset jbos``). When the
    declarations cannot be loaded here, the note about the missing value is all."""
    from buildpolicy.engine.pipeline import Request, prepare
    from buildpolicy.team.knobinfo import unknown_knob

    try:
        specs = prepare(Request(cwd=cwd, environ=environ, command="unset")).knob_specs
    except BuildpolicyError:
        return
    if name not in specs:
        raise unknown_knob(name, specs)


def _allowed(cwd: Path, environ) -> bool:
    """Whether the project here is allowed as it is now (an edit of its profile revokes that)."""
    from buildpolicy.commands.set_cmd import _allowed as allowed
    from buildpolicy.engine.pipeline import Request, prepare

    try:
        return allowed(prepare(Request(cwd=cwd, environ=environ, command="unset")))
    except BuildpolicyError:
        return False
