"""Policy tests: hermetic cases in, expected environment and decisions out (DESIGN §9).

A case file (``policies/tests/*.toml``, schema ``schema/tests.schema.json``)::

    [[case]]
    name = "16 GiB laptop without swap gets the low-memory settings"
    args = ["--", "cargo", "build", "--profile", "selfdev"]
    facts = { os = "linux", "swap.total" = 0, "memory.total" = "16GiB", "memory.available" = "6GiB" }
    env = {}
    knobs = {}
    expect.env = { CARGO_PROFILE_SELFDEV_CODEGEN_UNITS = "256" }
    expect.absent = ["RUSTC_WRAPPER"]
    expect.decisions = { sccache = "disabled-by-policy:low-memory-incremental" }

How a case is run, so that it means the same on every machine:

- the project is the one whose ``buildpolicy.toml`` is found walking up from
  the case file (its ``Cargo.toml`` gives the ``cargo.*`` facts);
- the facts given are the only machine facts (``Request(hermetic=True)``):
  every other one is unknown. Facts computed from the invocation (``cargo.*``
  from ``args`` and ``Cargo.toml``, ``env.*`` and ``ci`` from ``env``) are
  still computed;
- ``env`` is exactly the caller's environment: nothing is inherited from the
  machine running the test (no ``HOME``, no ``PATH``);
- the ``user`` and ``site`` layers are empty, and the state directory is a
  fresh temporary one per case (no trust records, no remote down-cache);
  only the compiled-policy cache is shared, for speed;
- the case is evaluated as ``buildpolicy env`` would be, except that trust
  is not enforced (running a project's own tests runs its code, as
  ``cargo test`` does; nothing is exported).

``expect.env``/``expect.absent`` are checked in the environment the build
would see (the caller's environment with buildpolicy's changes applied),
``expect.decisions`` against each decision's status, and ``expect.error``
requires the run to fail with that text in its error.

The same cases run under pytest with ``pytest --buildpolicy`` (see
``buildpolicy.team.pytest_plugin``), or from your own test with
:func:`run_case_files` and :func:`format_result`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from buildpolicy.record import evolve, field, frozen
from buildpolicy.errors import BuildpolicyError, Diagnostic, closest

CASES_DIR = ("policies", "tests")


@frozen
class Case:
    """One ``[[case]]`` of a case file, with the line it starts on."""

    name: str
    file: str
    line: int | None
    index: int
    profile: str | None = None
    sets: tuple[str, ...] = ()
    cargo_argv: tuple[str, ...] | None = None
    facts: dict[str, Any] = field(factory=dict)
    env: dict[str, str] = field(factory=dict)
    knobs: dict[str, Any] = field(factory=dict)
    expect_env: dict[str, str] = field(factory=dict)
    expect_absent: tuple[str, ...] = ()
    expect_decisions: dict[str, str] = field(factory=dict)
    expect_error: str | None = None

    @property
    def location(self) -> str:
        """``file:line`` of the case's ``[[case]]`` header."""
        return f"{self.file}:{self.line}" if self.line else self.file


@frozen
class Mismatch:
    """One expectation that did not hold."""

    kind: str  # "env", "absent", "decision" or "error"
    key: str
    expected: str
    actual: str
    detail: str = ""  # where the actual value came from


@frozen
class CaseResult:
    """The outcome of one case."""

    case: Case
    mismatches: tuple[Mismatch, ...] = ()

    @property
    def passed(self) -> bool:
        """Whether every expectation held."""
        return not self.mismatches


# --------------------------------------------------------------------------- loading


def find_case_files(cwd: Path, paths: Sequence[str] = ()) -> list[Path]:
    """The case files to run: ``paths`` (files, or directories of ``*.toml``), else
    ``policies/tests/*.toml`` next to the profile file found from ``cwd``.

    Raises BuildpolicyError for a path that does not exist.
    """
    from buildpolicy.paths import find_profile

    if not paths:
        profile = find_profile(cwd)
        root = profile.parent if profile else cwd
        paths = [str(root.joinpath(*CASES_DIR))]
        if not Path(paths[0]).is_dir():
            return []
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.glob("*.toml") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise BuildpolicyError(f"{raw}: no such case file or directory")
    return files


