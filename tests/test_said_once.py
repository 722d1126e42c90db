"""Issue 13 item 10: a warning about a situation buildpolicy already handles (the caller's
RUSTFLAGS would shadow the target's flags, so the decided ones join RUSTFLAGS) is said once per change of situation by `env` and `exec`, and always by `explain` and
`doctor`. Real `python -m buildpolicy` runs, full evaluations and warm replays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import LOW_MEMORY_LAPTOP, write

SHADOW = "RUSTFLAGS is set by the caller and would shadow"
FULL = {"BUILDPOLICY_REPLAY": "off"}  # every run evaluates in full


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    write(root / "Cargo.toml", '[package]\nname = "demo"\nversion = "0.1.0"\n')
    write(root / "buildpolicy.toml", 'policies = ["p.toml"]\n')
    write(root / "p.toml", '[[rule]]\nid = "fp"\nrustflags = ["-C", "force-frame-pointers=yes"]\n')
    return root


@pytest.fixture
def facts(tmp_path) -> Path:
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(dict(LOW_MEMORY_LAPTOP, **{"memory.available": "20GiB"})))
    return path


def said(proc, text: str = SHADOW) -> int:
    assert proc.returncode == 0, proc.stderr
    return proc.stderr.count(text)


def test_env_says_a_handled_situation_once_per_change(cli, project, facts):
    env = {**FULL, "RUSTFLAGS": "-g"}
    first = cli("env", "--facts", str(facts), cwd=project, env=env)
    assert said(first) == 1 and "export RUSTFLAGS='-g -C force-frame-pointers=yes" in first.stdout
    # The same situation at the next prompts (full evaluations): nothing said, the same output.
    for _ in range(2):
        again = cli("env", "--facts", str(facts), cwd=project, env=env)
        assert said(again) == 0 and again.stdout == first.stdout
    # exec shares the memory: the build is not told again either.
    assert said(cli("exec", "--facts", str(facts), "--", "true", cwd=project, env=env)) == 0
    # explain and doctor always say it.
    explain = cli("explain", "--facts", str(facts), cwd=project, env=env)
    assert explain.returncode == 0 and explain.stdout.count(SHADOW) == 1  # in its Warnings section
    doctor = cli("doctor", "--facts", str(facts), cwd=project, env=env)
    assert doctor.returncode in (0, 1) and SHADOW in doctor.stderr
    # The situation goes away, then comes back: new again.
    assert said(cli("env", "--facts", str(facts), cwd=project, env=FULL)) == 0
    assert said(cli("env", "--facts", str(facts), cwd=project, env=env)) == 1
    # Another situation is new, and so is the first one's return after it.
    encoded = cli("env", "--facts", str(facts), cwd=project, env={**FULL, "CARGO_ENCODED_RUSTFLAGS": "-g"})
    assert said(encoded, "CARGO_ENCODED_RUSTFLAGS is set by the caller and would shadow") == 1
    assert said(cli("env", "--facts", str(facts), cwd=project, env=env)) == 1
    # -q says nothing and remembers nothing: the next run without it still says it.
    assert cli("env", "-q", "--facts", str(facts), cwd=project, env={**FULL, "CARGO_ENCODED_RUSTFLAGS": "-g"}).stderr == ""
    encoded = cli("env", "--facts", str(facts), cwd=project, env={**FULL, "CARGO_ENCODED_RUSTFLAGS": "-g"})
    assert said(encoded, "CARGO_ENCODED_RUSTFLAGS is set by the caller and would shadow") == 1


def test_another_project_is_another_situation(cli, project, facts, tmp_path):
    other = tmp_path / "other"
    write(other / "buildpolicy.toml", 'policies = ["p.toml"]\n')
    write(other / "p.toml", (project / "p.toml").read_text())
    env = {**FULL, "RUSTFLAGS": "-g"}
    assert said(cli("env", "--facts", str(facts), cwd=project, env=env)) == 1
    assert said(cli("env", "--facts", str(facts), cwd=other, env=env)) == 1
    assert said(cli("env", "--facts", str(facts), cwd=project, env=env)) == 0


def test_a_warm_replay_repeats_ordinary_warnings_only(cli, project, home):
    write(project / "p.toml", (project / "p.toml").read_text() + '\n[linker]\nskip_profiles = 5\n')  # an ordinary warning
    env = {"RUSTFLAGS": "-g"}
    first = cli("env", cwd=project, env=env)  # no --facts: a run with overridden facts is never replayed
    assert said(first) == 1 and said(first, "[linker] skip_profiles must be a list") == 1
    explain = cli("explain", "--format", "json", cwd=project, env=env, check=True)
    assert json.loads(explain.stdout)["replay"]["replayable"]
    # Without the memory a full run would say it again; the replay is the same situation and does not.
    (home / "state" / "buildpolicy" / "said.json").unlink()
    replayed = cli("env", cwd=project, env=env)
    assert replayed.stdout == first.stdout
    assert said(replayed) == 0 and said(replayed, "[linker] skip_profiles must be a list") == 1


def test_a_damaged_memory_means_saying_it_again(cli, project, facts, home):
    env = {**FULL, "RUSTFLAGS": "-g"}
    memory = home / "state" / "buildpolicy" / "said.json"
    for damage in (b"{not json", b'{"version": 1, "scopes": []}', b"[" * 100_000):
        memory.parent.mkdir(parents=True, exist_ok=True)
        memory.write_bytes(damage)
        assert said(cli("env", "--facts", str(facts), cwd=project, env=env)) == 1
        assert said(cli("env", "--facts", str(facts), cwd=project, env=env)) == 0
    # Entries of the wrong type in this project's list (a number, a table, a list): ignored.
    data = json.loads(memory.read_text())
    memory.write_text(json.dumps({**data, "scopes": {scope: [1, {}, [1], "x"] for scope in data["scopes"]}}))
    assert said(cli("env", "--facts", str(facts), cwd=project, env=env)) == 1
    assert said(cli("env", "--facts", str(facts), cwd=project, env=env)) == 0
    memory.unlink()
    memory.mkdir()  # not a file at all: said every time, never an error
    assert said(cli("env", "--facts", str(facts), cwd=project, env=env)) == 1
    assert said(cli("env", "--facts", str(facts), cwd=project, env=env)) == 1
