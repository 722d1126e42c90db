"""The remote decision without an sshd: host checks, probes of refused and silent
loopback ports, the down cache, fallbacks, and the remote environment and script.

Every address used is 127.0.0.1 (ssh aliases in a generated config file).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from buildpolicy.run.remote import hosts as remote_hosts
from buildpolicy.run.remote import probe as remote_probe
from buildpolicy.run.remote import sync as remote_sync
from buildpolicy.engine.context import ExecPlan
from buildpolicy.engine.pipeline import Request, evaluate
from tests.sshd import closed_port, require, silent_port, write_ssh_config  # noqa: F401 - fixture

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "Cargo.toml").write_text('[package]\nname = "demo"\nversion = "0.1.0"\nedition = "2021"\n')
    (root / "src" / "main.rs").write_text("fn main() {}\n")
    (root / "buildpolicy.toml").write_text('policies = ["policies"]\n')
    (root / "policies").mkdir()
    return root


@pytest.fixture
def ssh_config(tmp_path, silent_port) -> Path:
    require("ssh")
    return write_ssh_config(
        tmp_path / "ssh_config",
        {"refused": closed_port(), "refused2": closed_port(), "silent": silent_port, "proxied": closed_port()},
        extra={"proxied": ["ProxyCommand false"]},
    )


def run(project, base_env, *sets, argv=None, command="env", env=None, hermetic=False, facts=None):
    environ = dict(base_env)
    environ.update(env or {})
    return evaluate(Request(cwd=project, environ=environ, command=command, cargo_argv=argv, cli_sets=tuple(sets),
                            hermetic=hermetic, fact_overrides=facts))


def remote_sets(config, *hosts, **knobs):
    sets = ["remote=on", f"remote_ssh_config={config}", "remote_hosts=" + ",".join(hosts)]
    sets += [f"{name}={value}" for name, value in knobs.items()]
    return sets


def down_cache(base_env) -> dict:
    path = Path(base_env["XDG_STATE_HOME"]) / "buildpolicy" / remote_probe.DOWN_CACHE
    return json.loads(path.read_text())["hosts"] if path.exists() else {}


# ---------------------------------------------------------------- host names


@pytest.mark.parametrize("host", ["build1", "build-1.example.org", "me@build1", "127.0.0.1", "::1", "[::1]", "u@[::1]", "a_b"])
def test_valid_host_names(host):
    assert remote_hosts.host_problem(host) is None


@pytest.mark.parametrize("host", ["-oProxyCommand=touch x", "-x", "", "a b", "a;b", "a'b", "host:22", "@host", "-u@h", "a\nb", "$(id)"])
def test_host_names_that_never_reach_ssh(host):
    assert remote_hosts.host_problem(host)


def test_a_host_starting_with_dash_is_an_exit_2_error_naming_its_source(cli, project, base_env):
    by_env = cli("env", cwd=project, env={"BUILDPOLICY_REMOTE": "on", "BUILDPOLICY_REMOTE_HOSTS": "ok,-oProxyCommand=touch pwned"})
    assert by_env.returncode == 2 and by_env.stdout == ""
    assert "remote_hosts" in by_env.stderr and "$BUILDPOLICY_REMOTE_HOSTS" in by_env.stderr and "starts with '-'" in by_env.stderr
    assert not (project / "pwned").exists()
    by_set = cli("exec", "--set", "remote=on", "--set", "remote_hosts=-x", "--", "cargo", "build", cwd=project)
    assert by_set.returncode == 2 and "--set remote_hosts=-x" in by_set.stderr
    # Checked even with remote off: a bad value is a bad value.
    user_dir = Path(base_env["XDG_CONFIG_HOME"]) / "buildpolicy"
    user_dir.mkdir(parents=True, exist_ok=True)
    (user_dir / "r.toml").write_text('[knobs]\nremote_hosts = ["good", "-bad"]\n')
    in_file = cli("explain", cwd=project)
    assert in_file.returncode == 2 and "r.toml:2" in in_file.stderr


def test_remote_knob_types(cli, project):
    bad = cli("env", "--set", "remote_tcp_timeout=fast", cwd=project)
    assert bad.returncode == 2 and "remote_tcp_timeout" in bad.stderr and "seconds" in bad.stderr
    ok = cli("explain", "--format", "json", "--set", "remote_tcp_timeout=750ms", "--set", "remote_down_ttl=60", cwd=project, check=True)
    knobs = json.loads(ok.stdout)["knobs"]
    assert knobs["remote_tcp_timeout"]["value"] == 0.75 and knobs["remote_down_ttl"]["value"] == 60.0
    assert knobs["remote_recovery_timeout"]["value"] == 0.3 and knobs["remote_connect_timeout"]["value"] == 5.0
    assert knobs["remote"]["value"] == "off" and knobs["remote_fallback"]["value"] == "local"
    assert knobs["remote_tcp_probe"]["value"] == "on" and knobs["remote_sync_back"]["value"] == "auto"
    bad_dir = cli("env", "--set", "remote_dir=a b", cwd=project)
    assert bad_dir.returncode == 2 and "remote_dir" in bad_dir.stderr


# ---------------------------------------------------------------- off: zero cost


def test_remote_off_is_disabled_and_imports_nothing(project, base_env):
    code = (
        "import sys\nfrom pathlib import Path\nfrom buildpolicy.engine.pipeline import Request, evaluate\n"
        f"r = evaluate(Request(cwd=Path({str(project)!r}), environ=dict(__import__('os').environ)))\n"
        "print(r.decisions['remote'].status, r.decisions['gate'].status, 'buildpolicy.run.remote' in sys.modules, 'buildpolicy.run.gate' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=base_env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["disabled", "not-needed", "False", "False"]


# ---------------------------------------------------------------- probing refused and silent hosts


def test_refused_host_falls_back_locally_and_is_remembered(project, base_env, ssh_config):
    first = run(project, base_env, *remote_sets(ssh_config, "refused"), command="explain")
    decision = first.decisions["remote"]
    assert decision.status == "local:hosts-down" and decision.value is None
    assert "refused the connection" in decision.reason and "first probe" in decision.reason
    assert "remote_fallback = local" in decision.reason
    assert "BUILDPOLICY_REMOTE_HOST" not in first.set_env
    cache = down_cache(base_env)
    assert list(cache) == [f"127.0.0.1:{_port_of(ssh_config, 'refused')}"] and "refused" in next(iter(cache.values()))["reason"]
    again = run(project, base_env, *remote_sets(ssh_config, "refused"), command="explain")
    assert "recovery probe: down" in again.decisions["remote"].reason


def test_silent_host_times_out_with_first_then_recovery_timeout(project, base_env, ssh_config):
    knobs = {"remote_tcp_timeout": "0.4", "remote_recovery_timeout": "0.1"}
    first = run(project, base_env, *remote_sets(ssh_config, "silent", **knobs), command="explain").decisions["remote"]
    assert first.status == "local:hosts-down"
    assert "no answer from 127.0.0.1" in first.reason and "within 0.4s (first probe)" in first.reason
    second = run(project, base_env, *remote_sets(ssh_config, "silent", **knobs), command="explain").decisions["remote"]
    assert "within 0.1s (recovery probe: down" in second.reason
    # Outside the TTL the failure is old news: the first-probe timeout again.
    third = run(project, base_env, *remote_sets(ssh_config, "silent", remote_down_ttl="0", **knobs), command="explain").decisions["remote"]
    assert "within 0.4s (first probe)" in third.reason


def test_every_host_is_reported_in_configured_order(project, base_env, ssh_config):
    decision = run(project, base_env, *remote_sets(ssh_config, "silent", "refused", "refused2", remote_tcp_timeout="0.3"), command="explain").decisions["remote"]
    assert decision.status == "local:hosts-down"
    reason = decision.reason
    assert reason.index("silent: down") < reason.index("refused: down") < reason.index("refused2: down")
    assert len(down_cache(base_env)) == 3


def test_proxied_host_is_not_tcp_probed(project, base_env, ssh_config):
    decision = run(project, base_env, *remote_sets(ssh_config, "proxied"), command="explain").decisions["remote"]
    assert decision.status == "local:hosts-down"
    assert "ssh preflight failed" in decision.reason
    assert "refused the connection" not in decision.reason  # ssh's ProxyCommand failed, no TCP probe ran
    assert "proxy:proxied" in down_cache(base_env)


def test_tcp_probe_off_goes_straight_to_the_ssh_preflight(project, base_env, ssh_config):
    decision = run(project, base_env, *remote_sets(ssh_config, "refused", remote_tcp_probe="off"), command="explain").decisions["remote"]
    assert "ssh preflight failed" in decision.reason and "Connection refused" in decision.reason


def test_fallback_error_exits_75_from_exec_only(cli, project, ssh_config, tmp_path):
    sets = [arg for item in remote_sets(ssh_config, "refused", remote_fallback="error") for arg in ("--set", item)]
    proc = cli("exec", *sets, "--", "cargo", "build", cwd=project)
    assert proc.returncode == 75 and proc.stdout == ""
    assert "remote_fallback = error" in proc.stderr and "refused" in proc.stderr
    dry = cli("exec", "--dry-run", *sets, "--", "cargo", "build", cwd=project)
    assert dry.returncode == 75
    # `env` and `explain` report the decision; only exec refuses to build.
    env = cli("explain", "remote", "--format", "json", *sets, cwd=project, check=True)
    assert json.loads(env.stdout)["decisions"]["remote"]["status"] == "local:hosts-down"
    # A command that is not a build is not held hostage by the fallback.
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "cargo").write_text("#!/bin/sh\necho fake cargo \"$@\"\n")
    (fake / "cargo").chmod(0o755)
    meta = cli("exec", *sets, "--", "cargo", "metadata", cwd=project, env={"PATH": f"{fake}:{cli.env['PATH']}"})
    assert meta.returncode == 0 and meta.stdout == "fake cargo metadata\n", meta.stderr


def test_non_build_commands_and_missing_tools_skip_probing(project, base_env, ssh_config):
    meta = run(project, base_env, *remote_sets(ssh_config, "refused"), argv=("cargo", "metadata"), command="exec")
    assert meta.decisions["remote"].status == "local:command:metadata"
    assert down_cache(base_env) == {}  # nothing was probed
    no_ssh = run(project, base_env, *remote_sets(ssh_config, "refused"), facts={"tool.ssh": None})
    assert no_ssh.decisions["remote"].status == "local:no-ssh"
    no_rsync = run(project, base_env, *remote_sets(ssh_config, "refused"), argv=("cargo", "build"), command="exec",
                   facts={"tool.rsync": None})
    assert no_rsync.decisions["remote"].status == "local:no-rsync"
    empty = run(project, base_env, "remote=on")
    assert empty.decisions["remote"].status == "local:no-hosts"
    hermetic = run(project, base_env, *remote_sets(ssh_config, "refused"), hermetic=True, facts={"tool.ssh": "/usr/bin/ssh"})
    assert hermetic.decisions["remote"].status == "local:not-probed"
    assert down_cache(base_env) == {}


def test_a_bad_ssh_config_is_a_host_failure_not_a_crash(project, base_env, tmp_path):
    require("ssh")
    decision = run(project, base_env, "remote=on", "remote_hosts=anything", f"remote_ssh_config={tmp_path / 'missing'}", command="explain").decisions["remote"]
    assert decision.status == "local:hosts-down" and "ssh -G failed" in decision.reason


def test_a_stale_inherited_remote_host_is_unset_when_building_locally(project, base_env, ssh_config):
    result = run(project, base_env, *remote_sets(ssh_config, "refused"), env={"BUILDPOLICY_REMOTE_HOST": "old"})
    assert "BUILDPOLICY_REMOTE_HOST" in result.unset


def _port_of(config: Path, alias: str) -> int:
    lines = config.read_text().splitlines()
    start = lines.index(f"Host {alias}")
    return int(next(line.split()[1] for line in lines[start:] if line.strip().startswith("Port ")))


# ---------------------------------------------------------------- the down cache


def test_corrupt_down_cache_is_ignored_and_rebuilt(tmp_path):
    cache = remote_probe.DownCache(tmp_path)
    for junk in (b"{not json", b"[]", b'{"hosts": []}', b'{"hosts": {"a:1": {"failed_at": "yesterday"}}}', b"\xff\xfe"):
        cache.path.write_bytes(junk)
        assert cache.load() == {}
    assert cache.update({"h:22": "refused"}, set(), ttl=300, now=time.time())
    assert set(cache.load()) == {"h:22"}


def test_down_cache_drops_recovered_and_expired_entries(tmp_path):
    cache = remote_probe.DownCache(tmp_path)
    now = time.time()
    cache.update({"a:1": "refused", "b:1": "refused"}, set(), ttl=300, now=now - 400)
    cache.update({"c:1": "refused"}, set(), ttl=300, now=now - 10)
    cache.update({"d:1": "no answer"}, {"c:1"}, ttl=300, now=now)
    assert set(cache.load()) == {"d:1"}
    assert set(cache.recent(300, now)) == {"d:1"}
    assert cache.recent(5, now + 10) == {}


def _hammer(state_dir: str, worker: int, rounds: int) -> None:
    cache = remote_probe.DownCache(Path(state_dir))
    for index in range(rounds):
        # An update gives up (False) when the lock stays busy past its short timeout, as a
        # prompt must not wait; on a loaded machine that happens, and the next run retries.
        # What must never happen is an update that said True and was lost.
        for _attempt in range(100):
            if cache.update({f"w{worker}-{index}:22": "refused"}, set(), ttl=3600, now=time.time()):
                break
        else:
            raise AssertionError(f"worker {worker}: update {index} never got the lock")


def test_down_cache_is_safe_under_many_concurrent_shells(tmp_path):
    workers, rounds = 12, 15
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_hammer, args=(str(tmp_path), w, rounds)) for w in range(workers)]
    for proc in procs:
        proc.start()
    bad_reads = 0
    while any(proc.is_alive() for proc in procs):
        try:
            json.loads((tmp_path / remote_probe.DOWN_CACHE).read_bytes())
        except FileNotFoundError:
            pass
        except ValueError:
            bad_reads += 1  # a reader must never see a half-written file
        time.sleep(0.001)
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert bad_reads == 0
    assert len(remote_probe.DownCache(tmp_path).load()) == workers * rounds  # no update lost
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------- the remote environment and script


NASTY = "it's \"quoted\" $(touch pwned) `id` \\back\\slash\n$HOME ${PATH} *"


@pytest.fixture
def fake_remote(tmp_path):
    """A directory standing for the remote host: a HOME, and a PATH whose `cargo` records what it got."""
    home = tmp_path / "remote-home"
    bin_dir = tmp_path / "remote-bin"
    bin_dir.mkdir(parents=True)
    home.mkdir()
    record = tmp_path / "record.json"
    cargo = bin_dir / "cargo"
    cargo.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"json.dump({{'argv': sys.argv[1:], 'env': dict(os.environ), 'cwd': os.getcwd()}}, open({str(record)!r}, 'w'))\n"
        "sys.exit(int(os.environ.get('CARGO_EXIT_WITH', '0')))\n"
    )
    cargo.chmod(cargo.stat().st_mode | stat.S_IEXEC)
    os.symlink("/usr/bin/env", bin_dir / "env")
    os.symlink("/bin/sh", bin_dir / "sh")
    return home, bin_dir, record


def test_remote_script_sends_exactly_the_decided_environment(project, base_env, tmp_path, fake_remote):
    home, bin_dir, record = fake_remote
    remote_dir = tmp_path / "remote-trees"
    local_program = tmp_path / "bin" / "mylinker"
    local_program.parent.mkdir()
    local_program.write_text("#!/bin/sh\n")
    local_program.chmod(0o755)
    (project / "sub").mkdir()
    environ = dict(base_env, LEAK_ME="secret", KEEP_ME="asked-for", RUSTC_WRAPPER="/usr/bin/old-wrapper")
    result = run(project, environ, f"remote_dir={remote_dir}", "remote_env=KEEP_ME", "jobs=3",
                 argv=("cargo", "build", "--manifest-path", str(project / "Cargo.toml")), command="exec")
    ctx = result.context
    env = dict(ctx.environ)
    env.pop("RUSTC_WRAPPER")  # decided: unset
    env.update({
        "CARGO_NASTY": NASTY,
        "CARGO_PATHS": f"{project}/sub:{project}2/other",  # the tree's path, and a lookalike
        "TMPDIR": str(ctx.cache_dir / "tmp"),
        "CARGO_BUILD_JOBS": "3",
        "RUSTC_WORKSPACE_WRAPPER": "/usr/bin/env",
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER": str(local_program),
        "BUILDPOLICY_REMOTE_HOST": "fake",
    })
    plan = remote_sync.remote_plan(ExecPlan(argv=("/abs/cargo", "build", "--manifest-path", str(project / "Cargo.toml")), env=env),
                              ctx, "fake")
    execution = plan.execution
    assert execution["mode"] == "remote" and execution["host"] == "fake"
    assert "TMPDIR" in execution["dropped"] and "LEAK_ME" not in execution["env"]
    assert execution["programs"] == {"RUSTC_WORKSPACE_WRAPPER": "env", "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER": "mylinker"}

    tree = Path(execution["remote_dir"])
    (tree / "sub").mkdir(parents=True)
    remote_env = {"HOME": str(home), "PATH": f"{bin_dir}:/usr/bin:/bin", "RUSTC_WRAPPER": "remote-side", "LANG": "C"}
    proc = subprocess.run(["sh", "-c", execution["script"]], env=remote_env, cwd=home, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(record.read_text())
    assert got["argv"] == ["build", "--manifest-path", f"{tree}/Cargo.toml"]  # the tree's path rewritten
    assert got["cwd"] == str(tree)
    assert got["env"]["CARGO_NASTY"] == NASTY  # every byte survived the remote shell
    assert got["env"]["CARGO_PATHS"] == f"{tree}/sub:{project}2/other"
    assert got["env"]["CARGO_BUILD_JOBS"] == "3"  # the jobs knob asked for it
    assert got["env"]["KEEP_ME"] == "asked-for"
    assert got["env"]["CARGO_TARGET_DIR"] == f"{tree}/target"
    assert got["env"]["RUSTC_WORKSPACE_WRAPPER"] == "env"
    assert "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER" not in got["env"]  # no mylinker on the host
    assert "mylinker is not installed on fake" in proc.stderr
    for absent in ("LEAK_ME", "TMPDIR", "RUSTC_WRAPPER", "BUILDPOLICY_REMOTE_HOST"):
        assert absent not in got["env"], absent
    assert not (home / "pwned").exists() and not (tree / "pwned").exists()


def test_remote_script_keeps_relative_workdir_and_drops_machine_jobs(project, base_env, tmp_path, fake_remote):
    home, bin_dir, record = fake_remote
    (project / "src" / "deep").mkdir()
    result = run(project / "src" / "deep", base_env, f"remote_dir={tmp_path / 'trees'}", argv=("cargo", "test"), command="exec")
    env = dict(result.context.environ, CARGO_BUILD_JOBS="2", CARGO_EXIT_WITH="0")
    plan = remote_sync.remote_plan(ExecPlan(argv=("cargo", "test", "--", "--nocapture"), env=env), result.context, "u@fake")
    execution = plan.execution
    assert execution["workdir"] == "src/deep" and execution["sync_back"] is False  # auto: build only
    assert "CARGO_BUILD_JOBS" in execution["dropped"]
    tree = Path(execution["remote_dir"])
    (tree / "src" / "deep").mkdir(parents=True)
    proc = subprocess.run(["sh", "-c", execution["script"]], env={"HOME": str(home), "PATH": f"{bin_dir}:/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(record.read_text())
    assert got["cwd"] == str(tree / "src" / "deep") and got["argv"] == ["test", "--", "--nocapture"]
    assert "CARGO_BUILD_JOBS" not in got["env"]


def test_remote_steps_put_double_dash_before_every_host(project, base_env, tmp_path):
    result = run(project, base_env, f"remote_dir={tmp_path / 'trees'}", "remote_sync_back=on", f"remote_ssh_config={tmp_path / 'my config'}",
                 argv=("cargo", "check"), command="exec")
    plan = remote_sync.remote_plan(ExecPlan(argv=("cargo", "check"), env=dict(result.context.environ)), result.context, "u@[::1]")
    steps = {step["name"]: step["argv"] for step in plan.execution["steps"]}
    assert set(steps) == {"sync", "run", "sync-back"}
    sync, run_argv, back = steps["sync"], steps["run"], steps["sync-back"]
    assert sync[sync.index("--") + 2] == f"u@[::1]:{plan.execution['remote_dir']}/"
    assert run_argv[run_argv.index("--") + 1] == "u@[::1]"
    assert back[back.index("--") + 1].startswith("u@[::1]:")
    assert f"'{tmp_path / 'my config'}'" in sync[sync.index("-e") + 1]  # rsync -e keeps the space
    assert "--exclude=/target/" in sync and "--delete" in sync and "--exclude=.git" in sync
    assert "--filter=:- .gitignore" in sync  # no git work tree here
    assert "--exclude=deps/" in back


def test_git_ignored_files_are_excluded_exactly(project, base_env, tmp_path):
    git = require("git")["git"]
    subprocess.run([git, "init", "-q", str(project)], check=True)
    (project / ".gitignore").write_text("*.log\n!keep.log\n/target\n")
    for name in ("a.log", "keep.log", "[odd]*.log"):
        (project / name).write_text("x")
    result = run(project, base_env, f"remote_dir={tmp_path / 'trees'}", argv=("cargo", "build"), command="exec")
    plan = remote_sync.remote_plan(ExecPlan(argv=("cargo", "build"), env=dict(result.context.environ)), result.context, "fake")
    sync = plan.execution["steps"][0]["argv"]
    exclude_file = Path(next(a for a in sync if a.startswith("--exclude-from=")).partition("=")[2])
    patterns = exclude_file.read_bytes().split(b"\0")
    assert b"/a.log" in patterns and b"/\\[odd]\\*.log" in patterns
    assert b"/keep.log" not in patterns  # git's negation is honoured
