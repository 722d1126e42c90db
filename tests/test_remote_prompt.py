"""`env` at a prompt never waits on a build host (DESIGN §13, issue 12 item 7c).

`exec`, `explain` and `doctor` probe hosts and record every result; `env`
decides from those records and, when they are old or missing, starts one
detached background refresh. The hosts here are loopback listeners that
complete the TCP handshake (the kernel does it) but never accept nor speak:
a host that takes TCP but not ssh, the slowest kind to probe. Counting the
connections that reached the listener shows whether `env` tried to connect;
no assertion depends on how long anything takes.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from buildpolicy.engine.pipeline import Request, evaluate
from buildpolicy.run.remote import records as remote_records
from buildpolicy.run.remote import refresh as remote_refresh
from tests.sshd import LOOPBACK, closed_port, require, silent_port, write_ssh_config  # noqa: F401 - fixture

WAIT = 60.0  # generous deadline for background work to show up; never a measured time


class Tarpit:
    """A loopback port that accepts TCP (in the kernel's backlog) and then never says anything."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []

    def connections(self) -> int:
        """How many connections ever reached the port (taking the waiting ones off the backlog)."""
        while True:
            try:
                conn, _ = self.listener.accept()
            except BlockingIOError:
                return len(self.accepted)
            self.accepted.append(conn)

    def close(self) -> None:
        """Hang up on everyone: a waiting ssh sees the connection closed."""
        for conn in self.accepted:
            conn.close()
        self.listener.close()


@pytest.fixture
def tarpit():
    pit = Tarpit()
    yield pit
    pit.close()


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "Cargo.toml").write_text('[package]\nname = "demo"\nversion = "0.1.0"\nedition = "2021"\n')
    (root / "src" / "main.rs").write_text("fn main() {}\n")
    return root


def decide(project, base_env, config, *hosts, command="env", **knobs):
    sets = ["remote=on", f"remote_ssh_config={config}", "remote_hosts=" + ",".join(hosts)]
    sets += [f"{name}={value}" for name, value in knobs.items()]
    result = evaluate(Request(cwd=project, environ=dict(base_env), command=command, cli_sets=tuple(sets)))
    return result.decisions["remote"]


def state_dir(base_env) -> Path:
    return Path(base_env["XDG_STATE_HOME"]) / "buildpolicy"


def wait_for(predicate, what: str):
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def recorded(base_env, config, alias):
    return remote_records.ProbeRecords(state_dir(base_env)).load().get(remote_records.record_key(str(config), alias))


def test_env_answers_from_recorded_results_without_connecting(project, base_env, tmp_path, tarpit):
    require("ssh")
    config = write_ssh_config(tmp_path / "ssh_config", {"tarpit": tarpit.port, "refused": closed_port()})
    # explain probes (as exec does) and records: the tarpit takes the TCP probe and the ssh connection.
    probed = decide(project, base_env, config, "tarpit", "refused", command="explain", remote_connect_timeout="1")
    assert probed.status == "local:hosts-down"
    reached = tarpit.connections()
    assert reached >= 1  # the counter sees a probe
    assert recorded(base_env, config, "tarpit")["ok"] is False
    for _ in range(3):
        at_prompt = decide(project, base_env, config, "tarpit", "refused", remote_connect_timeout="1")
        assert at_prompt.status == "local:hosts-down"
        assert "tarpit: down when probed" in at_prompt.reason and "refused: down when probed" in at_prompt.reason
        assert "decided from recorded probes" in at_prompt.reason
        assert "background" not in at_prompt.reason  # fresh results: nothing to refresh
    assert tarpit.connections() == reached  # env never connected
    assert not remote_refresh.running(state_dir(base_env))


