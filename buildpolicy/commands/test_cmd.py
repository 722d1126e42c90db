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
    parser.add_argument("--format", default="text",
                        help="text (default) or json: {ok, passed, failed, cases: [{name, file, line, passed, "
                             "mismatches}], problems}")


def run(args, command_argv) -> int:
    """Exit 0 when every case passes, 1 when one fails (or none is found), 2 for invalid case files."""
    from buildpolicy.team.policytest import find_case_files, format_result, run_case_files, summary

    if command_argv is not None:
        raise BuildpolicyError("test takes no command after `--`: put a case's cargo argv in its `args`")
    if args.format not in ("text", "json"):
        raise BuildpolicyError(f"test: unknown --format {args.format!r}; allowed: text, json")
    files = find_case_files(Path.cwd(), args.paths)
    if not files:
        print("buildpolicy test: no test cases found (looked for policies/tests/*.toml next to buildpolicy.toml)",
              file=sys.stderr)
        if args.format == "json":
            _print_json([], [])
        return EXIT_PROBLEMS
    try:
        results = run_case_files(files)
    except BuildpolicyError as exc:
        if args.format != "json":
            raise
        _print_json([], exc.messages)  # invalid case files: located, as `check --format json` does
        return exc.exit_code
    if args.format == "json":
        _print_json(results, [])
        return 0 if all(r.passed for r in results) else EXIT_PROBLEMS
    out = [format_result(r) for r in results if not (args.quiet and r.passed)]
    out.append(summary(results))
    sys.stdout.write("\n".join(out) + "\n")
    return 0 if all(r.passed for r in results) else EXIT_PROBLEMS


def _print_json(results, problems) -> None:
    """Every case's outcome (with expected and actual per mismatch) and the problems of invalid files."""
    import json

    from buildpolicy.output.problems import problem_json

    cases = [{"name": r.case.name, "file": r.case.file, "line": r.case.line, "passed": r.passed,
              "mismatches": [{"kind": m.kind, "key": m.key, "expected": m.expected, "actual": m.actual,
                              "detail": m.detail} for m in r.mismatches]}
             for r in results]
    failed = sum(1 for case in cases if not case["passed"])
    report = {"ok": bool(cases) and not failed and not problems, "passed": len(cases) - failed, "failed": failed,
              "cases": cases, "problems": [problem_json(m) for m in problems]}
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
