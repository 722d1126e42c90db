"""The action log: what ``exec`` records, and ``buildpolicy log``'s summary of it."""

from __future__ import annotations

import json
import multiprocessing
import signal
from pathlib import Path

import pytest

from buildpolicy.run import actionlog

FIELDS = {"started_at", "duration_ms", "gate_wait_ms", "exit_code", "action", "profile", "execution", "target_dir",
          "rustflags", "decisions", "argv"}


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    (root / "policies").mkdir(parents=True)
    (root / "Cargo.toml").write_text('[package]\nname = "demo"\nversion = "0.1.0"\n\n[profile.selfdev]\ninherits = "dev"\n')
    (root / "buildpolicy.toml").write_text('policies = ["policies"]\n')
    (root / "policies" / "flags.toml").write_text('[[rule]]\nid = "flags"\nrustflags = ["-C", "debuginfo=1"]\n')
    return root


@pytest.fixture
def fake_cargo(tmp_path, base_env) -> dict[str, str]:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    (bin_dir / "cargo").write_text('#!/bin/sh\nexit "${FAKE_EXIT:-0}"\n')
    (bin_dir / "cargo").chmod(0o755)
    return {"PATH": f"{bin_dir}:{base_env['PATH']}"}


def state(base_env) -> Path:
    return Path(base_env["XDG_STATE_HOME"]) / "buildpolicy"


def entries(base_env) -> list[dict]:
    return [json.loads(line) for line in actionlog.log_path(state(base_env)).read_text().splitlines()]


def test_exec_logs_one_line_per_run(cli, project, fake_cargo, base_env):
    assert cli("exec", "--", "cargo", "build", "--profile", "selfdev", cwd=project, env=fake_cargo).returncode == 0
    assert cli("exec", "--", "cargo", "test", cwd=project, env=dict(fake_cargo, FAKE_EXIT="101")).returncode == 101
    assert cli("exec", "--", "sh", "-c", "kill -TERM $$", cwd=project).returncode == 128 + signal.SIGTERM
    assert cli("exec", "--dry-run", "--", "cargo", "build", cwd=project).returncode == 0  # nothing ran: not logged
    build, test, shell = entries(base_env)
    assert FIELDS <= set(build)
    assert build["action"] == "build" and build["profile"] == "selfdev" and build["exit_code"] == 0
    assert build["argv"] == ["cargo", "build", "--profile", "selfdev"]
    assert build["execution"] == {"mode": "local"} and build["target_dir"] == str(project / "target")
    assert "-C debuginfo=1" in build["rustflags"] and build["rustflags_var"].endswith("RUSTFLAGS")
    assert build["decisions"]["remote"] == "disabled" and build["decisions"]["gate"] == "acquired"
    # The memory governor ran the (fake) build: jobs is its maximum, and its summary is logged.
    assert build["decisions"]["governor"].startswith("on:jobserver:max=")
    assert build["decisions"]["jobs"].startswith("governor-max:")
    assert build["governor"]["compilations"] == 0 and build["governor"]["preemptions"] == []
    assert shell["decisions"]["governor"] == "not-applicable:not-cargo" and "governor" not in shell
    assert build["duration_ms"] >= 0 and build["gate_wait_ms"] >= 0 and build["started_at"].endswith("Z")
    assert test["action"] == "test" and test["profile"] == "test" and test["exit_code"] == 101
    assert shell["action"] == "sh" and shell["exit_code"] == 128 + signal.SIGTERM and shell["target_dir"] is None
    # The local build's flags are recorded for doctor's flags-changed check, under the same target dir.
    from buildpolicy.run.fingerprints import last_build_flags

    assert "-C debuginfo=1" in " ".join(last_build_flags(state(base_env), "selfdev", project / "target").values())


def test_target_dir_is_resolved_like_cargo(cli, project, fake_cargo, base_env):
    (project / ".cargo").mkdir()
    (project / ".cargo" / "config.toml").write_text('[build]\ntarget-dir = "out"\n')
    (project / "member").mkdir()
    (project / "member" / "Cargo.toml").write_text('[package]\nname = "member"\nversion = "0.1.0"\n')
    (project / "Cargo.toml").write_text((project / "Cargo.toml").read_text() + '\n[workspace]\nmembers = ["member"]\n')
    assert cli("exec", "--", "cargo", "check", cwd=project / "member", env=fake_cargo).returncode == 0
    assert cli("exec", "--", "cargo", "check", "--target-dir", "elsewhere", cwd=project / "member", env=fake_cargo).returncode == 0
    (project / ".cargo" / "config.toml").unlink()
    assert cli("exec", "--", "cargo", "check", cwd=project / "member", env=fake_cargo).returncode == 0
    assert [e["target_dir"] for e in entries(base_env)] == [
        str(project / "out"), str(project / "member" / "elsewhere"), str(project / "target")]


