"""`buildpolicy test` and `pytest --buildpolicy`: hermetic cases, expected versus actual, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from buildpolicy.team.policytest import parse_case_args

CARGO_TOML = '[package]\nname = "demo"\nversion = "0.1.0"\n\n[profile.selfdev]\ninherits = "dev"\n'

LAPTOP = ('facts = { os = "linux", "process.earlyoom" = true, "swap.total" = 0, "memory.total" = "16GiB", '
          '"memory.available" = "6GiB", "cpu.count" = 8 }\n')

PASSING = f"""\
[[case]]
name = "16 GiB laptop without swap gets the low-memory settings"
args = ["--", "cargo", "build", "--profile", "selfdev"]
{LAPTOP}env = {{}}
knobs = {{}}
expect.env = {{ CARGO_PROFILE_SELFDEV_CODEGEN_UNITS = "256", CARGO_BUILD_JOBS = "3" }}
expect.absent = ["RUSTC_WRAPPER"]
expect.decisions = {{ sccache = "disabled-by-policy:low-memory-incremental" }}

[[case]]
name = "the knob switches it off"
args = ["--set", "low_memory=off", "--", "cargo", "build", "--profile", "selfdev"]
{LAPTOP}knobs = {{ mib_per_job = 3072 }}
expect.absent = ["CARGO_PROFILE_SELFDEV_CODEGEN_UNITS"]
expect.env = {{ CARGO_BUILD_JOBS = "2" }}
expect.decisions = {{ low_memory = "disabled-by-knob" }}
"""

FAILING = f"""\
[[case]]
name = "wrong expectations"
args = ["--", "cargo", "build"]
{LAPTOP}env = {{ RUSTC_WRAPPER = "/usr/bin/sccache", CARGO_TERM_COLOR = "never" }}
expect.env = {{ CARGO_PROFILE_DEV_CODEGEN_UNITS = "128", CARGO_TERM_COLOR = "never" }}
expect.absent = ["CARGO_INCREMENTAL"]
expect.decisions = {{ sccache = "enabled", nosuch = "x" }}
"""


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    (root / "policies" / "tests").mkdir(parents=True)
    (root / "Cargo.toml").write_text(CARGO_TOML)
    (root / "buildpolicy.toml").write_text('policies = ["policies"]\n')
    (root / "policies" / "tests" / "laptop.toml").write_text(PASSING)
    return root


def test_passing_cases_exit_0(cli, project):
    proc = cli("test", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "PASS  policies/tests/laptop.toml:1  16 GiB laptop without swap gets the low-memory settings"
    assert lines[-1] == "2 case(s): 2 passed, 0 failed"


def test_failing_case_reports_expected_versus_actual_for_every_key(cli, project):
    (project / "policies" / "tests" / "zz-wrong.toml").write_text(FAILING)
    proc = cli("test", cwd=project)
    assert proc.returncode == 1
    out = proc.stdout
    assert "FAIL  policies/tests/zz-wrong.toml:1  wrong expectations" in out
    assert ("      env CARGO_PROFILE_DEV_CODEGEN_UNITS:\n        expected: '128'\n        actual:   '256'\n"
            "        from:     builtin ") in out
    assert "rule low-memory-incremental" in out
    assert "      absent CARGO_INCREMENTAL:\n        expected: not set\n        actual:   '1'\n" in out
    assert ("      decision sccache:\n        expected: 'enabled'\n"
            "        actual:   'disabled-by-policy:low-memory-incremental'\n") in out
    assert "      decision nosuch:\n        expected: 'x'\n        actual:   no such decision\n" in out
    assert "CARGO_TERM_COLOR" not in out  # the one expectation that held
    assert out.splitlines()[-1] == "3 case(s): 2 passed, 1 failed"
    quiet = cli("test", "-q", cwd=project)
    assert "PASS" not in quiet.stdout and "FAIL" in quiet.stdout


def test_cases_are_hermetic(cli, project, home):
    """Nothing of the machine running the test leaks in: facts, environment, user and site layers."""
    (project / "policies" / "home.toml").write_text(
        '[[rule]]\nid = "has-home"\nwhen = "env.HOME != null"\nenv = { CARGO_TERM_VERBOSE = "true" }\n')
    (home / "config" / "buildpolicy").mkdir(parents=True)
    (home / "config" / "buildpolicy" / "mine.toml").write_text("[knobs]\njobs = 7\n")
    (home / "site" / "site.toml").write_text('[[rule]]\nid = "site"\nenv = { CARGO_NET_OFFLINE = "true" }\n')
    (project / "policies" / "tests" / "laptop.toml").write_text(
        '[[case]]\nname = "no facts: memory unknown, cargo picks the jobs"\n'
        'expect.absent = ["CARGO_BUILD_JOBS", "CARGO_TERM_VERBOSE", "CARGO_NET_OFFLINE", "HOME", "PATH"]\n'
        'expect.decisions = { jobs = "cargo-default", tmpdir = "system-default" }\n')
    proc = cli("test", cwd=project, env={"CARGO_BUILD_JOBS": "5", "TMPDIR": "/var/tmp"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The user layer and the real machine do apply outside of tests.
    assert "export CARGO_BUILD_JOBS='7'" in cli("env", cwd=project, check=True).stdout


def test_cargo_facts_come_from_the_case_args_and_env(cli, project):
    (project / "policies" / "tests" / "laptop.toml").write_text(
        f'[[case]]\nname = "CARGO_INCREMENTAL=0 in the caller env turns the rule off"\n'
        f'args = ["--", "cargo", "build", "--profile", "selfdev"]\n{LAPTOP}env = {{ CARGO_INCREMENTAL = "0" }}\n'
        'expect.decisions = { low_memory = "auto-not-needed" }\n\n'
        f'[[case]]\nname = "release builds are not incremental"\nargs = ["--profile", "release"]\n{LAPTOP}'
        'expect.decisions = { low_memory = "auto-not-needed" }\n\n'
        '[[case]]\nname = "ci comes from the env"\nenv = { CI = "true" }\n'
        'expect.error = "rule-ci"\n')
    (project / "policies" / "ci.toml").write_text(
        '[[rule]]\nid = "rule-ci"\nwhen = "ci"\nenv = { CARGO_TERM_COLOR = "always" }\n'
        '[[rule]]\nid = "rule-ci-2"\nwhen = "ci"\nenv = { CARGO_TERM_COLOR = "never" }\n')
    proc = cli("test", cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_expect_error_fails_when_the_run_succeeds_or_errs_differently(cli, project):
    (project / "policies" / "tests" / "laptop.toml").write_text(
        '[[case]]\nname = "should fail but does not"\nexpect.error = "conflict"\n\n'
        '[[case]]\nname = "unexpected error"\nknobs = { sccache = "on" }\nargs = ["--set", "linker=fastest"]\n')
    proc = cli("test", cwd=project)
    assert proc.returncode == 1
    assert "      error:\n        expected: 'conflict'\n        actual:   the run succeeded" in proc.stdout
    assert "FAIL  policies/tests/laptop.toml:5  unexpected error" in proc.stdout
    assert "expected: the run succeeds" in proc.stdout and "knob 'linker': bad value 'fastest'" in proc.stdout


def test_invalid_case_files_are_located_errors(cli, project):
    bad = project / "policies" / "tests" / "bad.toml"
    bad.write_text('[[case]]\nname = "x"\nfacts = { "memory.totl" = "16GiB", "cpu.count" = "many" }\n'
                   'knobs = { sccache = "maybe", jbs = 2 }\nexpect.enc = {}\n')
    proc = cli("test", cwd=project)
    assert proc.returncode == 2 and proc.stdout == ""
    # Schema problems first (all of them), then what needs the project's declarations.
    assert proc.stderr == (f"buildpolicy: error: {bad}:5:8: unknown key 'enc' in case[0].expect; did you mean 'env'? "
                           "(allowed: env, absent, decisions, error)\n")
    bad.write_text(bad.read_text().replace("expect.enc = {}\n", 'args = ["--facts", "f.json"]\n'))
    assert f"{bad}:5:8: case 'x': unsupported argument '--facts'" in cli("test", cwd=project).stderr
    bad.write_text(bad.read_text().replace('args = ["--facts", "f.json"]\n', ""))
    proc = cli("test", cwd=project)
    assert proc.returncode == 2
    assert f"{bad}:3:11: case 'x': unknown fact 'memory.totl'; did you mean 'memory.total'?" in proc.stderr
    assert f"{bad}:3:50: case 'x': fact 'cpu.count' is int" in proc.stderr
    assert f"{bad}:4:21: case 'x': knob 'sccache': bad value 'maybe'; allowed: one of auto, on, off" in proc.stderr
    assert f"{bad}:4:30: case 'x': unknown knob 'jbs'; did you mean 'jobs'?" in proc.stderr
    bad.write_text('[[case]]\nname = "x"\n[[case]]\nname = "x"\n')
    assert "case name 'x' is used twice" in cli("test", str(bad), cwd=project).stderr
    bad.write_text("[[case]\n")
    assert f"{bad}:1:" in cli("test", cwd=project).stderr


def test_paths_default_and_missing(cli, project):
    sub = project / "src" / "deep"
    sub.mkdir(parents=True)
    proc = cli("test", cwd=sub)  # found from the profile, like every command
    assert proc.returncode == 0 and "2 passed" in proc.stdout
    one = cli("test", str(project / "policies" / "tests" / "laptop.toml"), cwd=sub)
    assert one.returncode == 0
    assert cli("test", "nope.toml", cwd=project).returncode == 2
    (project / "policies" / "tests" / "laptop.toml").unlink()
    empty = cli("test", cwd=project)
    assert empty.returncode == 1 and "no test cases found" in empty.stderr


@pytest.mark.parametrize("args, expected", [
    ([], (None, (), None)),
    (["--", "cargo", "build"], (None, (), ("cargo", "build"))),
    (["--profile", "p", "--set=a=1", "--set", "b=2", "--"], ("p", ("a=1", "b=2"), None)),
    (["--profile=x", "--", "cargo", "--", "t"], ("x", (), ("cargo", "--", "t"))),
])
def test_case_args(args, expected):
    assert parse_case_args(args) == expected


def pytest_in(project: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)


def test_pytest_plugin_runs_the_same_cases(project, base_env):
    env = dict(base_env)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    proc = pytest_in(project, "--buildpolicy", "policies/tests", "-v", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "laptop.toml::16 GiB laptop without swap gets the low-memory settings PASSED" in proc.stdout
    assert "2 passed" in proc.stdout
    (project / "policies" / "tests" / "zz-wrong.toml").write_text(FAILING)
    failed = pytest_in(project, "--buildpolicy", "policies/tests", env=env)
    assert failed.returncode == 1
    assert "FAIL  policies/tests/zz-wrong.toml:1  wrong expectations" in failed.stdout
    assert "        expected: '128'\n        actual:   '256'" in failed.stdout
    assert "1 failed, 2 passed" in failed.stdout
    # Inert unless asked: without --buildpolicy nothing is collected.
    assert pytest_in(project, "policies/tests", env=env).returncode == 5
    (project / "pytest.ini").write_text("[pytest]\nbuildpolicy = true\ntestpaths = policies/tests\n")
    assert "1 failed, 2 passed" in pytest_in(project, env=env).stdout


def test_pytest_plugin_reports_invalid_files_without_a_traceback(project, base_env):
    env = dict(base_env)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    bad = project / "policies" / "tests" / "bad.toml"
    bad.write_text('[[case]]\nname = "x"\nfacts = { "memory.totl" = 1 }\n')
    proc = pytest_in(project, "--buildpolicy", "policies/tests", env=env)
    assert proc.returncode == 2
    assert f"{bad}:3:11: case 'x': unknown fact 'memory.totl'" in proc.stdout
    assert "Traceback" not in proc.stdout
