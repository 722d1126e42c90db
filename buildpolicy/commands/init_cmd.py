"""``buildpolicy init [DIR]``: scaffold ``buildpolicy.toml``, ``policies/`` and ``policies/tests/``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from buildpolicy.errors import BuildpolicyError

HELP = "scaffold buildpolicy.toml, policies/ and policies/tests/ (existing files are kept)"


def add_arguments(parser) -> None:
    """This command's arguments."""
    parser.add_argument("directory", nargs="?", default=".", help="the project's root (default: here)")
    parser.add_argument("--direnv", action="store_true", help="also write an .envrc that loads `buildpolicy env`")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing")


def run(args, command_argv) -> int:
    """Create the files that do not exist; list what was created and what was kept."""
    from buildpolicy.team.scaffold import scaffold

    if command_argv is not None:
        raise BuildpolicyError("init takes no command after `--`")
    root = Path(args.directory)
    if root.exists() and not root.is_dir():
        raise BuildpolicyError(f"{root} is not a directory")
    results = scaffold(root, direnv=args.direnv)
    if not args.quiet:
        lines = [f"{'created' if written else 'kept   '} {os.path.relpath(path)}" for path, written in results]
        lines.append("next: edit policies/project.toml, then `buildpolicy check`, `buildpolicy test` and `buildpolicy explain`")
        if args.direnv:
            lines.append("then `direnv allow` to load the environment in this directory")
        sys.stdout.write("\n".join(lines) + "\n")
    return 0
