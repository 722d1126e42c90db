"""A cloned repository's own files never hang or crash a prompt (issue 10, item 11).

The state-file tests cover buildpolicy's caches; these cover the files a repository
ships that probes read: rust-toolchain files (``rust.version``, the front-end
decision), ``.git/HEAD`` (``git.head``) and a team plugin module hashed by ``allow``.
Each is replaced by a FIFO nobody writes to, or a symlink to /dev/zero.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import write
from tests.statefiles import bp


def _plant(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


@pytest.fixture
def clone(tmp_path) -> Path:
    root = tmp_path / "clone"
    write(root / "Cargo.toml", '[package]\nname = "clone"\nversion = "0.1.0"\n')
    return root


@pytest.mark.parametrize("kind", ["fifo", "devzero"])
@pytest.mark.parametrize("name", ["rust-toolchain", "rust-toolchain.toml"])
def test_a_toolchain_file_that_is_no_file_is_ignored(clone, base_env, kind, name):
    _plant(clone / name, kind)
    facts = bp(base_env, clone, "facts", "rust.version", "--format", "json")
    assert facts.returncode == 0, facts.stderr
    assert "Traceback" not in facts.stderr
    assert "rust.version" in json.loads(facts.stdout)
    env = bp(base_env, clone, "env", "--", "cargo", "build", "--profile", "release")
    assert env.returncode == 0, env.stderr


@pytest.mark.parametrize("kind", ["fifo", "devzero"])
def test_a_git_head_that_is_no_file_leaves_git_head_unknown(clone, base_env, kind):
    (clone / ".git" / "refs").mkdir(parents=True)
    _plant(clone / ".git" / "HEAD", kind)
    facts = bp(base_env, clone, "facts", "git.head", "--format", "json")
    assert facts.returncode == 0, facts.stderr
    assert json.loads(facts.stdout)["git.head"] is None


@pytest.mark.parametrize("kind", ["fifo", "devzero"])
def test_a_team_plugin_that_is_no_file_does_not_hang_allow_or_env(clone, base_env, kind):
    write(clone / "buildpolicy.toml", 'plugin_paths = ["tools/bp.py"]\n')
    _plant(clone / "tools" / "bp.py", kind)
    for args in (("allow",), ("env",), ("explain",)):
        proc = bp(base_env, clone, *args)
        assert "Traceback" not in proc.stderr, (args, proc.stderr)
        assert proc.returncode in (0, 2), (args, proc.returncode, proc.stderr)
