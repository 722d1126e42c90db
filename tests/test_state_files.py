"""Cache and state files never hang, crash or steer a command (issue 10, items 6 and 11).

Every cache and state file (compiled policies, entry points, probe results, the
linker smoke test, replay records, trust records, the remote down cache, the
action log, the gate lock) is replaced by a FIFO nobody writes to, a symlink to
/dev/zero or JSON nested 100,000 deep, and the real CLI must answer as it did
with the files intact, then rebuild them. Files planted by another user (a
pickle is code, a replay record is shell input) are never loaded.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from buildpolicy import filestate
from buildpolicy.replay import store as replay_store
from tests.sshd import closed_port, require, write_ssh_config
from tests.statefiles import bp, damage, is_regular, own_files
from tests.statefiles import env, project  # noqa: F401 - fixtures

NOBODY = 65534
KINDS = ["fifo", "devzero", "deep"]
ENV_ARGS = ("env", "--", "cargo", "build")


def cache(home: Path) -> Path:
    return home / "cache" / "buildpolicy"


def state(home: Path) -> Path:
    return home / "state" / "buildpolicy"


def populate(env, project) -> str:
    """Run what keeps state (env twice, exec with the gate, set); return the clean `env` output."""
    first = bp(env, project, *ENV_ARGS)
    assert first.returncode == 0, first.stderr
    second = bp(env, project, *ENV_ARGS)
    assert second.stdout == first.stdout
    built = bp(env, project, "exec", "--facts", "facts.json", "--", "cargo", "build")
    assert built.returncode == 0, built.stderr
    edited = bp(env, project, "set", "-q", "jobs", "4", "--layer", "user")
    assert edited.returncode == 0, edited.stderr
    bp(env, project, "unset", "-q", "jobs", "--layer", "user")
    return first.stdout


@pytest.mark.parametrize("kind", KINDS)
def test_every_damaged_cache_and_state_file_is_ignored_and_rebuilt(kind, env, project, home, tmp_path):
    clean = populate(env, project)
    files = own_files(home)
    names = {p.relative_to(home).as_posix() for p in files}
    expected = {"cache/buildpolicy/entry-points.json", "cache/buildpolicy/probes/probes.json",
                "state/buildpolicy/actions.jsonl", "state/buildpolicy/gate.lock"}
    assert expected <= names, names
    assert any(n.startswith("cache/buildpolicy/compiled/") for n in names)
    assert any(n.startswith("cache/buildpolicy/replay/") for n in names)
    for path in files:
        damage(path, kind)

    for _ in range(2):  # the first run rebuilds; the second reads what it rebuilt
        proc = bp(env, project, *ENV_ARGS)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stdout == clean
    for name in ("entry-points.json", "probes/probes.json"):
        assert is_regular(cache(home) / name), name
    assert all(is_regular(p) for p in (cache(home) / "compiled").iterdir())
    assert any(is_regular(p) for p in (cache(home) / "replay").iterdir())

    log = bp(env, project, "log")
    assert log.returncode == 0, log.stderr
    assert "Traceback" not in log.stderr
    built = bp(env, project, "exec", "--facts", "facts.json", "--", "cargo", "build")
    assert built.returncode == 0, built.stderr
    assert Path(env["FAKE_CARGO_LOG"]).read_text().splitlines()[-1] == "build"
    assert is_regular(state(home) / "actions.jsonl")  # replaced by a new log
    log = bp(env, project, "log", "--format", "json")
    assert log.returncode == 0, log.stderr
    assert sum(group["count"] for group in json.loads(log.stdout)["groups"]) >= 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_trust_record_means_not_allowed_never_a_hang(kind, env, project, home):
    (project / "policies" / "tool.toml").write_text('[[rule]]\nid = "tool"\nenv = { MY_TOOL_HOME = "/opt/tool" }\n')
    refused = bp(env, project, *ENV_ARGS)
    assert refused.returncode == 2 and "allow" in refused.stderr
    assert bp(env, project, "allow").returncode == 0
    allowed = bp(env, project, *ENV_ARGS)
    assert allowed.returncode == 0 and "MY_TOOL_HOME='/opt/tool'" in allowed.stdout
    (record,) = (state(home) / "trust").iterdir()
    damage(record, kind)

    proc = bp(env, project, *ENV_ARGS)
    assert proc.returncode == 2, proc.stderr
    assert "allow" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert bp(env, project, "allow").returncode == 0
    assert is_regular(record)
    assert bp(env, project, *ENV_ARGS).stdout == allowed.stdout


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_remote_down_cache_is_ignored_and_rebuilt(kind, env, project, home, tmp_path):
    require("ssh")
    config = write_ssh_config(tmp_path / "ssh_config", {"refused": closed_port()})
    sets = ("--set", "remote=on", "--set", f"remote_ssh_config={config}", "--set", "remote_hosts=refused")
    args = ("explain", "--format", "json", "--facts", "facts.json", *sets, "--", "cargo", "build")
    first = bp(env, project, *args)
    assert json.loads(first.stdout)["decisions"]["remote"]["status"] == "local:hosts-down"
    down = state(home) / "remote-down.json"
    assert len(json.loads(down.read_text())["hosts"]) == 1
    damage(down, kind)

    again = bp(env, project, *args)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["decisions"]["remote"]["status"] == "local:hosts-down"
    assert is_regular(down) and len(json.loads(down.read_text())["hosts"]) == 1


# ------------------------------------------------------------ files another user could write


class Planted:
    """Unpickling this creates ``marker``: what a planted pickle could run instead."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _as_an_attacker_would_write(data: bytes) -> bytes:
    """The bytes of a cache file as buildpolicy writes it: the seal is no secret, an
    attacker seals a planted pickle too (only the owner and mode checks stop it)."""
    return filestate.seal(data)


