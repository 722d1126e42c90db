"""``buildpolicy check [PATH...]``: validate profile and policy files, all errors at once."""

from __future__ import annotations

import sys
from pathlib import Path

from buildpolicy.cli import add_common, make_request
from buildpolicy.errors import EXIT_PROBLEMS, BuildpolicyError


def possible_conflicts(rules) -> list[str]:
    """Pairs of rules of one layer and priority that set one variable differently and could match together."""
    from buildpolicy.expr import may_both_match

    warnings = []
    active = [rule for rule in rules if rule.enabled]
    for index, first in enumerate(active):
        for second in active[index + 1 :]:
            if (first.layer, first.priority) != (second.layer, second.priority):
                continue
            if first.knob or second.knob:
                pass  # a knob switch `on` makes a rule match regardless of `when`
            elif not may_both_match(first.when, second.when):
                continue
            mine = {entry.name: entry.value for entry in first.env}
            for entry in second.env:
                if entry.name in mine and mine[entry.name] != entry.value:
                    warnings.append(
                        f"{second.file}:{entry.line}: rules {first.id!r} ({first.file}:{first.line}) and {second.id!r} "
                        f"set {entry.name} to {mine[entry.name]!r} and {entry.value!r} in the {first.layer} layer with "
                        f"priority {first.priority}; if both match, the run fails: give one a higher priority or make "
                        "their `when`s exclusive"
                    )
    return warnings


def _check_paths(paths: list[str]) -> tuple[int, list]:
    """Validate the given files on their own (profile files by name, else policy files)."""
    from buildpolicy.facts import fact_type, known_fact_names
    from buildpolicy.loader import POLICY_KEYS, PROFILE_KEYS, _Compiler

    compiler = _Compiler(fact_type, known_fact_names())
    count = 0
    for raw in paths:
        path = Path(raw)
        files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
        for file in files:
            count += 1
            kind = "profile" if file.name == "buildpolicy.toml" else "policy"
            doc = compiler.parse(file, kind)
            if doc is not None:
                compiler.add_file("project", doc, PROFILE_KEYS if kind == "profile" else POLICY_KEYS)
    rules, _ = compiler.merged_rules()
    if compiler.diagnostics:
        raise BuildpolicyError(compiler.diagnostics, EXIT_PROBLEMS)
    return count, list(rules)


HELP = "validate the profile and policy files; all errors at once"


def add_arguments(parser) -> None:
    """This command's arguments."""
    add_common(parser)
    parser.add_argument("paths", nargs="*", help="files to check (default: every layer's files)")



def run(args, command_argv) -> int:
    """Report every problem with file:line:col; exit 1 when any is found."""
    from buildpolicy.engine import evaluate

    try:
        if args.paths:
            count, rules = _check_paths(args.paths)
        else:
            result = evaluate(make_request(args, command_argv, "check"))
            count, rules = len(result.policy_set.files), list(result.policy_set.rules)
    except BuildpolicyError as exc:
        # Problems in the files are what `check` is for: exit 1, not 2.
        exc.exit_code = EXIT_PROBLEMS if exc.exit_code == 2 else exc.exit_code
        for message in exc.messages:
            print(f"{message}", file=sys.stderr)
        print(f"buildpolicy check: {len(exc.messages)} problem(s)", file=sys.stderr)
        return exc.exit_code
    conflicts = possible_conflicts(rules)
    for warning in conflicts:
        print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.write(f"ok: {count} file(s), {len(rules)} rule(s)" + (f", {len(conflicts)} warning(s)" if conflicts else "") + "\n")
    return 0
