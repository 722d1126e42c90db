"""Helpers for the hardening tests: run the real CLI with a hang guard, a fake cargo
and sccache first on PATH, pinned machine facts, and ways to damage a state file.

Every run is ``python -m buildpolicy`` in a subprocess with the test's private home
(``base_env``); a run that does not finish within ``HANG`` seconds is a hang, and
the test fails saying so (the child is killed).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO_CARGO_TOML

# Far longer than any run takes even on a loaded machine: only a hang reaches it.
HANG = 90

# Prints its arguments to $FAKE_CARGO_LOG; with $FAKE_HOLDER set, copies the gate's
# holder file (what other users of a shared gate can read) while it "builds".
FAKE_CARGO = """#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_CARGO_LOG"
if [ -n "$FAKE_HOLDER" ] && [ -f "$FAKE_HOLDER" ]; then cat "$FAKE_HOLDER" >> "$FAKE_HOLDER_COPY"; fi
exit 0
"""
FAKE_SCCACHE = "#!/bin/sh\nexit 0\n"

# Knobs that make two runs print the same environment whatever memory is free at
# the moment (the job count; the low-memory rule's threshold). Through variables,
# not --facts: a run with given facts is never recorded for the warm replay.
STEADY = {"BUILDPOLICY_JOBS": "4", "BUILDPOLICY_LOW_MEMORY": "off"}

# Facts for runs that may be given facts (explain, exec): memory and CPUs pinned;
# everything else (tools, rustc, the linker smoke test, cargo profiles) is probed.
PINNED_FACTS = {
    "cpu.count": 8,
    "memory.total": "32GiB",
    "memory.available": "16GiB",
    "swap.total": "8GiB",
    "swap.free": "8GiB",
    "process.earlyoom": False,
}



def fake_tools(tmp_path: Path, base_env: dict[str, str]) -> dict[str, str]:
    """``base_env`` with a fake ``cargo`` and ``sccache`` first on PATH, $FAKE_CARGO_LOG set
    and the ``STEADY`` knobs."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("cargo", FAKE_CARGO), ("sccache", FAKE_SCCACHE)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = dict(base_env)
    env["PATH"] = f"{bin_dir}{os.pathsep}{base_env['PATH']}"
    env["FAKE_CARGO_LOG"] = str(tmp_path / "cargo-calls.log")
    env.update(STEADY)
    return env


@pytest.fixture
def env(tmp_path, base_env) -> dict[str, str]:
    """The caller's environment of a hardening test: ``fake_tools``."""
    return fake_tools(tmp_path, base_env)


@pytest.fixture
def project(tmp_path) -> Path:
    """The project of a hardening test: ``make_project``."""
    return make_project(tmp_path / "proj")


def make_project(root: Path, facts: dict | None = None) -> Path:
    """A cargo package with a profile file, an empty policies dir and a pinned facts file
    (``root/facts.json``); returns ``root``."""
    (root / "policies").mkdir(parents=True, exist_ok=True)
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "main.rs").write_text("fn main() {}\n")
    (root / "Cargo.toml").write_text(DEMO_CARGO_TOML)
    (root / "buildpolicy.toml").write_text('policies = ["policies"]\n')
    (root / "facts.json").write_text(json.dumps(PINNED_FACTS if facts is None else facts))
    return root


def bp(env: dict[str, str], cwd: Path, *args: str, timeout: float = HANG) -> subprocess.CompletedProcess:
    """``python -m buildpolicy ARGS`` in ``cwd``; fails the test (naming the command) if it hangs."""
    try:
        return subprocess.run([sys.executable, "-m", "buildpolicy", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"`buildpolicy {' '.join(args)}` hung (no answer in {timeout}s)") from None


def own_files(home: Path) -> list[Path]:
    """Every regular file buildpolicy keeps in the cache and state directories of ``home``."""
    found = []
    for top in (home / "cache" / "buildpolicy", home / "state" / "buildpolicy"):
        found += [p for p in top.rglob("*") if p.is_file() and not p.is_symlink()]
    return sorted(found)


def deep_json(depth: int = 100_000) -> bytes:
    """Valid-looking JSON nested far deeper than any parser recurses."""
    return b"[" * depth + b"]" * depth


def damage(path: Path, kind: str) -> None:
    """Replace ``path`` with a FIFO nobody writes to, a symlink to /dev/zero, or deeply nested JSON."""
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "devzero":
        path.symlink_to("/dev/zero")
    elif kind == "deep":
        path.write_bytes(deep_json())
    else:
        raise ValueError(kind)


def is_regular(path: Path) -> bool:
    """Whether ``path`` is a regular file (not a symlink, FIFO or device)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False
