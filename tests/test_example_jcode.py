"""The migration example (examples/jcode) keeps working: its policy tests pass and its legacy variables act."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "jcode"


@pytest.fixture
def example(tmp_path) -> Path:
    copy = tmp_path / "jcode"
    shutil.copytree(EXAMPLE, copy)
    # The #:schema lines point into the repository; the copy keeps them resolvable.
    shutil.copytree(EXAMPLE.parent.parent / "schema", tmp_path / "schema")
    return copy


def test_policy_cases_pass(cli, example):
    proc = cli("test", cwd=example)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "11 passed, 0 failed" in proc.stdout


def test_check_passes(cli, example):
    assert cli("check", cwd=example, check=True).stdout.startswith("ok:")


def test_legacy_variables_drive_the_knobs(cli, example):
    env = {"JCODE_FEATURES": "pdf", "JCODE_FAST_LINKER": "0", "JCODE_SELFDEV_LOW_MEMORY": "1"}
    argv = ["cargo", "build", "--profile", "selfdev"]
    plan = json.loads(cli("exec", "--dry-run", "--", *argv, cwd=example, env=env, check=True).stdout)
    assert plan["argv"] == [*argv, "--no-default-features", "--features", "pdf"]
    assert plan["profile"] == "selfdev"
    assert plan["decisions"]["linker"]["status"] == "system"
    assert plan["decisions"]["low_memory"]["status"] == "forced-by-knob"
    assert plan["env"]["CARGO_PROFILE_SELFDEV_CODEGEN_UNITS"] == "256"
    assert plan["knobs"]["linker"]["source"] == "env $JCODE_FAST_LINKER"


def test_a_legacy_value_outside_the_map_is_a_clear_error(cli, example):
    proc = cli("env", cwd=example, env={"JCODE_FAST_LINKER": "2"})
    assert proc.returncode == 2 and proc.stdout == ""
    assert "JCODE_FAST_LINKER" in proc.stderr and "1 means auto" in proc.stderr


def test_env_without_a_cargo_argv_uses_default_profile(cli, example):
    report = json.loads(cli("explain", "--format", "json", cwd=example, env={"JCODE_SELFDEV_LOW_MEMORY": "1"}, check=True).stdout)
    assert report["profile"] == "selfdev"
    assert report["env"]["CARGO_PROFILE_SELFDEV_CODEGEN_UNITS"] == "256"
