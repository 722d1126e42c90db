"""The one-line summary of what was decided (issue 13, item 5): `exec` always (not
with -q), `env` when stderr is a terminal and the output changes the shell."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from types import SimpleNamespace

import pytest

from buildpolicy.model import Decision
from buildpolicy.output.summary import summary_line


def _result(profile, **statuses):
    decisions = {name: Decision(name, value, status, "why") for name, (value, status) in statuses.items()}
    return SimpleNamespace(profile=profile, decisions=decisions)


def test_summary_names_every_decision_that_changes_the_build():
    result = _result(
        "selfdev",
        governor=(2, "on:jobserver:max=2"), jobs=(2, "governor-max:2 (cpus=2)"), linker=("mold", "mold"),
        frontend=({"threads": 2}, "enabled:nightly-x86_64-unknown-linux-gnu:threads=2"),
        sccache=(False, "skipped-incremental"), features=(None, "default"), remote=(None, "disabled"),
        low_memory=(False, "auto-not-needed"), tmpdir=(None, "system-default"),
    )
    assert summary_line(result) == "buildpolicy: selfdev · governor max=2 · mold · nightly -Zthreads=2 · sccache off (incremental)\n"


def test_summary_without_the_governor_shows_the_job_count():
    result = _result("release", governor=(None, "disabled-by-knob"), jobs=(3, "adaptive:3 (cpus=8, ...)"),
                     linker=("system", "system"), sccache=("/usr/bin/sccache", "enabled"),
                     low_memory=(True, "enabled:incremental=true,codegen-units=256"), features=(None, "minimal"),
                     remote=("b1", "remote:b1"), tmpdir=("/x", "disk-scratch"))
    assert summary_line(result) == ("buildpolicy: release · jobs=3 · sccache · low-memory · features minimal · "
                                    "remote b1 · tmpdir on disk\n")


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    (root / "policies").mkdir(parents=True)
    (root / "Cargo.toml").write_text('[package]\nname = "demo"\nversion = "0.1.0"\n')
    (root / "buildpolicy.toml").write_text('policies = ["policies"]\n')
    return root


def test_exec_prints_one_summary_line_and_q_silences_it(cli, project):
    proc = cli("exec", "--set", "jobs=3", "--", "true", cwd=project)
    assert proc.returncode == 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("buildpolicy: ") and "·" in line]
    assert len(lines) == 1 and lines[0].startswith("buildpolicy: dev · ") and "jobs=3" in lines[0]
    quiet = cli("exec", "-q", "--set", "jobs=3", "--", "true", cwd=project)
    assert quiet.returncode == 0 and "·" not in quiet.stderr


def _env_on_a_terminal(env, cwd, *args) -> tuple[bytes, str]:
    """Run `buildpolicy env` with stderr on a pty (stdout a pipe, as in `eval "$(...)"`)."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "buildpolicy", "env", *args], cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=slave, timeout=60)
        os.close(slave)
        slave = None
        shown = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 0
    return proc.stdout, shown.decode()


def _applied(env, stdout: bytes) -> dict:
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", 'eval "$1"; env -0', "_", stdout.decode()],
                         env=env, capture_output=True, check=True).stdout.decode()
    return dict(entry.split("=", 1) for entry in out.split("\0") if entry)


def test_env_at_a_terminal_summarises_only_what_changes(base_env, project):
    env = dict(base_env, BUILDPOLICY_JOBS="3")
    first, shown = _env_on_a_terminal(env, project)
    assert "buildpolicy: dev · jobs=3" in shown
    # The shell has it now: the next prompt changes nothing and says nothing.
    applied = {k: v for k, v in _applied(env, first).items() if k not in ("PWD", "SHLVL", "_", "OLDPWD")}
    _, again = _env_on_a_terminal(applied, project)
    assert "·" not in again
    # The first invocation again (cd'ing back into the project): replayed, and summarised again.
    _, replayed = _env_on_a_terminal(env, project)
    assert "buildpolicy: dev · jobs=3" in replayed
    _, quiet = _env_on_a_terminal(env, project, "-q")
    assert "·" not in quiet


def test_env_not_at_a_terminal_prints_no_summary(cli, project):
    proc = cli("env", "--set", "jobs=3", cwd=project, check=True)
    assert "·" not in proc.stderr
