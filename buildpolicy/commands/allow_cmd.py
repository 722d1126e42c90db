"""``buildpolicy allow``: trust this project's profile, policy, pack and team plugin files as they are now."""

from __future__ import annotations

import os
import sys

from buildpolicy.errors import BuildpolicyError

HELP = "trust this project's policy files as they are now (any edit needs a new allow)"


def add_arguments(parser) -> None:
    """This command's arguments."""
    parser.add_argument("path", nargs="?", metavar="PATH",
                        help="the project to trust: its directory (or one below it) or its buildpolicy.toml "
                             "(default: the one here)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def run(args, command_argv) -> int:
    """Compile the project's files (they must be valid), hash them and record the hash in the state dir."""
    from buildpolicy.policy import trust
    from buildpolicy.commands.common import project_dir
    from buildpolicy.engine.pipeline import Request, prepare
    from buildpolicy.paths import find_profile

    if command_argv is not None:
        raise BuildpolicyError("allow takes no command after `--`")
    # Report mode: allowing must not run the team plugins it is about to trust.
    directory = project_dir(args.path)
    if args.path is not None and find_profile(directory) is None:
        raise BuildpolicyError(f"no buildpolicy.toml in {directory} or any parent directory: nothing to allow")
    prepared = prepare(Request(cwd=directory, environ=dict(os.environ), command="allow", trust="report"))
    policy_set = prepared.policy_set
    record = trust.allow(policy_set, prepared.paths.state_dir)
    if not args.quiet:
        count = len(trust.hashed_files(policy_set))
        lines = [f"allowed {policy_set.profile_path} ({count} file(s) hashed) as it is now"]
        for finding in prepared.trust_findings:
            lines.append(f"  {finding.diagnostic()}")
        lines.append(f"  (record: {record}; any edit needs a new `buildpolicy allow`; `buildpolicy deny` revokes)")
        sys.stdout.write("\n".join(lines) + "\n")
    return 0
