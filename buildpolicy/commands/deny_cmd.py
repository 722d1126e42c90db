"""``buildpolicy deny``: revoke a previous ``buildpolicy allow`` for this project."""

from __future__ import annotations

import os
import sys

from buildpolicy.errors import BuildpolicyError

HELP = "distrust this project's policy files (revoke `allow`)"


def add_arguments(parser) -> None:
    """This command's arguments."""
    parser.add_argument("path", nargs="?", metavar="PATH",
                        help="the project to distrust: its directory (or one below it) or its buildpolicy.toml "
                             "(default: the one here)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing")


def run(args, command_argv) -> int:
    """Remove the project's trust record; without one there is nothing to do (still exit 0)."""
    from buildpolicy.policy import trust
    from buildpolicy.engine.envstate import restore_baseline
    from buildpolicy.commands.common import project_dir
    from buildpolicy.paths import Paths, find_profile

    if command_argv is not None:
        raise BuildpolicyError("deny takes no command after `--`")
    directory = project_dir(args.path)
    profile = find_profile(directory)
    if profile is None:
        where = "here" if args.path is None else f"in {directory}"
        raise BuildpolicyError(f"no buildpolicy.toml {where} or in any parent directory: nothing to deny")
    # Nothing is compiled: a project whose files are broken can still be distrusted.
    paths = Paths.from_environ(restore_baseline(dict(os.environ))[0])
    removed = trust.deny(str(profile), paths.state_dir)
    if not args.quiet:
        if removed:
            sys.stdout.write(f"no longer trusted: {profile} (`env` and `exec` refuse its untrusted settings again)\n")
        else:
            sys.stdout.write(f"{profile} was not allowed; nothing to revoke\n")
    return 0
