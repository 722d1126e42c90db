"""``buildpolicy set KNOB VALUE [--layer user|site|project]``: write a knob value into a layer file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from buildpolicy.errors import BuildpolicyError

HELP = "set a knob in a layer file (checked against the knob first; comments kept)"


def add_arguments(parser) -> None:
    """This command's arguments."""
    from buildpolicy.edit import LAYERS

    parser.add_argument("knob", help="the knob's name, e.g. jobs")
    parser.add_argument("value", help="the value (a list knob takes a comma-separated list)")
    parser.add_argument("--layer", choices=LAYERS, default="user",
                        help="user (default: ~/.config/buildpolicy/knobs.toml), site (knobs.toml in the site "
                             "directory) or project (the [knobs] table of buildpolicy.toml)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no notes on stderr")


def known_knob(prepared, name: str):
    """The declaration of knob ``name``; a BuildpolicyError with a suggestion when there is none."""
    spec = prepared.knob_specs.get(name)
    if spec is None:
        import difflib

        known = sorted(prepared.knob_specs)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known knobs: {', '.join(known)}"
        raise BuildpolicyError(f"unknown knob {name!r} ({hint})")
    return spec


def run(args, command_argv) -> int:
    """Validate the value against the knob, then edit the layer's file; exit 2 on any problem."""
    from buildpolicy.edit import effective_knob, layer_file, set_knob, toml_value
    from buildpolicy.engine import Request, prepare
    from buildpolicy.paths import find_profile

    if command_argv is not None:
        raise BuildpolicyError("set takes no command after `--`")
    cwd, environ = Path.cwd(), dict(os.environ)
    prepared = prepare(Request(cwd=cwd, environ=environ, command="set"))
    spec = known_knob(prepared, args.knob)
    value = toml_value(spec, args.value)  # before anything is written
    path = layer_file(args.layer, prepared.paths, find_profile(cwd))
    created = set_knob(path, "profile" if args.layer == "project" else "policy", args.layer, spec.name, value)
    shown = ", ".join(value) if isinstance(value, list) else value
    sys.stdout.write(f"{spec.name} = {shown} in {path} ({args.layer} layer{', new file' if created else ''})\n")
    if not args.quiet:
        # Same-layer files load in lexical order and the first value wins; a
        # higher layer or a variable beats the file: say so rather than let
        # the user wonder why nothing changed.
        now = effective_knob(cwd, environ, spec.name)
        if now is not None and now.provenance.file != str(path):
            print(f"buildpolicy: note: knob {spec.name} is still {now.value!r} here: "
                  f"{now.provenance.describe()} takes precedence", file=sys.stderr)
    return 0
