"""``buildpolicy check [PATH...]``: validate profile and policy files, all errors at once.

Without a path, the project of the working directory is checked (every layer,
as ``env`` would load it). With paths, see ``_check_paths``: a project
directory is checked like that, a plain directory as a policy directory, a
file on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

from buildpolicy.commands.common import add_common, make_request
from buildpolicy.errors import EXIT_PROBLEMS, BuildpolicyError


# TOML files of the Rust toolchain and common cargo tools: never policy files,
# even in a directory given to `check` (a crate root holds several of them).
NOT_POLICY_FILES = frozenset({
    "Cargo.toml", "rust-toolchain.toml", "rustfmt.toml", ".rustfmt.toml", "clippy.toml", ".clippy.toml",
    "deny.toml", "Cross.toml", "taplo.toml", ".taplo.toml", "typos.toml", "_typos.toml", ".typos.toml",
})
PROFILE_NAME = "buildpolicy.toml"


def is_project_dir(path: Path) -> bool:
    """A directory ``check`` treats as a project: it holds the profile file or a ``Cargo.toml``."""
    return (path / PROFILE_NAME).is_file() or (path / "Cargo.toml").is_file()


def policy_files(directory: Path) -> list[Path]:
    """The policy files of a plain directory: its ``*.toml`` in lexical order, minus tool files."""
    return sorted(f for f in directory.glob("*.toml") if f.is_file() and f.name not in NOT_POLICY_FILES)


def _check_paths(paths: list[str], request) -> tuple[int, list, list[str]]:
    """Check what the caller named; every problem of every path is raised together.

    - a directory holding ``buildpolicy.toml`` (or a ``Cargo.toml``: a crate
      of a project) is a project: it is checked exactly like ``check`` run
      inside it (the profile found from there, its ``policies``, ``extends``
      and plugins, and the site and user layers);
    - any other directory is a policy directory: its ``*.toml`` files are
      checked as policy files, except the Rust tools' own files
      (``NOT_POLICY_FILES``: ``Cargo.toml``, ``rust-toolchain.toml``…);
    - a file is checked on its own, whatever its name: as a profile when it is
      named ``buildpolicy.toml``, else as a policy file.

    Returns the number of files, the rules, and warnings: what in the files
    checked outside a project would need ``buildpolicy allow`` in one.
    """
    from buildpolicy.record import evolve

    from buildpolicy.engine.pipeline import evaluate
    from buildpolicy.facts import fact_type, known_fact_names
    from buildpolicy.policy.loader import POLICY_KEYS, PROFILE_KEYS, _Compiler

    compiler = _Compiler(fact_type, known_fact_names())
    problems: list = []
    count = 0
    rules: list = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir() and is_project_dir(path):
            try:
                result = evaluate(evolve(request, cwd=path.resolve()))
            except BuildpolicyError as exc:
                problems.extend(exc.messages)
                continue
            count += len(result.policy_set.files)
            rules.extend(result.policy_set.rules)
            continue
        for file in policy_files(path) if path.is_dir() else [path]:
            count += 1
            kind = "profile" if file.name == PROFILE_NAME else "policy"
            doc = compiler.parse(file, kind)
            if doc is not None:
                compiler.add_file("project", doc, PROFILE_KEYS if kind == "profile" else POLICY_KEYS)
    merged, _ = compiler.merged_rules()
    problems.extend(compiler.diagnostics)
    if problems:
        raise BuildpolicyError(problems, EXIT_PROBLEMS)
    untrusted = [f"{finding.diagnostic()} (in a project, `env` and `exec` refuse it until `buildpolicy allow`)"
                 for finding in compiler.findings]
    return count, rules + list(merged), untrusted


HELP = "validate the profile and policy files; all errors at once"


def add_arguments(parser) -> None:
    """This command's arguments."""
    add_common(parser)
    parser.add_argument("--format", default="text",
                        help="text (default) or json: {ok, files, rules, problems: [{file, line, col, message, "
                             "detail}], warnings}")
    parser.add_argument(
        "paths", nargs="*",
        help="files or directories to check (default: this project); a directory with a buildpolicy.toml "
        "or Cargo.toml is checked as a project, any other directory as a policy directory",
    )



def run(args, command_argv) -> int:
    """Report every problem with file:line:col; exit 1 when any is found."""
    from buildpolicy.engine.pipeline import evaluate

    if args.format not in ("text", "json"):
        raise BuildpolicyError(f"check: unknown --format {args.format!r}; allowed: text, json")
    untrusted: list[str] = []
    try:
        if args.paths:
            count, rules, untrusted = _check_paths(args.paths, make_request(args, command_argv, "check"))
        else:
            result = evaluate(make_request(args, command_argv, "check"))
            count, rules = len(result.policy_set.files), list(result.policy_set.rules)
    except BuildpolicyError as exc:
        # Problems in the files are what `check` is for: exit 1, not 2.
        exc.exit_code = EXIT_PROBLEMS if exc.exit_code == 2 else exc.exit_code
        if args.format == "json":
            _print_json(False, None, None, exc.messages, [])
            return exc.exit_code
        for message in exc.messages:
            print(f"{message}", file=sys.stderr)
        print(f"buildpolicy check: {len(exc.messages)} problem(s)", file=sys.stderr)
        return exc.exit_code
    from buildpolicy.policy.conflicts import possible_conflicts

    conflicts = untrusted + possible_conflicts(rules)
    if args.format == "json":
        _print_json(True, count, len(rules), [], conflicts)
        return 0
    for warning in conflicts:
        print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.write(f"ok: {count} file(s), {len(rules)} rule(s)" + (f", {len(conflicts)} warning(s)" if conflicts else "") + "\n")
    return 0


def _print_json(ok: bool, files: int | None, rules: int | None, problems, warnings) -> None:
    """The report for scripts and editors: every problem located (file, line, col, message)."""
    import json

    from buildpolicy.output.problems import problem_json

    report = {"ok": ok, "files": files, "rules": rules, "problems": [problem_json(m) for m in problems],
              "warnings": [problem_json(w) for w in warnings]}
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