def _validate(doc) -> list[Diagnostic]:
    """Schema-validate a case file, worded and located like profile and policy files."""
    import json

    from jsonschema import Draft202012Validator

    from buildpolicy.policy import validate
    from buildpolicy.data import schema_dir

    schema = json.loads((schema_dir() / "tests.schema.json").read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema)
    found: list[Diagnostic] = []
    seen = set()
    for error in sorted(validator.iter_errors(doc.data), key=lambda e: [str(p) for p in e.absolute_path]):
        # The policy validator's wording and TOML positions, for the same look.
        for keypath, where, message in validate._describe(error, doc.data, schema):
            line, col = validate._position(doc, keypath, where)
            if (line, col, message) not in seen:
                seen.add((line, col, message))
                found.append(Diagnostic(doc.path, line, col, message))
    return sorted(found, key=Diagnostic.sort_key)


def parse_case_args(args: Sequence[str]) -> tuple[str | None, tuple[str, ...], tuple[str, ...] | None]:
    """Split a case's ``args`` like ``buildpolicy env``'s: ``--profile``, ``--set``, then ``--`` and a cargo argv.

    Returns ``(profile, sets, cargo_argv)``; raises ValueError for anything else.
    """
    own, cargo = list(args), None
    if "--" in own:
        at = own.index("--")
        own, cargo = own[:at], tuple(own[at + 1 :]) or None
    profile, sets = None, []
    i = 0
    while i < len(own):
        arg = own[i]
        name, eq, inline = arg.partition("=")
        if name in ("--profile", "--set"):
            if eq:
                value = inline
            elif i + 1 < len(own):
                i += 1
                value = own[i]
            else:
                raise ValueError(f"{name} needs a value")
            if name == "--profile":
                profile = value
            else:
                sets.append(value)
        else:
            raise ValueError(f"unsupported argument {arg!r}: args take --profile P, --set knob=value, "
                             "then `--` and a cargo argv")
        i += 1
    return profile, tuple(sets), cargo


def load_cases(path: Path) -> list[Case]:
    """Parse and validate a case file; a BuildpolicyError lists every problem with ``file:line:col``."""
    from buildpolicy.policy.tomlpos import parse_toml

    try:
        doc = parse_toml(path)
    except OSError as exc:
        raise BuildpolicyError(f"{path}: cannot read: {exc.strerror or exc}") from None
    problems = _validate(doc)
    if problems:
        raise BuildpolicyError(problems)
    cases: list[Case] = []
    names: dict[str, int] = {}
    for index, table in enumerate(doc.data["case"]):
        line = (doc.key_pos(("case", index)) or (None, None))[0]
        name = table["name"]
        if name in names:
            at = doc.value_pos(("case", index, "name")) or (None, None)
            problems.append(Diagnostic(doc.path, *at, f"case name {name!r} is used twice (also case[{names[name]}])"))
        names.setdefault(name, index)
        try:
            profile, sets, cargo_argv = parse_case_args(table.get("args", ()))
        except ValueError as exc:
            problems.append(Diagnostic(doc.path, *(doc.value_pos(("case", index, "args")) or (None, None)), f"case {name!r}: {exc}"))
            continue
        expect = table.get("expect", {})
        cases.append(
            Case(
                name=name,
                file=str(path),
                line=line,
                index=index,
                profile=profile,
                sets=sets,
                cargo_argv=cargo_argv,
                facts=dict(table.get("facts", {})),
                env=dict(table.get("env", {})),
                knobs=dict(table.get("knobs", {})),
                expect_env=dict(expect.get("env", {})),
                expect_absent=tuple(expect.get("absent", ())),
                expect_decisions=dict(expect.get("decisions", {})),
                expect_error=expect.get("error"),
            )
        )
    if problems:
        raise BuildpolicyError(sorted(problems, key=Diagnostic.sort_key))
    return cases


