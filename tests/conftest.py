"""Shared fixtures: an isolated home for every test, and a guard on os.environ."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.memcgroup import memory_cgroup  # noqa: F401 - a fixture for every test module (real memory cgroups)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _environ_unchanged():
    """Fail any test that leaves os.environ changed: the engine must never touch it."""
    before = dict(os.environ)
    yield
    after = dict(os.environ)
    # pytest itself updates PYTEST_CURRENT_TEST between setup and teardown.
    before.pop("PYTEST_CURRENT_TEST", None)
    after.pop("PYTEST_CURRENT_TEST", None)
    if before != after:
        changed = sorted(set(before.items()) ^ set(after.items()))
        for name in set(after) - set(before):
            del os.environ[name]
        os.environ.update(before)
        pytest.fail(f"test changed os.environ: {changed[:5]}")


@pytest.fixture
def home(tmp_path) -> Path:
    """An empty home with its own XDG directories and site dir."""
    home = tmp_path / "home"
    for sub in ("config", "state", "cache", "site"):
        (home / sub).mkdir(parents=True)
    return home


@pytest.fixture
def base_env(home) -> dict[str, str]:
    """A minimal caller environment pointing every buildpolicy directory into ``home``."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "BUILDPOLICY_SITE_DIR": str(home / "site"),
        "LANG": "C.UTF-8",
    }
    for keep in ("RUSTUP_HOME", "CARGO_HOME", "PYTHONPATH"):
        if keep in os.environ:
            env[keep] = os.environ[keep]
    return env


class CLI:
    """Runs the real ``python -m buildpolicy`` in a subprocess."""

    def __init__(self, env: dict[str, str]):
        self.env = env

    def __call__(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, check: bool = False):
        full_env = dict(self.env)
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "buildpolicy", *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc


@pytest.fixture
def cli(base_env) -> CLI:
    """Call the CLI as a user would, in an isolated home."""
    return CLI(base_env)


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path``, creating its directories; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# A small cargo package with a custom dev profile and a custom release profile.
DEMO_CARGO_TOML = """\
[package]
name = "demo"
version = "0.1.0"
edition = "2021"

[profile.selfdev]
inherits = "dev"

[profile.release-lto]
inherits = "release"
lto = true
"""


# Facts of a 16 GiB laptop without swap under earlyoom, for hermetic runs.
LOW_MEMORY_LAPTOP = {
    "os": "linux",
    "arch": "x86_64",
    "host.triple": "x86_64-unknown-linux-gnu",
    "cpu.count": 8,
    "memory.total": "16GiB",
    "memory.available": "6GiB",
    "swap.total": 0,
    "swap.free": 0,
    "process.earlyoom": True,
    "fs.tmp_is_memory": False,
}