def test_env_without_results_returns_at_once_and_one_background_refresh_probes(project, base_env, tmp_path, tarpit):
    require("ssh")
    config = write_ssh_config(tmp_path / "ssh_config", {"tarpit": tarpit.port})
    knobs = {"remote_connect_timeout": "60"}  # the refresh's ssh waits for the banner until the tarpit hangs up
    first = decide(project, base_env, config, "tarpit", **knobs)
    assert first.status == "local:not-probed"
    assert "tarpit: no probe result" in first.reason and "refreshing in the background" in first.reason
    # env has returned; the refresh it started is still connected to a host that never answers.
    wait_for(lambda: tarpit.connections() >= 2, "the background refresh's TCP probe and ssh connection")
    assert remote_refresh.running(state_dir(base_env))
    assert recorded(base_env, config, "tarpit") is None
    # Another prompt meanwhile neither probes nor starts a second refresh.
    second = decide(project, base_env, config, "tarpit", **knobs)
    assert second.status == "local:not-probed" and "a background refresh is running" in second.reason
    assert tarpit.connections() == 2
    tarpit.close()  # the host hangs up: the refresh records the failure
    wait_for(lambda: recorded(base_env, config, "tarpit") is not None, "the refresh's record")
    assert recorded(base_env, config, "tarpit")["ok"] is False
    wait_for(lambda: not remote_refresh.running(state_dir(base_env)), "the refresh to exit")
    third = decide(project, base_env, config, "tarpit", **knobs)
    assert third.status == "local:hosts-down" and "tarpit: down when probed" in third.reason
    assert "background" not in third.reason


def test_a_silent_host_costs_env_nothing(cli, project, base_env, tmp_path, silent_port):
    # A host whose SYNs are dropped, recorded down by exec --dry-run: env prints the same
    # environment as with remote off, and the record is left as it was.
    require("ssh")
    config = write_ssh_config(tmp_path / "ssh_config", {"silent": silent_port})
    sets = ["--set", "remote=on", "--set", f"remote_ssh_config={config}", "--set", "remote_hosts=silent",
            "--set", "remote_tcp_timeout=0.2"]
    dry = cli("exec", "--dry-run", *sets, "--", "cargo", "build", cwd=project, check=True)
    assert json.loads(dry.stdout)["decisions"]["remote"]["status"] == "local:hosts-down"
    record = recorded(base_env, config, "silent")
    assert record["ok"] is False and "no answer" in record["reason"]
    down = (state_dir(base_env) / "remote-down.json").read_bytes()
    on = json.loads(cli("env", "--format", "json", *sets, cwd=project, check=True).stdout)
    off = json.loads(cli("env", "--format", "json", cwd=project, check=True).stdout)
    assert on["set"] == off["set"] and "BUILDPOLICY_REMOTE_HOST" not in on["set"]
    assert recorded(base_env, config, "silent") == record  # not probed again
    assert (state_dir(base_env) / "remote-down.json").read_bytes() == down


def test_records_decide_in_configured_order_and_age(tmp_path):
    records = remote_records.ProbeRecords(tmp_path)
    now = 1_000_000.0
    records.update("cfg", [("a", False, "refused"), ("b", True, "ssh BatchMode login ok")], now)
    fresh = remote_records.read(tmp_path, "cfg", ["a", "b", "c"], now + 5)
    assert fresh.host == "b" and not fresh.refresh and fresh.unknown == ()
    assert fresh.lines[0].startswith("a: down when probed 5s ago (refused)")
    # Past REFRESH_AFTER the answer stands, and a refresh is asked for.
    aging = remote_records.read(tmp_path, "cfg", ["a", "b"], now + remote_records.REFRESH_AFTER + 1)
    assert aging.host == "b" and aging.refresh
    # Past USABLE_FOR nothing is known.
    old = remote_records.read(tmp_path, "cfg", ["a", "b"], now + remote_records.USABLE_FOR + 1)
    assert old.host is None and old.unknown == ("a", "b") and old.refresh
    # Another config's host of the same name is another host.
    assert remote_records.read(tmp_path, "other", ["b"], now).unknown == ("b",)
    # An unknown host before a recorded-up one: the up one answers, the unknown one is refreshed.
    first_unknown = remote_records.read(tmp_path, "cfg", ["new", "b"], now)
    assert first_unknown.host == "b" and first_unknown.unknown == ("new",) and first_unknown.refresh


