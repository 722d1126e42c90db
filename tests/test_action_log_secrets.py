"""The action log is private and keeps no secrets (issue 10, item 8).

``exec`` records every run's argv in ``actions.jsonl``; a token passed on the
command line (``--config registries.x.token=…``, ``--token``, ``cargo login``)
must not end up there, nor in the gate's holder file that other users of a
shared gate can read, and the log is 0600 like the replay records.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.statefiles import bp, fake_tools, make_project

SECRET = "s3cr3t-t0k3n-do-not-log"
REDACTED = "<redacted>"


@pytest.fixture
def env(tmp_path, base_env, home) -> dict[str, str]:
    env = fake_tools(tmp_path, base_env)
    env["FAKE_HOLDER"] = str(home / "state" / "buildpolicy" / "gate.lock.holder")
    env["FAKE_HOLDER_COPY"] = str(tmp_path / "holder-seen-by-others")
    return env


@pytest.fixture
def project(tmp_path) -> Path:
    return make_project(tmp_path / "proj")


RUNS = [
    ("cargo", "build", "--config", f'registries.x.token="{SECRET}"'),
    ("cargo", "build", f"--config=registries.x.token='{SECRET}'"),
    ("cargo", "build", "--config", f'registries.x = {{ token = "{SECRET}" }}'),
    ("cargo", "publish", "--token", SECRET),
    ("cargo", "publish", f"--token={SECRET}"),
    ("cargo", "login", SECRET),
    ("cargo", "+stable", "login", SECRET),
    ("env", f"CARGO_REGISTRY_TOKEN={SECRET}", "true"),
    ("true", "fetch", f"https://builder:{SECRET}@git.example.com/repo.git"),
]


def test_the_action_log_is_0600_and_holds_no_token(env, project, home, tmp_path):
    log = home / "state" / "buildpolicy" / "actions.jsonl"
    for argv in RUNS:
        proc = bp(env, project, "exec", "--facts", "facts.json", "--", *argv)
        assert proc.returncode == 0, (argv, proc.stderr)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    text = log.read_text()
    assert SECRET not in text
    logged = [json.loads(line)["argv"] for line in text.splitlines()]
    assert len(logged) == len(RUNS)
    assert logged[0] == ["cargo", "build", "--config", f"registries.x.token={REDACTED}"]
    assert logged[3] == ["cargo", "publish", "--token", REDACTED]
    assert logged[5] == ["cargo", "login", REDACTED]
    assert logged[8] == ["true", "fetch", f"https://builder:{REDACTED}@git.example.com/repo.git"]
    # What the gate's holder file showed while the builds ran (readable by a shared gate's users).
    seen = Path(env["FAKE_HOLDER_COPY"]).read_text()
    assert "registries.x" in seen and SECRET not in seen


def test_an_older_world_readable_log_is_made_private_and_kept(env, project, home):
    log = home / "state" / "buildpolicy" / "actions.jsonl"
    log.parent.mkdir(parents=True)
    old = {"v": 1, "started_at": "2026-01-01T00:00:00.000Z", "duration_ms": 10.0, "exit_code": 0,
           "action": "build", "profile": "dev", "decisions": {}, "argv": ["cargo", "build"]}
    log.write_text(json.dumps(old) + "\n")
    log.chmod(0o644)
    assert bp(env, project, "exec", "--facts", "facts.json", "--", "cargo", "check").returncode == 0
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    summary = json.loads(bp(env, project, "log", "--format", "json").stdout)
    assert (summary["runs"], summary["skipped_lines"]) == (2, 0)


def test_redaction_keeps_everything_that_is_not_a_secret():
    from buildpolicy.run.actionlog import redact_argv

    argv = ["cargo", "build", "--profile", "selfdev", "--features", "auth-backend", "--config", "net.retry=3",
            "-j", "4", "--", "test_tokenizer"]
    assert redact_argv(argv) == argv
    assert redact_argv(["cargo", "build", "--token"]) == ["cargo", "build", "--token"]  # nothing to hide
    assert redact_argv(["echo", "login", "x"]) == ["echo", "login", "x"]  # not cargo's login
