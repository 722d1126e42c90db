"""The features decision: feature profiles inserted into the cargo argv before any ``--``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from buildpolicy.engine.pipeline import Request, evaluate
from buildpolicy.errors import BuildpolicyError
from tests.conftest import LOW_MEMORY_LAPTOP

PROFILE = """\
policies = []

[feature_profiles]
minimal = ["--no-default-features"]
full = ["--features", "serde,cli"]
"""


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "Cargo.toml").write_text('[package]\nname = "demo"\nversion = "0.1.0"\nedition = "2021"\n')
    (root / "buildpolicy.toml").write_text(PROFILE)
    return root


def run(project, base_env, *, argv=("cargo", "build"), env=None, sets=(), command="exec"):
    return evaluate(Request(cwd=project, environ=dict(base_env, **(env or {})), command=command,
                            cargo_argv=tuple(argv) if argv else None, cli_sets=tuple(sets),
                            fact_overrides=dict(LOW_MEMORY_LAPTOP), hermetic=True))


def test_default_leaves_the_argv_alone(project, base_env):
    result = run(project, base_env, argv=("cargo", "build", "--", "x"))
    assert result.decisions["features"].status == "default"
    assert result.cargo_args == ["cargo", "build", "--", "x"]


def test_profile_args_are_inserted_before_the_separator(project, base_env):
    result = run(project, base_env, argv=("cargo", "run", "--release", "--", "--features", "x"), sets=["features=full"])
    decision = result.decisions["features"]
    assert (decision.status, decision.value) == ("full", ["--features", "serde,cli"])
    assert result.cargo_args == ["cargo", "run", "--release", "--features", "serde,cli", "--", "--features", "x"]
    appended = run(project, base_env, argv=("cargo", "build", "-r"), sets=["features=minimal"])
    assert appended.cargo_args == ["cargo", "build", "-r", "--no-default-features"]


def test_knob_from_environment_and_profile_file(project, base_env):
    assert run(project, base_env, env={"BUILDPOLICY_FEATURES": "minimal"}).decisions["features"].status == "minimal"
    (project / "buildpolicy.toml").write_text(PROFILE + '\n[knobs]\nfeatures = "full"\n')
    result = run(project, base_env)
    assert result.decisions["features"].status == "full"
    assert "buildpolicy.toml:8" in result.decisions["features"].reason  # where the knob was set


def test_explicit_feature_args_are_left_alone(project, base_env):
    for flags in (["--features", "a"], ["-F", "a"], ["--all-features"], ["--no-default-features"], ["--features=a"]):
        argv = ("cargo", "build", *flags)
        result = run(project, base_env, argv=argv, sets=["features=minimal"])
        assert result.decisions["features"].status == "ignored-explicit-cargo-args"
        assert result.cargo_args == list(argv)
    # Feature flags after `--` belong to the program, not to cargo.
    after = run(project, base_env, argv=("cargo", "run", "--", "--features", "a"), sets=["features=minimal"])
    assert after.decisions["features"].status == "minimal"
    assert after.cargo_args == ["cargo", "run", "--no-default-features", "--", "--features", "a"]


def test_unknown_profile_is_an_error_listing_the_declared_ones(project, base_env):
    with pytest.raises(BuildpolicyError) as info:
        run(project, base_env, sets=["features=minimul"])
    message = str(info.value)
    assert info.value.exit_code == 2
    assert "'minimul'" in message and "declared: full, minimal" in message and "--set features=minimul" in message
    # An unknown name is an error even when the argv selects features itself.
    with pytest.raises(BuildpolicyError):
        run(project, base_env, argv=("cargo", "build", "--all-features"), sets=["features=nope"])
    (project / "buildpolicy.toml").write_text("policies = []\n")
    with pytest.raises(BuildpolicyError, match=r"declared: none \(add a \[feature_profiles\] table"):
        run(project, base_env, sets=["features=minimal"])


def test_without_cargo_argv_or_with_a_command_that_takes_no_features(project, base_env):
    env_only = run(project, base_env, argv=None, sets=["features=minimal"], command="env")
    assert env_only.decisions["features"].status == "minimal"
    assert "only `buildpolicy exec`" in env_only.decisions["features"].reason
    assert env_only.cargo_args == []
    clean = run(project, base_env, argv=("cargo", "clean"), sets=["features=minimal"])
    assert clean.cargo_args == ["cargo", "clean"]
    assert "takes no feature arguments" in clean.decisions["features"].reason


def test_exec_dry_run_shows_the_inserted_args(cli, project, tmp_path):
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(LOW_MEMORY_LAPTOP))
    proc = cli("exec", "--dry-run", "--facts", str(facts), "--set", "features=minimal",
               "--", "cargo", "run", "--profile", "dev", "--", "--verbose", cwd=project, check=True)
    plan = json.loads(proc.stdout)
    assert plan["argv"] == ["cargo", "run", "--profile", "dev", "--no-default-features", "--", "--verbose"]
    assert plan["cargo_args"] == plan["argv"]
    assert plan["decisions"]["features"]["status"] == "minimal"
    assert plan["decisions"]["features"]["source"] == "features"


def test_cli_unknown_profile_exits_2_with_empty_stdout(cli, project):
    proc = cli("env", "--set", "features=huge", cwd=project)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "declared: full, minimal" in proc.stderr and "Traceback" not in proc.stderr


def test_a_command_that_takes_no_feature_args_reports_not_applicable(project, base_env):
    for argv in (("cargo", "clean"), ("cargo", "fmt"), ("cargo", "--version")):
        result = run(project, base_env, argv=argv, sets=["features=full"])
        decision = result.decisions["features"]
        assert decision.status == "not-applicable:full", argv
        assert decision.value is None and "nothing inserted" in decision.reason
        assert result.cargo_args == list(argv)


def test_exec_of_a_program_that_is_not_cargo_reports_not_applicable(project, base_env):
    result = run(project, base_env, argv=None, sets=["features=full"])  # exec passes no cargo argv for `ls`
    assert result.decisions["features"].status == "not-applicable:full"
    assert "not cargo" in result.decisions["features"].reason


def test_exec_dry_run_of_non_cargo_and_cargo_clean_does_not_claim_the_profile(cli, project):
    for command in (["ls", "-l"], ["cargo", "clean"]):
        proc = cli("exec", "--dry-run", "--set", "features=full", "--", *command, cwd=project, check=True)
        plan = json.loads(proc.stdout)
        assert plan["argv"] == command
        assert plan["decisions"]["features"]["status"] == "not-applicable:full"
    # Selected and applied: the profile name, as before.
    build = json.loads(cli("exec", "--dry-run", "--set", "features=full", "--", "cargo", "build",
                           cwd=project, check=True).stdout)
    assert build["decisions"]["features"]["status"] == "full"
    assert build["argv"] == ["cargo", "build", "--features", "serde,cli"]