def _knob_text(value: Any) -> str:
    """A knob value from a case as ``--set`` would spell it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_knob_text(v) for v in value)
    return str(value)


# --------------------------------------------------------------------------- running


class CaseFile:
    """The cases of one file and the project they run against.

    Creating it loads the project's policies once and checks every case's
    facts and knobs against what the project and its plugins declare, so a
    misspelt fact is reported at its ``file:line:col`` instead of failing a case.
    """

    def __init__(self, path: Path, cache_dir: Path | None = None):
        from buildpolicy.engine.pipeline import Request, prepare
        from buildpolicy.paths import Paths, find_profile

        self.path = Path(path)
        self.cases = load_cases(self.path)
        profile = find_profile(self.path.parent.resolve())
        self.cwd = profile.parent if profile else self.path.parent.resolve()
        if cache_dir is None:
            cache_dir = Paths.from_environ(os.environ).cache_dir
        # Stable paths that never exist: the user and site layers are empty,
        # and the compiled-policy cache stays valid from one run to the next.
        hermetic_root = cache_dir / "policytest"
        self._paths = Paths(
            user_dir=hermetic_root / "no-user-layer",
            site_dir=hermetic_root / "no-site-layer",
            state_dir=hermetic_root / "state",  # replaced by a fresh directory per case
            cache_dir=cache_dir,
        )
        prepared = prepare(Request(cwd=self.cwd, environ={}, command="test", paths=self._paths, trust="ignore"))
        self._check(prepared)

    def _check(self, prepared) -> None:
        from buildpolicy.facts import make_registry
        from buildpolicy.policy.knobs import coerce
        from buildpolicy.policy.tomlpos import parse_toml

        registry = make_registry(prepared.plugin_facts)
        doc = parse_toml(self.path)
        problems: list[Diagnostic] = []
        for case in self.cases:
            for name, value in case.facts.items():
                keypath = ("case", case.index, "facts", name)
                kind = registry.fact_type(name)
                if kind is None:
                    close = closest(name, registry.known_fact_names())
                    hint = f"; did you mean '{close}'?" if close else ""
                    problems.append(Diagnostic(self.path, *(doc.key_pos(keypath) or (None, None)),
                                               f"case {case.name!r}: unknown fact '{name}'{hint}"))
                    continue
                try:
                    from buildpolicy.facts import coerce_fact

                    coerce_fact(name, kind, value)
                except BuildpolicyError as exc:
                    problems.append(Diagnostic(self.path, *(doc.value_pos(keypath) or (None, None)),
                                               f"case {case.name!r}: {exc.messages[0]}"))
            for name, value in case.knobs.items():
                keypath = ("case", case.index, "knobs", name)
                spec = prepared.knob_specs.get(name)
                if spec is None:
                    close = closest(name, prepared.knob_specs)
                    hint = f"; did you mean '{close}'?" if close else f" (known: {', '.join(sorted(prepared.knob_specs))})"
                    problems.append(Diagnostic(self.path, *(doc.key_pos(keypath) or (None, None)),
                                               f"case {case.name!r}: unknown knob '{name}'{hint}"))
                    continue
                try:
                    coerce(spec, _knob_text(value))
                except ValueError as exc:
                    problems.append(Diagnostic(self.path, *(doc.value_pos(keypath) or (None, None)),
                                               f"case {case.name!r}: knob {name!r}: bad value {value!r}; allowed: {exc}"))
        if problems:
            raise BuildpolicyError(sorted(problems, key=Diagnostic.sort_key))

    def run(self, case: Case) -> CaseResult:
        """Evaluate ``case`` hermetically and compare with its expectations."""
        from buildpolicy.record import evolve, field, frozen

        from buildpolicy.engine.pipeline import Request, evaluate

        with tempfile.TemporaryDirectory(prefix="buildpolicy-case-") as state:
            request = Request(
                cwd=self.cwd,
                environ=dict(case.env),
                command="env",
                cargo_argv=case.cargo_argv,
                profile_flag=case.profile,
                cli_sets=(*(f"{k}={_knob_text(v)}" for k, v in case.knobs.items()), *case.sets),
                fact_overrides=dict(case.facts),
                hermetic=True,
                trust="ignore",
                paths=evolve(self._paths, state_dir=Path(state)),
            )
            try:
                result = evaluate(request)
            except BuildpolicyError as exc:
                return CaseResult(case, _error_mismatches(case, exc))
        if case.expect_error is not None:
            return CaseResult(case, (Mismatch("error", "error", repr(case.expect_error), "the run succeeded"),))
        return CaseResult(case, tuple(compare(case, result)))


def _error_mismatches(case: Case, exc: BuildpolicyError) -> tuple[Mismatch, ...]:
    message = "\n".join(str(m) for m in exc.messages)
    if case.expect_error is not None and case.expect_error in message:
        return ()
    expected = repr(case.expect_error) if case.expect_error is not None else "the run succeeds"
    return (Mismatch("error", "error", expected, message),)


def compare(case: Case, result) -> list[Mismatch]:
    """Every expectation of ``case`` that ``result`` does not meet, with where the actual value came from."""
    effective = result.exec_env()
    found: list[Mismatch] = []

    def origin(name: str) -> str:
        """Where the actual value of variable ``name`` came from."""
        where = result.provenance.get(name)
        if where is not None:
            return where.describe()
        return "from the case's env" if name in case.env else ""

    for name, want in case.expect_env.items():
        got = effective.get(name)
        if got != want:
            actual = "not set" if got is None else repr(got)
            if got is None and name in result.unset:
                actual = "unset"
            found.append(Mismatch("env", name, repr(want), actual, origin(name)))
    for name in case.expect_absent:
        if name in effective:
            found.append(Mismatch("absent", name, "not set", repr(effective[name]), origin(name)))
    for name, want in case.expect_decisions.items():
        decision = result.decisions.get(name)
        if decision is None:
            known = ", ".join(sorted(result.decisions)) or "none"
            found.append(Mismatch("decision", name, repr(want), "no such decision", f"decisions made: {known}"))
        elif decision.status != want:
            found.append(Mismatch("decision", name, repr(want), repr(decision.status), decision.reason))
    return found


def run_case_files(paths: Iterable[Path], cache_dir: Path | None = None) -> list[CaseResult]:
    """Run every case of every file; a BuildpolicyError lists the problems of invalid files (all of them)."""
    loaded: list[CaseFile] = []
    problems: list = []
    for path in paths:
        try:
            loaded.append(CaseFile(path, cache_dir))
        except BuildpolicyError as exc:
            problems.extend(exc.messages)
    if problems:
        raise BuildpolicyError(problems)
    return [case_file.run(case) for case_file in loaded for case in case_file.cases]


# --------------------------------------------------------------------------- reporting


def display_path(path: str, base: Path | None = None) -> str:
    """``path`` relative to ``base`` (default: the working directory) when it is below it."""
    try:
        relative = os.path.relpath(path, base or Path.cwd())
    except ValueError:  # another drive (Windows)
        return path
    return path if relative.startswith("..") else relative


def format_result(result: CaseResult, base: Path | None = None) -> str:
    """A case's outcome for people: one line when it passed, expected vs actual per key when not."""
    case = result.case
    where = display_path(case.file, base) + (f":{case.line}" if case.line else "")
    if result.passed:
        return f"PASS  {where}  {case.name}"
    lines = [f"FAIL  {where}  {case.name}"]
    for item in result.mismatches:
        lines.append(f"      {item.kind} {item.key}:" if item.kind != "error" else "      error:")
        lines.append(f"        expected: {item.expected}")
        actual_lines = item.actual.splitlines() or [""]
        lines.append(f"        actual:   {actual_lines[0]}")
        lines.extend(f"                  {more}" for more in actual_lines[1:])
        if item.detail:
            label = "reason:  " if item.kind == "decision" else "from:    "
            lines.append(f"        {label} {item.detail}")
    return "\n".join(lines)


def summary(results: Sequence[CaseResult]) -> str:
    """``3 cases: 2 passed, 1 failed``."""
    failed = sum(1 for r in results if not r.passed)
    return f"{len(results)} case(s): {len(results) - failed} passed, {failed} failed"
