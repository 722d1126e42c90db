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
    """Remove the value; removing a value that is not there is not an error (a note says so)."""
    from buildpolicy.team.edit import edit_lock, effective_knob, layer_file, unset_knob
    from buildpolicy.engine.envstate import restore_baseline
    from buildpolicy.paths import Paths, find_profile

    if command_argv is not None:
        raise BuildpolicyError("unset takes no command after `--`")
    cwd, environ = Path.cwd(), dict(os.environ)
    # No knob declaration is needed to remove a value: a stale knob of an
    # uninstalled plugin must be removable too, so nothing is loaded first.
    paths = Paths.from_environ(restore_baseline(environ)[0])
    path = layer_file(args.layer, paths, find_profile(cwd))
    with edit_lock(path):  # concurrent edits: each one's read-edit-write is whole
        removed = unset_knob(path, "profile" if args.layer == "project" else "policy", args.knob, args.layer)
    if not removed:
        if not args.quiet:
            print(f"buildpolicy: note: knob {args.knob} has no value in {path} ({args.layer} layer); nothing changed",
                  file=sys.stderr)
        return 0
    sys.stdout.write(f"{args.knob} removed from {path} ({args.layer} layer)\n")
    now = None if args.quiet else effective_knob(cwd, environ, args.knob)
    if now is not None:
        print(f"buildpolicy: note: knob {args.knob} is now {now.value!r} ({now.provenance.describe()})", file=sys.stderr)
    return 0
