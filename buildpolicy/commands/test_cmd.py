"""``buildpolicy test [PATH...]``: run policy test cases (facts in, expected env and decisions out)."""

from __future__ import annotations

import sys
from pathlib import Path

from buildpolicy.errors import EXIT_PROBLEMS, BuildpolicyError

HELP = "run policy test cases (default: policies/tests/*.toml next to buildpolicy.toml)"


def add_arguments(parser) -> None:
    """This command's arguments."""
    parser.add_argument("paths", nargs="*", help="case files or directories of them")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only failing cases and the summary")


def run(args, command_argv) -> int:
    """Exit 0 when every case passes, 1 when one fails (or none is found), 2 for invalid case files."""
    from buildpolicy.team.policytest import find_case_files, format_result, run_case_files, summary

    if command_argv is not None:
        raise BuildpolicyError("test takes no command after `--`: put a case's cargo argv in its `args`")
    files = find_case_files(Path.cwd(), args.paths)
    if not files:
        print("buildpolicy test: no test cases found (looked for policies/tests/*.toml next to buildpolicy.toml)",
              file=sys.stderr)
        return EXIT_PROBLEMS
    results = run_case_files(files)
    out = [format_result(r) for r in results if not (args.quiet and r.passed)]
    out.append(summary(results))
    sys.stdout.write("\n".join(out) + "\n")
    return 0 if all(r.passed for r in results) else EXIT_PROBLEMS
