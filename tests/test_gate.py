"""The build gate through the real CLI: statuses, waiting with notes, decisions
made after the wait, nested exec inheriting the gate, and a lock the command
never inherits.

A fake ``cargo`` (a Python script first on PATH) reports what it sees: the gate
marker, whether the lock is held, its own open files, and when the decisions
it runs with were made.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from buildpolicy.run.gate import GATE_VAR, GateLock, is_locked

FAKE_CARGO = """#!{python}
import json, os, subprocess, sys, time
from buildpolicy.run.gate import is_locked
lock = os.environ["FAKE_LOCK"]
fds = []
for fd in os.listdir("/proc/self/fd"):
    try:
        fds.append(os.readlink(f"/proc/self/fd/{{fd}}"))
    except OSError:
        pass
report = {{"argv": sys.argv[1:], "marker": os.environ.get("{var}"), "locked": is_locked(lock), "fds": fds,
          "decided_at": os.environ.get("CARGO_DECIDED_AT"), "pid": os.getpid(), "ppid": os.getppid()}}
with open(os.environ["FAKE_REPORT"], "a") as out:
    out.write(json.dumps(report) + "\\n")
time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
if os.environ.get("FAKE_NESTED"):
    env = dict(os.environ)
    del env["FAKE_NESTED"]
    sys.exit(subprocess.run([sys.executable, "-m", "buildpolicy", "exec", "--", "cargo", "check"], env=env, timeout=60).returncode)
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""

# A team plugin stamping, into the environment it decides, the time of the decision.
STAMP_PLUGIN = """
import time
from buildpolicy import hookimpl
from buildpolicy.model import Decision

@hookimpl
def buildpolicy_decide(ctx):
    now = repr(time.time())
    return Decision("stamp", now, "stamped", "when decisions were made", set_env={"CARGO_DECIDED_AT": now}, force=True)
"""


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "Cargo.toml").write_text('[package]\nname = "demo"\nversion = "0.1.0"\n')
    (root / "buildpolicy.toml").write_text('policies = ["policies"]\n')
    (root / "policies").mkdir()
    return root


@pytest.fixture
def lock(base_env) -> Path:
    return Path(base_env["XDG_STATE_HOME"]) / "buildpolicy" / "gate.lock"