def _entry(duration, code=0, profile="dev", action="build", jobs="adaptive:3 (cpus=8, mem_avail=6000MiB, budget=1792MiB/job)", **more):
    return {"started_at": f"2026-01-01T00:00:{int(duration) % 60:02d}.000Z", "duration_ms": duration, "gate_wait_ms": 0,
            "exit_code": code, "action": action, "profile": profile, "execution": {"mode": "local"},
            "decisions": {"jobs": jobs, "sccache": "enabled", **more}, "argv": ["cargo", action]}


def test_summary_groups_by_action_profile_and_decision_set():
    runs = [_entry(float(d), jobs=f"adaptive:3 (cpus=8, mem_avail={5000 + d}MiB, budget=1792MiB/job)") for d in range(1, 11)]
    runs[2]["exit_code"] = 101
    runs.append(_entry(500.0, jobs="override:2"))
    runs.append(_entry(700.0, action="test"))
    runs.append(_entry(900.0, profile="release"))
    groups = actionlog.summarize(runs)
    first = groups[0]
    assert (first.action, first.profile, first.count) == ("build", "dev", 10)  # memory details do not split a group
    assert dict(first.decisions) == {"jobs": "adaptive:3", "sccache": "enabled"}
    assert first.median_ms == 5.5 and first.p90_ms == 9.0 and first.failures == 1
    assert len(groups) == 4
    assert {(g.action, g.profile, dict(g.decisions)["jobs"]) for g in groups[1:]} == {
        ("build", "dev", "override:2"), ("test", "dev", "adaptive:3"), ("build", "release", "adaptive:3")}


def test_percentiles():
    assert actionlog.median([3.0]) == 3.0 and actionlog.median([1.0, 9.0, 2.0]) == 2.0
    assert actionlog.percentile([1.0], 0.9) == 1.0
    assert actionlog.percentile([float(v) for v in range(1, 21)], 0.9) == 18.0


def test_log_command_skips_corrupt_lines(cli, project, base_env):
    path = actionlog.log_path(state(base_env))
    path.parent.mkdir(parents=True)
    good = [_entry(100.0), _entry(300.0, code=1), _entry(50.0, profile="release")]
    junk = [b"{not json", b'{"duration_ms": "slow", "exit_code": 0}', b"null", b"[1, 2]", b"\xff\xfe\x00garbage",
            json.dumps(_entry(1.0))[:40].encode(), b'{"duration_ms": 1, "exit_code": true}', b'{"duration_ms": NaN, "exit_code": 0}']
    lines = [json.dumps(good[0]).encode(), *junk[:4], json.dumps(good[1]).encode(), *junk[4:], json.dumps(good[2]).encode()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    text = cli("log", cwd=project)
    assert text.returncode == 0 and f"{len(junk)} unreadable line(s)" in text.stderr
    assert "3 run(s)" in text.stdout and "200ms" in text.stdout  # median of 100 and 300
    report = json.loads(cli("log", "--format", "json", cwd=project, check=True).stdout)
    assert report["skipped_lines"] == len(junk) and report["runs"] == 3
    dev = next(g for g in report["groups"] if g["profile"] == "dev")
    assert dev["count"] == 2 and dev["failures"] == 1 and dev["median_ms"] == 200.0 and dev["p90_ms"] == 300.0
    filtered = json.loads(cli("log", "--format", "json", "--profile", "release", cwd=project, check=True).stdout)
    assert [g["profile"] for g in filtered["groups"]] == ["release"]
    assert cli("log", "--format", "yaml", cwd=project).returncode == 2


def test_an_unreadable_or_unwritable_log_is_never_fatal(cli, project, fake_cargo, base_env):
    path = actionlog.log_path(state(base_env))
    path.mkdir(parents=True)  # a directory where the file should be
    listed = cli("log", cwd=project)
    assert listed.returncode == 0 and "no runs logged" in listed.stdout
    ran = cli("exec", "--", "cargo", "build", cwd=project, env=dict(fake_cargo, FAKE_EXIT="3"))
    assert ran.returncode == 3 and "cannot write the action log" in ran.stderr
    assert cli("log", "--format", "json", cwd=project, check=True)


def test_an_empty_log(cli, project):
    assert "no runs logged" in cli("log", cwd=project, check=True).stdout


def _append_many(state_dir: str, worker: int, count: int) -> None:
    for index in range(count):
        actionlog.append(Path(state_dir), _entry(float(index), action=f"w{worker}", filler="x" * 3000))


def test_concurrent_execs_never_interleave_lines(tmp_path):
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_append_many, args=(str(tmp_path), w, 40)) for w in range(8)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    found, skipped = actionlog.read_entries(tmp_path)
    assert skipped == 0 and len(found) == 8 * 40