@pytest.mark.parametrize("junk", [b"{not json", b"[]", b'{"hosts": []}', b'{"hosts": {"x": {"ok": "yes", "at": 1}}}', b"\xff\xfe"])
def test_corrupt_records_are_ignored_and_rebuilt(tmp_path, junk):
    records = remote_records.ProbeRecords(tmp_path)
    records.path.write_bytes(junk)
    assert records.load() == {}
    assert records.update(None, [("h", True, "ok")], time.time())
    assert list(records.load()) == [remote_records.record_key(None, "h")]


def test_env_with_a_silent_host_is_replayed_like_env_without_remote(project, base_env, tmp_path, silent_port):
    # The prompt's fast path: with results recorded, env with remote on is a warm replay,
    # exactly as with remote off; new results or their age make it decide again.
    from tests.test_replay import run_env

    require("ssh")
    config = write_ssh_config(tmp_path / "ssh_config", {"silent": silent_port})
    env = {"BUILDPOLICY_REMOTE": "on", "BUILDPOLICY_REMOTE_HOSTS": "silent", "BUILDPOLICY_REMOTE_SSH_CONFIG": str(config),
           "BUILDPOLICY_REMOTE_TCP_TIMEOUT": "0.2"}
    off = [run_env(base_env, project)[1] for _ in range(2)]
    assert off == [False, True]
    decide(project, {**base_env, **env}, config, "silent", command="explain", remote_tcp_timeout="0.2")  # records down
    runs = [run_env(base_env, project, env=env) for _ in range(3)]
    assert [replayed for _proc, replayed in runs] == [False, True, True]
    assert runs[0][0].stdout == runs[2][0].stdout
    # A new probe result (explain rewrites the records) invalidates the replay.
    decide(project, {**base_env, **env}, config, "silent", command="explain", remote_tcp_timeout="0.2")
    assert run_env(base_env, project, env=env)[1] is False
    assert run_env(base_env, project, env=env)[1] is True
    # A result past REFRESH_AFTER: not replayed; that env starts a refresh and is not recorded.
    store = remote_records.ProbeRecords(state_dir(base_env))
    store.update(str(config), [("silent", False, "aged")], time.time() - remote_records.REFRESH_AFTER - 5)
    assert run_env(base_env, project, env=env)[1] is False
    wait_for(lambda: recorded(base_env, config, "silent")["reason"] != "aged", "the background refresh's result")
    wait_for(lambda: not remote_refresh.running(state_dir(base_env)), "the refresh to exit")
    assert [run_env(base_env, project, env=env)[1] for _ in range(2)] == [False, True]


def test_a_replayed_env_expires_when_its_results_need_a_refresh(project, base_env, tmp_path, silent_port):
    from tests.test_replay import run_env

    require("ssh")
    config = write_ssh_config(tmp_path / "ssh_config", {"silent": silent_port})
    env = {"BUILDPOLICY_REMOTE": "on", "BUILDPOLICY_REMOTE_HOSTS": "silent", "BUILDPOLICY_REMOTE_SSH_CONFIG": str(config)}
    store = remote_records.ProbeRecords(state_dir(base_env))
    # Due for a refresh soon, but only after two `env` runs: on a machine too loaded to run
    # them in time, again with a longer wait (what is asserted is order, not speed).
    for margin in (10, 40, 160):
        recorded_at = time.time() - remote_records.REFRESH_AFTER + margin
        store.update(str(config), [("silent", False, "recorded")], recorded_at)
        replayed = [run_env(base_env, project, env=env)[1] for _ in range(2)]
        if time.time() < recorded_at + remote_records.REFRESH_AFTER:
            break
    else:
        pytest.fail("two `env` runs never finished within 160 s")
    assert replayed == [False, True]
    assert recorded(base_env, config, "silent")["reason"] == "recorded"  # nothing refreshed yet
    while time.time() < recorded_at + remote_records.REFRESH_AFTER + 0.1:
        time.sleep(0.2)  # let the wall clock pass the refresh time
    assert run_env(base_env, project, env=env)[1] is False  # expired: decided again, and a refresh starts
    wait_for(lambda: recorded(base_env, config, "silent")["reason"] != "recorded", "the background refresh's result")
