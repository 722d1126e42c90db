"""Remote builds end to end against a real sshd on 127.0.0.1 (tests/sshd.py).

A small crate without dependencies is built on the "remote" host (this
machine through sshd), its binary comes back and runs; statuses, fallbacks,
the environment and exit statuses are checked through the real CLI. Every
address is loopback; cargo runs with --offline.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from buildpolicy.run.remote import probe as remote_probe
from tests.sshd import closed_port, require, silent_port, sshd, write_ssh_config  # noqa: F401 - fixtures

NASTY = "it's \"q\" $(touch pwned) `id` \\ back\nslash"


@pytest.fixture
def hosts(sshd, tmp_path, silent_port) -> Path:
    require("rsync", "ssh")
    return write_ssh_config(
        tmp_path / "ssh_config",
        {"up": sshd.port, "up2": sshd.port, "refused": closed_port(), "silent": silent_port},
        server=sshd,
    )


@pytest.fixture
def crate(tmp_path) -> Path:
    root = tmp_path / "hello"
    (root / "src").mkdir(parents=True)
    (root / "policies").mkdir()
    (root / "Cargo.toml").write_text('[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n')
    (root / "src" / "main.rs").write_text(
        'fn main() {\n'
        '    println!("hello from {}", env!("CARGO_PKG_NAME"));\n'
        '    if let Ok(v) = std::env::var("CARGO_PROBE") { println!("probe={v}"); }\n'
        '    println!("leak={:?}", std::env::var("LEAK_ME").ok());\n'
        '    std::process::exit(std::env::args().nth(1).map_or(0, |a| a.parse().unwrap()));\n'
        '}\n'
    )
    (root / ".gitignore").write_text("/target\n*.log\n")
    (root / "buildpolicy.toml").write_text('policies = ["policies"]\n')
    return root


def sets(config: Path, remote_dir: Path, *hosts: str, **knobs) -> list[str]:
    items = ["remote=on", f"remote_ssh_config={config}", f"remote_dir={remote_dir}", "remote_hosts=" + ",".join(hosts)]
    items += [f"{name}={value}" for name, value in knobs.items()]
    return [arg for item in items for arg in ("--set", item)]


def status(cli, cwd, *args) -> dict:
    proc = cli("explain", "remote", "--format", "json", *args, cwd=cwd, check=True)
    return json.loads(proc.stdout)["decisions"]["remote"]


def test_a_reachable_host_is_chosen_and_exported_for_wrappers(cli, crate, hosts, tmp_path):
    args = sets(hosts, tmp_path / "trees", "up")
    decision = status(cli, crate, *args)
    assert decision["status"] == "remote:up" and decision["value"] == "up"
    assert "ssh BatchMode login ok" in decision["reason"]
    env = cli("env", "--format", "json", *args, cwd=crate, check=True)
    assert json.loads(env.stdout)["set"]["BUILDPOLICY_REMOTE_HOST"] == "up"
    # A plain command runs here, with the host in its environment for a wrapper.
    wrapped = cli("exec", *args, "--", "sh", "-c", 'printf %s "$BUILDPOLICY_REMOTE_HOST"', cwd=crate, check=True)
    assert wrapped.stdout == "up"


def test_first_reachable_host_in_configured_order_wins(cli, crate, hosts, tmp_path):
    trees = tmp_path / "trees"
    decision = status(cli, crate, *sets(hosts, trees, "refused", "silent", "up2", "up", remote_tcp_timeout="0.5"))
    assert decision["status"] == "remote:up2"
    reason = decision["reason"]
    assert reason.index("refused: down") < reason.index("silent: down") < reason.index("up2: up")
    assert status(cli, crate, *sets(hosts, trees, "up", "up2", "silent"))["status"] == "remote:up"
    all_down = status(cli, crate, *sets(hosts, trees, "silent", "refused", remote_tcp_timeout="0.3"))
    assert all_down["status"] == "local:hosts-down"


def test_a_host_that_answers_again_leaves_the_down_cache(cli, crate, hosts, tmp_path, sshd, base_env):
    state = Path(base_env["XDG_STATE_HOME"]) / "buildpolicy"
    cache = remote_probe.DownCache(state)
    cache.update({f"127.0.0.1:{sshd.port}": "refused", "elsewhere:22": "refused"}, set(), ttl=300, now=time.time())
    decision = status(cli, crate, *sets(hosts, tmp_path / "trees", "up"))
    assert decision["status"] == "remote:up" and "recovery probe" not in decision["reason"]
    assert set(cache.load()) == {"elsewhere:22"}


def test_preflight_failure_marks_the_host_down(cli, crate, hosts, tmp_path, sshd):
    # The TCP port answers, but the login does not work (no key for this alias).
    config = write_ssh_config(tmp_path / "nokey_config", {"nokey": sshd.port})
    decision = status(cli, crate, *sets(config, tmp_path / "trees", "nokey"))
    assert decision["status"] == "local:hosts-down"
    assert "ssh preflight failed" in decision["reason"] and "Permission denied" in decision["reason"]


def test_build_remotely_then_run_the_artifact_here(cli, crate, hosts, tmp_path, base_env):
    trees = tmp_path / "trees"
    args = sets(hosts, trees, "refused", "up")
    (crate / "notes.log").write_text("ignored by git rules\n")
    (crate / "target").mkdir()
    (crate / "target" / "local-junk").write_text("never sent\n")
    (crate / "old.rs").write_text("// deleted before the second build\n")

    proc = cli("exec", *args, "--", "cargo", "build", "--offline", cwd=crate)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # rsync and cargo chatter stay on stderr
    binary = crate / "target" / "debug" / "hello"
    assert binary.is_file(), proc.stderr
    assert subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout.startswith("hello from hello\n")
    assert not (crate / "target" / "debug" / "deps").exists()  # intermediate files stay on the host

    tree = next(trees.iterdir())
    assert (tree / "src" / "main.rs").is_file() and (tree / "old.rs").is_file()
    assert not (tree / "notes.log").exists()  # ignored
    assert not (tree / "target" / "local-junk").exists()  # the local target dir is never sent
    assert (tree / "target" / "debug" / "deps").is_dir()  # the host keeps its build state

    # Edits travel: a deleted file disappears there, a new one appears; target stays warm.
    (crate / "old.rs").unlink()
    (crate / "new.rs").write_text("// new\n")
    again = cli("exec", *args, "--", "cargo", "build", "--offline", cwd=crate)
    assert again.returncode == 0, again.stderr
    assert not (tree / "old.rs").exists() and (tree / "new.rs").is_file()
    assert (tree / "target" / "debug" / "deps").is_dir()

    lines = (Path(base_env["XDG_STATE_HOME"]) / "buildpolicy" / "actions.jsonl").read_text().splitlines()
    entry = json.loads(lines[-1])
    assert entry["execution"] == {"mode": "remote", "host": "up"} and entry["exit_code"] == 0
    assert entry["decisions"]["remote"] == "remote:up" and entry["decisions"]["gate"] == "not-needed"
    assert entry["target_dir"] == str(crate / "target") and entry["action"] == "build"


def test_remote_run_gets_the_decided_environment_and_returns_the_exit_status(cli, crate, hosts, tmp_path):
    # TOML basic string: escape quotes and backslashes, keep \n as an escape.
    escaped = NASTY.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("$", "$$")
    (crate / "policies" / "probe.toml").write_text(f'[[rule]]\nid = "probe"\nenv = {{ CARGO_PROBE = "{escaped}" }}\n')
    args = sets(hosts, tmp_path / "trees", "up")
    proc = cli("exec", *args, "--", "cargo", "run", "--offline", "-q", "--", "3", cwd=crate, env={"LEAK_ME": "local-only"})
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == f"hello from hello\nprobe={NASTY}\nleak=None\n"
    assert not (crate / "target" / "debug" / "hello").exists()  # auto: no sync back for run
    tree = next((tmp_path / "trees").iterdir())
    assert not (tree / "pwned").exists() and not (crate / "pwned").exists()
    # remote_env forwards a caller variable on purpose.
    forwarded = cli("exec", *args, "--set", "remote_env=LEAK_ME", "--", "cargo", "run", "--offline", "-q", cwd=crate,
                    env={"LEAK_ME": "asked"})
    assert forwarded.returncode == 0 and 'leak=Some("asked")' in forwarded.stdout


def test_dry_run_shows_the_remote_plan(cli, crate, hosts, tmp_path):
    proc = cli("exec", "--dry-run", *sets(hosts, tmp_path / "trees", "up"), "--", "cargo", "build", "--offline", cwd=crate, check=True)
    plan = json.loads(proc.stdout)
    execution = plan["execution"]
    assert execution["mode"] == "remote" and execution["host"] == "up" and execution["sync_back"] is True
    assert [step["name"] for step in execution["steps"]] == ["sync", "run", "sync-back"]
    assert plan["decisions"]["gate"]["status"] == "not-needed"
    assert plan["argv"] == ["cargo", "build", "--offline"]
    assert not (tmp_path / "trees").exists()  # nothing was sent


def test_remote_fallback_local_builds_here_when_every_host_is_down(cli, crate, hosts, tmp_path, base_env):
    proc = cli("exec", "--dry-run", *sets(hosts, tmp_path / "trees", "refused"), "--", "cargo", "build", cwd=crate, check=True)
    plan = json.loads(proc.stdout)
    assert plan["execution"] == {"mode": "local"}
    assert plan["decisions"]["remote"]["status"] == "local:hosts-down"
    assert plan["decisions"]["gate"]["status"] == "acquired"  # a local build takes the gate
