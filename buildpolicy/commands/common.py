"""What the commands share: the common flags and the engine request built from them."""

from __future__ import annotations

import os
from pathlib import Path

TYPE_CHECKING = False  # not `from typing import`: typing alone costs 2 ms of every prompt

if TYPE_CHECKING:  # pragma: no cover - typing only
    import argparse


def add_common(parser: argparse.ArgumentParser) -> None:
    """The flags every evaluating command takes (DESIGN §7)."""
    parser.add_argument("--profile", help="cargo profile to decide for (default: the profile file's default_profile)")
    parser.add_argument("--facts", metavar="FILE", help="JSON or TOML file overriding facts for this run")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KNOB=VALUE", help="set a knob (repeatable)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no warnings on stderr")


def make_request(args, command_argv, command: str, **extra):
    """Build the engine ``Request`` from parsed arguments and the caller's environment."""
    from buildpolicy.engine.pipeline import Request

    overrides = None
    if args.facts:
        from buildpolicy.facts.overrides import load_facts_file

        overrides = load_facts_file(Path(args.facts))
    cargo_argv = tuple(command_argv) if command_argv else None
    return Request(
        cwd=Path.cwd(),
        environ=dict(os.environ),
        command=command,
        cargo_argv=cargo_argv,
        profile_flag=args.profile,
        cli_sets=tuple(args.sets),
        fact_overrides=overrides,
        **extra,
    )


def project_dir(path: str | None) -> Path:
    """The directory a command that takes a project ``PATH`` (``allow``, ``deny``, ``status``)
    works in: ``PATH`` itself, the directory of a ``buildpolicy.toml`` named, or the working
    directory without one. A missing path is an error (exit 2)."""
    from buildpolicy.errors import BuildpolicyError

    if path is None:
        return Path.cwd()
    given = Path(path)
    if given.is_file() and given.name == "buildpolicy.toml":
        return given.resolve().parent
    if not given.is_dir():
        what = "does not exist" if not os.path.lexists(given) else "is neither a directory nor a buildpolicy.toml"
        raise BuildpolicyError(f"{path}: {what}; give a project directory or its buildpolicy.toml")
    return given.resolve()