def _hand_over(top: Path, uid: int = NOBODY) -> None:
    """Make ``top`` and everything below it another user's, as if they had created it."""
    for path in [top, *top.rglob("*")]:
        os.lchown(path, uid, uid)


@pytest.fixture
def shared(tmp_path) -> Path:
    """A world-writable sticky directory, like /tmp (the tests then play another user: root only)."""
    if os.geteuid() != 0:
        pytest.skip("giving files to another user (chown) needs root")
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(0o1777)
    return directory


@pytest.mark.parametrize("how", ["dir-of-another-user", "world-writable-dir", "file-of-another-user"])
def test_a_planted_compiled_policy_pickle_is_never_unpickled(how, env, project, shared, tmp_path):
    cache_home = shared / "cache"
    cache_home.mkdir()
    # No replay: the run must come to loading the compiled policies.
    env = dict(env, XDG_CACHE_HOME=str(cache_home), BUILDPOLICY_REPLAY="off")
    clean = bp(env, project, *ENV_ARGS)
    assert clean.returncode == 0, clean.stderr
    (pickled,) = (cache_home / "buildpolicy" / "compiled").iterdir()  # its name is predictable
    marker = tmp_path / "planted-code-ran"
    pickled.write_bytes(_as_an_attacker_would_write(pickle.dumps(Planted(marker))))
    if how == "dir-of-another-user":
        _hand_over(cache_home)
    elif how == "world-writable-dir":
        cache_home.chmod(0o777)
        _hand_over(pickled)
    else:
        _hand_over(pickled)
    before = sorted(cache_home.rglob("*"))

    proc = bp(env, project, *ENV_ARGS)
    assert not marker.exists(), "the planted pickle was unpickled"
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == clean.stdout
    if how != "file-of-another-user":
        # The directory is refused as a whole, once, and nothing is written below it.
        assert proc.stderr.count("buildpolicy: warning:") == 1
        assert str(cache_home) in proc.stderr
        assert sorted(cache_home.rglob("*")) == before


def test_a_planted_replay_record_never_reaches_the_shell(env, project, shared, tmp_path):
    cache_home = shared / "cache"
    cache_home.mkdir()
    env = dict(env, XDG_CACHE_HOME=str(cache_home))
    args = ENV_ARGS
    clean = bp(env, project, *args)
    # The record of this very invocation, rewritten as an attacker would (its key is
    # computable from what they know: the arguments, the directory, the environment).
    key = replay_store.invocation_key(list(args), str(project), env)
    record = replay_store.load(key, env)
    assert record is not None
    record["stdout"] = b"export PLANTED='touch /tmp/owned'\n"  # what the shell would eval
    replay_store.save(list(args), str(project), env, record)
    # Another user's directory: they could have put anything below it. (Its files keep
    # their owner and times, so the record still matches every file it names.)
    os.chown(cache_home, NOBODY, NOBODY)

    proc = bp(env, project, *args)
    assert proc.returncode == 0, proc.stderr
    assert "PLANTED" not in proc.stdout
    assert proc.stdout == clean.stdout
    assert str(cache_home) in proc.stderr and "belongs to" in proc.stderr


def test_a_state_dir_another_user_can_write_is_neither_trusted_nor_written(env, project, shared):
    """A trust record planted there would allow anything; an action log written there leaks argv."""
    state_home = shared / "state"
    (project / "policies" / "tool.toml").write_text('[[rule]]\nid = "tool"\nenv = { MY_TOOL_HOME = "/opt/tool" }\n')
    mine = dict(env, XDG_STATE_HOME=str(state_home))
    state_home.mkdir()
    assert bp(mine, project, "allow").returncode == 0  # a record as the attacker would plant it
    assert bp(mine, project, *ENV_ARGS).returncode == 0
    _hand_over(state_home)
    before = sorted(state_home.rglob("*"))

    proc = bp(mine, project, *ENV_ARGS)
    assert proc.returncode == 2 and "allow" in proc.stderr and str(state_home) in proc.stderr
    (project / "policies" / "tool.toml").unlink()
    built = bp(mine, project, "exec", "--facts", "facts.json", "--", "cargo", "build")
    assert built.returncode == 0, built.stderr
    assert sorted(state_home.rglob("*")) == before  # no action log, no lock, no flags written there


@pytest.mark.parametrize("text", ["{not json", '"abc', '{"a": }', "[1,", "nul"])
def test_json_value_refuses_malformed_text_in_a_process_that_never_imported_json(text):
    # The C scanner looks json.decoder's error class up only among imported modules: a
    # prompt imports no json, so a corrupt state file must still read as ValueError.
    import subprocess
    import sys

    code = ("import sys\nfrom buildpolicy.filestate import json_value\nassert 'json' not in sys.modules\n"
            f"try:\n    json_value({text!r})\nexcept ValueError:\n    print('refused')\n")
    repo = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": repo})
    assert proc.stdout.strip() == "refused", proc.stderr