def test_a_full_log_is_rotated_and_both_generations_are_read(tmp_path, monkeypatch):
    monkeypatch.setattr(actionlog, "MAX_BYTES", 2000)
    for index in range(20):
        actionlog.append(tmp_path, _entry(float(index)))
    assert (tmp_path / "actions.jsonl.1").is_file()
    found, skipped = actionlog.read_entries(tmp_path)
    assert skipped == 0 and 0 < len(found) < 20
    assert [e["duration_ms"] for e in found] == sorted(e["duration_ms"] for e in found)  # oldest first
    assert found[-1]["duration_ms"] == 19.0


def test_an_entry_after_a_torn_line_is_kept(tmp_path):
    from buildpolicy.run import actionlog

    path = actionlog.log_path(tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'{"started_at": "2026-11-25T')  # a line cut short, no newline
    actionlog.append(tmp_path, {"argv": ["cargo", "build"], "exit_code": 0})
    lines = path.read_bytes().splitlines()
    assert lines[0] == b'{"started_at": "2026-11-25T'
    assert json.loads(lines[1])["argv"] == ["cargo", "build"]


def test_log_separates_the_gate_wait_and_names_success_and_repository(cli, project, fake_cargo, base_env):
    """Issue 14.6: ``success``, ``execution_duration_ms`` (the command alone) beside
    ``duration_ms`` (the whole exec, gate wait included) and ``repository``."""
    import subprocess
    import sys

    from buildpolicy.run.gate import GateLock

    subprocess.run(["git", "init", "-q", str(project)], check=True)
    subprocess.run(["git", "-C", str(project), "remote", "add", "origin", "https://ghp_secret123@example.com/team/app.git"],
                   check=True)
    holder = GateLock(state(base_env) / "gate.lock")
    holder.acquire(lambda message: None, 30.0)
    env = dict(base_env, **fake_cargo)
    waiter = subprocess.Popen([sys.executable, "-m", "buildpolicy", "exec", "--", "cargo", "build"], cwd=project / "policies",
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Released only once exec reports that it waits, and a while after: the wait is real.
        assert "waiting for the build gate" in waiter.stderr.readline()
        import time

        time.sleep(0.3)
    finally:
        holder.release()
    waiter.communicate(timeout=60)
    assert waiter.returncode == 0
    assert cli("exec", "--", "cargo", "test", cwd=project, env=dict(fake_cargo, FAKE_EXIT="3")).returncode == 3
    assert cli("exec", "--", "sh", "-c", "sleep 0.2", cwd="/").returncode == 0
    waited, failed, outside = entries(base_env)
    assert waited["success"] is True and failed["success"] is False and outside["success"] is True
    assert waited["gate_wait_ms"] >= 300
    # The command's own time excludes the wait; the whole exec includes both.
    assert waited["execution_duration_ms"] + waited["gate_wait_ms"] <= waited["duration_ms"] + 0.2
    assert outside["execution_duration_ms"] >= 200 and outside["duration_ms"] >= outside["execution_duration_ms"]
    # The workspace root, not the directory exec ran in; the token in the remote URL never reaches the log.
    assert waited["repository"] == {"root": str(project), "remote": "https://<redacted>@example.com/team/app.git"}
    assert "ghp_secret123" not in actionlog.log_path(state(base_env)).read_text()
    assert outside["repository"] == {"root": "/", "remote": None}
    # `buildpolicy log` summarizes the command's own time.
    [group] = [g for g in actionlog.summarize([waited]) if g.action == "build"]
    assert group.median_ms == waited["execution_duration_ms"]
