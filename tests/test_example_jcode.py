"""The migration example (examples/jcode) keeps working: its policy tests pass, the jcode
wrapper's variables act, and a real build embeds the commit it is built from."""

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
    assert "56 passed, 0 failed" in proc.stdout


def test_check_passes_once_allowed(cli, example):
    # The profile names variables (JCODE_BUILD_GIT_HASH…) and paths (JCODE_BUILD_TMPDIR,
    # JCODE_CARGO_GATE_PATH, JCODE_REMOTE_HOST): a clone waits for `buildpolicy allow`.
    refused = cli("check", cwd=example)
    assert refused.returncode == 1 and "git_meta_hash_var" in refused.stdout + refused.stderr
    cli("allow", cwd=example, check=True)
    assert cli("check", cwd=example, check=True).stdout.startswith("ok:")


def test_legacy_variables_drive_the_knobs(cli, example):
    cli("allow", cwd=example, check=True)
    env = {"JCODE_DEV_FEATURE_PROFILE": "pdf", "JCODE_FAST_LINKER": "system", "JCODE_SELFDEV_LOW_MEMORY": "force",
           "JCODE_BUILD_JOBS": "3", "JCODE_SCCACHE": "never", "JCODE_PARALLEL_FRONTEND": "0",
           "JCODE_DEV_CARGO_ALLOW_ZERO_TESTS": "1", "JCODE_CARGO_GATE": "disabled"}
    argv = ["cargo", "build", "--profile", "selfdev"]
    plan = json.loads(cli("exec", "--dry-run", "--", *argv, cwd=example, env=env, check=True).stdout)
    assert plan["argv"] == [*argv, "--no-default-features", "--features", "pdf"]
    assert plan["profile"] == "selfdev"
    statuses = {name: d["status"] for name, d in plan["decisions"].items()}
    assert statuses["linker"] == "system" and statuses["low_memory"] == "forced-by-knob"
    assert statuses["jobs"].startswith("governor-max:3") and statuses["sccache"] == "disabled-by-knob"
    assert statuses["frontend"] == "disabled-by-knob" and statuses["gate"] == "disabled"
    assert plan["env"]["CARGO_PROFILE_SELFDEV_CODEGEN_UNITS"] == "256"
    assert plan["knobs"]["linker"]["source"] == "env $JCODE_FAST_LINKER"
    assert plan["knobs"]["zero_tests"]["value"] == "allow"


@pytest.mark.parametrize("profile, inserted", [
    ("default", []), ("minimal", ["--no-default-features"]), ("none", ["--no-default-features"]),
    ("pdf", ["--no-default-features", "--features", "pdf"]),
    ("embeddings", ["--no-default-features", "--features", "embeddings"]),
    ("full", ["--features", "embeddings,pdf,bedrock"]),
])
def test_each_feature_profile_inserts_the_wrappers_arguments(cli, example, profile, inserted):
    cli("allow", cwd=example, check=True)
    argv = ["cargo", "test", "--profile", "selfdev", "--", "--nocapture"]
    plan = json.loads(cli("exec", "--dry-run", "--", *argv, cwd=example, env={"JCODE_DEV_FEATURE_PROFILE": profile},
                          check=True).stdout)
    assert plan["argv"] == [*argv[:4], *inserted, *argv[4:]]


def test_a_legacy_value_outside_the_map_is_a_clear_error(cli, example):
    cli("allow", cwd=example, check=True)
    proc = cli("env", cwd=example, env={"JCODE_FAST_LINKER": "gold"})
    assert proc.returncode == 2 and proc.stdout == ""
    assert "JCODE_FAST_LINKER" in proc.stderr and "auto, mold, lld, system" in proc.stderr


def test_env_without_a_cargo_argv_uses_default_profile(cli, example):
    cli("allow", cwd=example, check=True)
    report = json.loads(cli("explain", "--format", "json", cwd=example, env={"JCODE_SELFDEV_LOW_MEMORY": "1"}, check=True).stdout)
    assert report["profile"] == "selfdev"
    assert report["env"]["CARGO_PROFILE_SELFDEV_CODEGEN_UNITS"] == "256"


def test_a_real_build_embeds_the_commit_and_follows_head(example, base_env):
    """``buildpolicy exec -- cargo build --profile selfdev`` in the example: the binary
    prints the commit it was built from, before and after a new commit."""
    import os
    import subprocess
    import sys

    from tests.test_e2e_cargo import require

    env = dict(base_env)
    home = Path(os.path.expanduser("~"))
    env.setdefault("RUSTUP_HOME", str(home / ".rustup"))
    env.setdefault("CARGO_HOME", str(home / ".cargo"))
    env["PATH"] = f"{Path(env['CARGO_HOME']) / 'bin'}{os.pathsep}{env['PATH']}"
    env.update(CARGO_NET_OFFLINE="true", CARGO_TARGET_DIR=str(example.parent / "target"), JCODE_PARALLEL_FRONTEND="0",
               JCODE_DEV_FEATURE_PROFILE="pdf")
    require("cargo", "a Rust toolchain", env["PATH"])
    git = ["git", "-c", "user.email=dev@example.com", "-c", "user.name=dev", "-C", str(example)]
    subprocess.run(["git", "init", "-q", str(example)], check=True)

    def commit_and_build() -> tuple[str, str]:
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "change"], check=True)
        head = subprocess.run([*git, "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True).stdout.strip()
        run = [sys.executable, "-m", "buildpolicy"]
        subprocess.run([*run, "allow"], cwd=example, env=env, check=True, capture_output=True)
        proc = subprocess.run([*run, "exec", "--", "cargo", "build", "--profile", "selfdev"], cwd=example, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        binary = example.parent / "target" / "selfdev" / "jcode-demo"
        return head, subprocess.run([binary], capture_output=True, text=True, timeout=30).stdout

    for _ in range(2):
        head, printed = commit_and_build()
        assert printed.startswith(f"jcode-demo {head} (") and printed.rstrip().endswith("features: [pdf]")
