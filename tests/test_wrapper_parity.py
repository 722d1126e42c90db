"""Behaviour the bash wrapper had and buildpolicy must keep (issue 14), through the real CLI.

Each test runs ``python -m buildpolicy`` as a user would; where the output is an
environment, a real bash evaluates it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO_CARGO_TOML, LOW_MEMORY_LAPTOP, write


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    write(root / "Cargo.toml", DEMO_CARGO_TOML)
    write(root / "src" / "main.rs", "fn main() {}\n")
    return root


def shell_after_env(base_env, project, facts: dict, caller: dict, names, *cargo) -> dict[str, str | None]:
    """Run ``eval "$(buildpolicy env …)"`` in a real bash whose environment holds ``caller``;
    return the value each of ``names`` has afterwards (None: unset)."""
    facts_file = write(project.parent / "facts.json", json.dumps(facts))
    env = dict(base_env, **caller)
    command = " ".join(f"'{arg}'" for arg in (sys.executable, "-m", "buildpolicy", "env", "--facts", str(facts_file), "--", *cargo))
    report = "; ".join(f'if [ -n "${{{n}+x}}" ]; then printf "%s=%s\\n" {n} "${n}"; else echo {n}; fi' for n in names)
    script = f'set -e; out="$({command})"; eval "$out"; {report}'
    proc = subprocess.run(["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    values: dict[str, str | None] = {}
    for line in proc.stdout.splitlines():
        name, sep, value = line.partition("=")
        values[name] = value if sep else None
    return values


def test_low_memory_rule_removes_an_inherited_sccache_wrapper(base_env, project):
    """Issue 14.1: the low-memory rule turns sccache off, and the caller's RUSTC_WRAPPER=sccache
    must not stay on the incremental build it keeps."""
    after = shell_after_env(base_env, project, LOW_MEMORY_LAPTOP, {"RUSTC_WRAPPER": "sccache"},
                            ["RUSTC_WRAPPER", "CARGO_INCREMENTAL"], "cargo", "build", "--profile", "selfdev")
    assert after == {"RUSTC_WRAPPER": None, "CARGO_INCREMENTAL": "1"}


def test_low_memory_rule_keeps_another_tools_wrapper(base_env, project):
    """Only sccache is removed: a wrapper of another tool is the caller's business."""
    after = shell_after_env(base_env, project, LOW_MEMORY_LAPTOP, {"RUSTC_WRAPPER": "/opt/bin/my-wrapper"},
                            ["RUSTC_WRAPPER"], "cargo", "build", "--profile", "selfdev")
    assert after == {"RUSTC_WRAPPER": "/opt/bin/my-wrapper"}


def test_a_projects_build_tmpdir_needs_allow(cli, base_env, project, tmp_path):
    """``build_tmpdir`` makes buildpolicy create a directory: from a repository's file it
    waits for ``buildpolicy allow`` (nothing is created before), then applies."""
    deep = tmp_path / "made" / "by" / "the" / "repo"
    write(project / "buildpolicy.toml", f'[knobs]\nbuild_tmpdir = "{deep}"\n')
    before = cli("env", "--format", "json", cwd=project)
    assert not deep.exists()
    assert "TMPDIR" not in json.loads(before.stdout or "{}").get("set", {})
    cli("allow", cwd=project, check=True)
    after = json.loads(cli("env", "--format", "json", cwd=project, check=True).stdout)
    assert after["set"]["TMPDIR"] == str(deep) and deep.is_dir()