@pytest.fixture
def fake(tmp_path, base_env, lock):
    """Environment overrides putting the fake cargo first on PATH; ``fake.reports()`` reads what it saw."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    cargo = bin_dir / "cargo"
    cargo.write_text(FAKE_CARGO.format(python=sys.executable, var=GATE_VAR))
    cargo.chmod(0o755)
    report = tmp_path / "reports.jsonl"

    class Fake:
        env = {"PATH": f"{bin_dir}:{base_env['PATH']}", "FAKE_LOCK": str(lock), "FAKE_REPORT": str(report)}

        @staticmethod
        def reports() -> list[dict]:
            return [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []

    return Fake


def gate_status(cli, project, *args, env=None) -> dict:
    proc = cli("exec", "--dry-run", *args, cwd=project, env=env, check=True)
    return json.loads(proc.stdout)["decisions"]["gate"]


def log_entries(base_env) -> list[dict]:
    path = Path(base_env["XDG_STATE_HOME"]) / "buildpolicy" / "actions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_gate_statuses(cli, project, fake):
    assert gate_status(cli, project, "--", "cargo", "build")["status"] == "acquired"
    assert "dry run" in gate_status(cli, project, "--", "cargo", "build")["reason"]
    assert gate_status(cli, project, "--", "cargo", "t")["status"] == "acquired"  # alias of test
    assert gate_status(cli, project, "--", "cargo", "metadata")["status"] == "not-needed"
    assert gate_status(cli, project, "--", "sh", "-c", "true")["status"] == "not-needed"
    assert gate_status(cli, project, "--set", "gate=off", "--", "cargo", "build")["status"] == "disabled"
    assert gate_status(cli, project, "--", "cargo", "build", env={"BUILDPOLICY_GATE": "off"})["status"] == "disabled"
    explain = cli("explain", "gate", "--format", "json", "--", "cargo", "build", cwd=project, check=True)
    assert json.loads(explain.stdout)["decisions"]["gate"]["status"] == "not-needed"  # only exec takes it


def test_exec_holds_the_gate_while_the_command_runs_and_never_hands_it_the_lock(cli, project, fake, lock, base_env):
    proc = cli("exec", "--", "cargo", "build", cwd=project, env=fake.env)
    assert proc.returncode == 0, proc.stderr
    [seen] = fake.reports()
    assert seen["locked"] is True  # held by exec while cargo runs
    assert seen["marker"] == f"{lock}:{seen['ppid']}"  # names the exec that holds it
    assert str(lock) not in seen["fds"]  # close-on-exec: a daemon cargo starts cannot keep the gate shut
    assert not is_locked(lock)  # released afterwards
    [entry] = log_entries(base_env)
    assert entry["decisions"]["gate"] == "acquired" and entry["gate_wait_ms"] >= 0
    assert "waiting for the build gate" not in proc.stderr  # a free gate is taken without a wait


def test_a_held_gate_makes_exec_wait_with_notes_and_decide_jobs_after(cli, project, fake, lock, base_env):
    (project / "stamp.py").write_text(STAMP_PLUGIN)
    (project / "buildpolicy.toml").write_text('policies = ["policies"]\nplugin_paths = ["stamp.py"]\n')
    cli("allow", cwd=project, check=True)  # a team plugin is project code: trust it first
    holder = GateLock(lock)
    holder.acquire(lambda message: None, 30.0, argv=["cargo", "build"], cwd="/elsewhere")
    env = dict(base_env, **fake.env)
    waiter = subprocess.Popen(
        [sys.executable, "-m", "buildpolicy", "exec", "--set", "gate_note_interval=0.2", "--", "cargo", "build"],
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    # Released once the waiter has said three times that it is still waiting (however long
    # a loaded machine takes to get there): order, not a timed sleep.
    lines: list[str] = []
    noted = threading.Event()

    def read_notes():
        for line in waiter.stderr:
            lines.append(line)
            if sum("still waiting for the build gate" in seen for seen in lines) >= 3:
                noted.set()
        noted.set()  # the waiter ended (a failure the asserts below report)

    reader = threading.Thread(target=read_notes, daemon=True)
    reader.start()
    try:
        assert noted.wait(120), "".join(lines)
        assert waiter.poll() is None, "".join(lines)  # still waiting
        assert fake.reports() == []  # cargo has not started
    finally:
        released_at = time.time()
        holder.release()
    waiter.wait(timeout=120)
    reader.join(timeout=60)
    err = "".join(lines)
    assert waiter.returncode == 0, err
    assert f"waiting for the build gate {lock} (held by pid {os.getpid()}: cargo build in /elsewhere" in err
    assert err.count("still waiting for the build gate") >= 3  # every 0.2 s here, every 30 s by default
    [seen] = fake.reports()
    assert float(seen["decided_at"]) >= released_at  # the environment was decided after the wait
    [entry] = log_entries(base_env)
    # The recorded wait covers at least what the last note said it had waited (one clock).
    last_note = [line for line in lines if "still waiting for the build gate after " in line][-1]
    noted_seconds = float(last_note.split("still waiting for the build gate after ", 1)[1].split("s", 1)[0])
    assert entry["gate_wait_ms"] >= noted_seconds * 1000 - 50  # the note rounds to 0.1 s
    assert entry["decisions"]["gate"] == "acquired"
    assert entry["decisions"]["stamp"] == "stamped"


def test_nested_exec_inherits_the_gate_instead_of_deadlocking(cli, project, fake, lock, base_env):
    env = dict(fake.env, FAKE_NESTED="1")
    proc = subprocess.run([sys.executable, "-m", "buildpolicy", "exec", "--", "cargo", "build"], cwd=project,
                          env=dict(base_env, **env), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    outer, inner = fake.reports()
    assert outer["argv"] == ["build"] and inner["argv"] == ["check"]
    assert inner["marker"] == outer["marker"]  # the nested exec passed the outer marker on
    entries = log_entries(base_env)
    assert [e["action"] for e in entries] == ["check", "build"]  # inner finishes first
    assert entries[0]["decisions"]["gate"] == "inherited" and entries[1]["decisions"]["gate"] == "acquired"


def test_markers_that_do_not_prove_a_holding_ancestor_are_ignored(cli, project, fake, lock, tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    for marker in (f"{lock}:{dead.pid}",  # dead process
                   f"{lock}:{os.getpid()}",  # an ancestor, but the lock is free
                   f"{tmp_path / 'other.lock'}:{os.getpid()}",  # another lock file
                   "garbage"):
        assert gate_status(cli, project, "--", "cargo", "build", env={GATE_VAR: marker})["status"] == "acquired", marker
    # This test process as the enclosing exec: an ancestor of the CLI, holding the lock.
    holder = GateLock(lock)
    holder.acquire(lambda message: None, 30.0)
    try:
        decision = gate_status(cli, project, "--", "cargo", "build", env={GATE_VAR: f"{lock}:{os.getpid()}"})
        assert decision["status"] == "inherited" and str(os.getpid()) in decision["reason"]
    finally:
        holder.release()


def test_gate_lock_knob_moves_the_lock(cli, project, fake, tmp_path):
    shared = tmp_path / "shared" / "build.lock"
    proc = cli("exec", "--set", f"gate_lock={shared}", "--", "cargo", "build", cwd=project, env=dict(fake.env, FAKE_LOCK=str(shared)))
    assert proc.returncode == 0, proc.stderr
    [seen] = fake.reports()
    assert seen["locked"] is True and seen["marker"].startswith(f"{shared}:")


def test_an_unusable_gate_warns_and_builds_anyway(cli, project, fake, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    proc = cli("exec", "--set", f"gate_lock={blocker / 'gate.lock'}", "--", "cargo", "build", cwd=project,
               env=dict(fake.env, FAKE_EXIT="5"))
    assert proc.returncode == 5
    assert "running without it" in proc.stderr
