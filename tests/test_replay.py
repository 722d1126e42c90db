"""The warm `env` replay (buildpolicy.replay): same output as a full run, and a full run
whenever anything the output depended on changed.

Whether a run was replayed is read from ``python -X importtime``: a full run imports
the evaluation pipeline (``buildpolicy.engine.pipeline``), a replay never does.
"""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buildpolicy import filestate
from buildpolicy.facts.unknown import NotReplayable
from buildpolicy.replay import check as replay_check
from buildpolicy.replay import store as replay_store
from buildpolicy.policy.expr.parser import compile_expr

GiB = 1 << 30
MiB = 1 << 20


def run_env(base_env, cwd: Path, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, bool]:
    """``buildpolicy env ARGS`` as a user runs it; returns the process and whether it was replayed."""
    full_env = {**base_env, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "buildpolicy", "env", *args],
        cwd=cwd, env=full_env, capture_output=True, timeout=60,
    )
    lines = proc.stderr.decode().splitlines(keepends=True)
    imports = [line for line in lines if line.startswith("import time:")]
    proc.stderr = "".join(line for line in lines if not line.startswith("import time:"))
    assert proc.returncode == 0, proc.stderr
    replayed = not any(line.rstrip().endswith(" buildpolicy.engine.pipeline") for line in imports)
    return proc, replayed


def records(home: Path) -> list[Path]:
    return sorted((home / "cache" / "buildpolicy" / replay_store.MEMO_DIR).glob("*.marshal"))


@pytest.fixture
def project(tmp_path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    return project


def test_a_repeated_env_is_replayed_byte_for_byte(base_env, project, home):
    first, replayed_first = run_env(base_env, project)
    second, replayed_second = run_env(base_env, project)
    third, replayed_third = run_env(base_env, project)
    assert (replayed_first, replayed_second, replayed_third) == (False, True, True)
    assert first.stdout == second.stdout == third.stdout
    assert first.stderr == second.stderr == third.stderr
    assert b"CARGO_BUILD_JOBS=" in first.stdout
    assert len(records(home)) == 1


def test_warnings_are_replayed_too(base_env, project):
    env = {"CARGO_BUILD_JOBS": "many"}  # the jobs plugin warns and replaces it
    first, _ = run_env(base_env, project, env=env)
    second, replayed = run_env(base_env, project, env=env)
    assert replayed
    assert "ignoring inherited CARGO_BUILD_JOBS='many'" in first.stderr
    assert second.stderr == first.stderr and second.stdout == first.stdout


def test_replay_off_always_runs_in_full_and_records_nothing(base_env, project, home):
    env = {replay_store.ENV_SWITCH: "off"}
    assert run_env(base_env, project, env=env)[1] is False
    assert run_env(base_env, project, env=env)[1] is False
    assert records(home) == []


def test_another_environment_is_another_invocation(base_env, project):
    run_env(base_env, project)
    assert run_env(base_env, project)[1]
    proc, replayed = run_env(base_env, project, env={"BUILDPOLICY_JOBS": "1"})
    assert not replayed
    assert b"export CARGO_BUILD_JOBS='1'" in proc.stdout
    # Variables every shell changes between prompts are not part of the invocation.
    assert run_env(base_env, project, env={"OLDPWD": "/elsewhere", "_": "/usr/bin/buildpolicy"})[1]


def test_other_arguments_are_another_invocation(base_env, project):
    run_env(base_env, project)
    proc, replayed = run_env(base_env, project, "--format", "json")
    assert not replayed and proc.stdout.startswith(b"{")
    assert run_env(base_env, project, "--format", "json")[1]


def test_editing_a_policy_file_runs_in_full(base_env, project):
    profile = project / "buildpolicy.toml"
    rule = '[[rule]]\nid = "opt"\nenv = {{ CARGO_PROFILE_DEV_OPT_LEVEL = "{}" }}\n'
    profile.write_text(rule.format("1"))
    assert b"CARGO_PROFILE_DEV_OPT_LEVEL='1'" in run_env(base_env, project)[0].stdout
    assert run_env(base_env, project)[1]
    profile.write_text(rule.format("2"))  # same size, and possibly the same mtime tick
    proc, replayed = run_env(base_env, project)
    assert not replayed and b"CARGO_PROFILE_DEV_OPT_LEVEL='2'" in proc.stdout


def test_a_profile_created_above_the_working_directory_runs_in_full(base_env, project):
    sub = project / "crates" / "app"
    sub.mkdir(parents=True)
    run_env(base_env, sub)
    assert run_env(base_env, sub)[1]
    (project / "buildpolicy.toml").write_text('[[rule]]\nid = "color"\nenv = { CARGO_TERM_COLOR = "always" }\n')
    proc, replayed = run_env(base_env, sub)
    assert not replayed and b"CARGO_TERM_COLOR='always'" in proc.stdout


def test_a_user_layer_policy_added_later_runs_in_full(base_env, project, home):
    run_env(base_env, project)
    assert run_env(base_env, project)[1]
    user = home / "config" / "buildpolicy"
    user.mkdir(parents=True)
    (user / "mine.toml").write_text('[[rule]]\nid = "mine"\nenv = { MINE = "yes" }\n')
    proc, replayed = run_env(base_env, project)
    assert not replayed and b"MINE='yes'" in proc.stdout


def test_a_fact_read_from_cargo_toml_is_probed_again(base_env, project):
    (project / "buildpolicy.toml").write_text(
        '[[rule]]\nid = "inc"\nwhen = "cargo.incremental"\nenv = { CARGO_PROFILE_DEV_DEBUG = "0" }\n')
    manifest = project / "Cargo.toml"
    manifest.write_text('[package]\nname = "x"\nversion = "0.1.0"\n')
    assert b"CARGO_PROFILE_DEV_DEBUG='0'" in run_env(base_env, project)[0].stdout
    assert run_env(base_env, project)[1]
    manifest.write_text('[package]\nname = "x"\nversion = "0.1.0"\n\n[profile.dev]\nincremental = false\n')
    proc, replayed = run_env(base_env, project)
    assert not replayed and b"CARGO_PROFILE_DEV_DEBUG" not in proc.stdout


def test_a_plugin_that_is_not_declared_replayable_is_never_replayed(base_env, project, home, cli):
    tools = project / "tools"
    tools.mkdir()
    (tools / "team.py").write_text(
        "from buildpolicy import hookimpl\nfrom buildpolicy.model import Decision\n"
        "@hookimpl\ndef buildpolicy_decide(ctx):\n"
        "    return Decision('team', 1, 'on', 'team plugin', set_env={'TEAM': 'yes'})\n")
    (project / "buildpolicy.toml").write_text('plugin_paths = ["tools/team.py"]\n')
    cli("allow", cwd=project, check=True)
    first, _ = run_env(base_env, project)
    assert b"TEAM='yes'" in first.stdout
    assert run_env(base_env, project)[1] is False
    assert records(home) == []


def test_given_facts_are_never_replayed(base_env, project, home, tmp_path):
    facts = tmp_path / "facts.toml"
    facts.write_text('"memory.available" = "1GiB"\n')
    run_env(base_env, project, "--facts", str(facts))
    assert run_env(base_env, project, "--facts", str(facts))[1] is False
    assert records(home) == []


def test_a_closed_stdout_is_still_exit_74_when_a_record_exists(base_env, project):
    run_env(base_env, project)
    assert run_env(base_env, project)[1]
    proc = subprocess.run(
        f"exec {sys.executable} -m buildpolicy env >&-", shell=True, cwd=project, env=base_env,
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 74, proc.stderr


# ---------------------------------------------------------------------------- the record


def _record(base_env, project, home) -> tuple[Path, dict]:
    run_env(base_env, project)
    [path] = records(home)
    return path, marshal.loads(filestate.unseal(path.read_bytes()))


def _replays_in(base_env, project) -> bool:
    return run_env(base_env, project)[1]


@pytest.fixture
def as_caller(monkeypatch, base_env, project):
    """This process with the caller's environment and directory, for in-process re-checks."""
    for name in list(os.environ):
        if name not in base_env:
            monkeypatch.delenv(name)
    for name, value in base_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(project)


def test_the_record_holds_no_environment_values(base_env, project, home):
    secret = "hunter2-do-not-store"
    run_env(base_env, project, env={"SOME_TOKEN": secret})
    [path] = records(home)
    assert secret.encode() not in path.read_bytes()
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_record_names_the_code_it_ran(base_env, project, home):
    _path, record = _record(base_env, project, home)
    files = [path for path, _token in record["files"]]
    assert any(path.endswith(os.path.join("buildpolicy", "engine", "pipeline.py")) for path in files)
    assert any(path.endswith("jobs.py") for path in files)  # the plugin's own source
    assert any(path.endswith("low-memory.toml") for path in files)  # the shipped policy


def test_a_changed_file_token_means_a_full_run(base_env, project, home):
    path, record = _record(base_env, project, home)
    assert _replays_in(base_env, project)
    index = next(i for i, (p, _t) in enumerate(record["files"]) if p.endswith("jobs.py"))
    record["files"][index] = (record["files"][index][0], "0:0:0:0")
    path.write_bytes(filestate.seal(marshal.dumps(record)))
    assert not _replays_in(base_env, project)


def test_memory_drifting_inside_the_recorded_thresholds_keeps_the_replay(base_env, project, home):
    _path, record = _record(base_env, project, home)
    deps = {name: (value, conditions) for name, value, conditions in record["deps"]}
    value, conditions = deps["memory.available"]
    # Compared with thresholds (the low-memory rule, the jobs plugin), not pinned.
    assert conditions, "memory.available must be a comparison dependency, not an exact one"
    assert all(op in ("<", "<=", ">", ">=", "==", "!=") for op, _c, _o in conditions)


def test_a_flipped_comparison_or_a_changed_value_fails_the_check(base_env, project, home, as_caller):
    _path, record = _record(base_env, project, home)
    assert replay_check.facts_hold(record)
    flipped = [
        (name, value, None if conditions is None else [(op, c, not o) for op, c, o in conditions])
        if name == "memory.available" else (name, value, conditions)
        for name, value, conditions in record["deps"]
    ]
    assert not replay_check.facts_hold({**record, "deps": flipped})
    changed = [(name, (value + 1 if name == "cpu.count" else value), conditions)
               for name, value, conditions in record["deps"]]
    assert any(name == "cpu.count" for name, _v, _c in record["deps"])
    assert not replay_check.facts_hold({**record, "deps": changed})


def test_a_probe_that_would_start_a_process_is_not_replayed(tmp_path, monkeypatch):
    from buildpolicy.facts import subproc

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    rustc = bin_dir / "rustc"
    rustc.write_text("#!/bin/sh\necho 'rustc 9.9.9 (fake)'\n")
    rustc.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("HOME", str(tmp_path))
    record = {
        "probes": {"rust.version": ("rust", "probe_rust_version", "string")},
        "deps": [("rust.version", "9.9.9", None)],
        "context": {
            "cwd": str(tmp_path), "cargo_argv": None, "profile_flag": None,
            "default_profile": "dev", "project_root": None, "cache_dir": str(tmp_path / "probes"),
            "root": "/", "platform": None,
        },
    }
    with pytest.raises(NotReplayable):
        replay_check.facts_hold(record)  # the probe cache is empty: rustc would have to run
    assert subproc.REPLAYING is False  # only while re-checking


def test_a_record_of_another_format_version_is_ignored(base_env, project, home):
    path, record = _record(base_env, project, home)
    path.write_bytes(filestate.seal(marshal.dumps({**record, "format": replay_store.FORMAT + 1})))
    assert not _replays_in(base_env, project)
    path.write_bytes(b"not marshal data")
    assert not _replays_in(base_env, project)


def test_records_are_pruned_to_the_newest(tmp_path, monkeypatch):
    monkeypatch.setattr(replay_store, "MAX_RECORDS", 3)
    environ = {"XDG_CACHE_HOME": str(tmp_path)}
    for n in range(5):
        replay_store.save(["env", str(n)], str(tmp_path), environ, {"n": n})
        os.utime(replay_store.record_path(replay_store.invocation_key(["env", str(n)], str(tmp_path), environ), environ),
                 ns=(n * 10**9, n * 10**9))
    kept = sorted(marshal.loads(filestate.unseal(p.read_bytes()))["n"] for p in (tmp_path / "buildpolicy" / replay_store.MEMO_DIR).iterdir())
    assert kept == [2, 3, 4]


# ---------------------------------------------------------------- dependencies are sound


def _jobs_decision(available: int, cpus: int | None, budget_mib: int):
    """The jobs plugin's decision with the conditions it declares."""
    from buildpolicy_plugins import jobs

    declared = []

    class Ctx:
        environ: dict = {}

        def knob(self, name):
            return {"jobs": None, "mib_per_job": budget_mib}[name]

        def fact(self, name):
            return {"memory.available": available, "cpu.count": cpus}[name]

        def depends_on(self, name, op, constant):
            declared.append((name, op, constant))

        def warn(self, message):
            pass

    return jobs.buildpolicy_decide(Ctx()).value, declared


@settings(max_examples=300, deadline=None)
@given(
    available=st.integers(0, 256 * GiB),
    other=st.integers(0, 256 * GiB),
    cpus=st.one_of(st.none(), st.integers(1, 64)),
    budget=st.integers(256, 8192),
)
def test_jobs_is_the_same_wherever_its_declared_conditions_hold(available, other, cpus, budget):
    from buildpolicy.policy.expr.ops import OPS

    jobs, declared = _jobs_decision(available, cpus, budget)
    assert declared and all(name == "memory.available" for name, _op, _c in declared)
    if all(OPS[op](other, constant) for _name, op, constant in declared):
        assert _jobs_decision(other, cpus, budget)[0] == jobs


_FACTS = {"memory.available": "size", "cpu.count": "int", "swap.total": "size"}
_atoms = st.builds(
    lambda fact, op, n: f"{fact} {op} {n}",
    st.sampled_from(sorted(_FACTS)), st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), st.integers(0, 16),
)
_exprs = st.recursive(
    _atoms,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
        st.builds(lambda a: f"not ({a})", inner),
    ),
    max_leaves=6,
)
_values = st.fixed_dictionaries({name: st.one_of(st.none(), st.integers(0, 16)) for name in _FACTS})


@settings(max_examples=400, deadline=None)
@given(text=_exprs, before=_values, after=_values)
def test_a_rule_keeps_its_result_while_its_recorded_comparisons_keep_theirs(text, before, after):
    from buildpolicy.policy.expr.ops import OPS

    expr = compile_expr(text, fact_type=_FACTS.get)
    exact: set[str] = set()
    conditions: list[tuple] = []
    matched, _ = expr.evaluate(before.get, exact=exact.add,
                               condition=lambda name, op, c, outcome: conditions.append((name, op, c, outcome)))
    holds = all(after[name] == before[name] for name in exact) and all(
        (None if after[name] is None else OPS[op](after[name], c)) == outcome
        for name, op, c, outcome in conditions
    )
    if holds:
        assert expr.evaluate(after.get)[0] == matched


def test_a_rust_toolchain_file_appearing_runs_the_front_end_decision_again(base_env, project, tmp_path):
    # A fake rustup installation: a nightly whose rustc answers like a nightly, and rustup on PATH.
    rustup_home = tmp_path / "rustup"
    bin_dir = rustup_home / "toolchains" / "nightly" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "rustc").write_text("#!/bin/sh\necho 'rustc 1.99.0-nightly (0000000 2026-11-01)'\n")
    (bin_dir / "rustc").chmod(0o755)
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "rustup").write_text("#!/bin/sh\nexit 0\n")
    (tools / "rustup").chmod(0o755)
    env = {"RUSTUP_HOME": str(rustup_home), "PATH": f"{tools}:{base_env['PATH']}"}
    (project / "Cargo.toml").write_text(
        '[package]\nname = "x"\nversion = "0.1.0"\n\n[profile.selfdev]\ninherits = "dev"\n')
    argv = ("--", "cargo", "build", "--profile", "selfdev")
    first, _ = run_env(base_env, project, *argv, env=env)
    assert b"RUSTUP_TOOLCHAIN='nightly'" in first.stdout
    assert run_env(base_env, project, *argv, env=env)[1]
    (project / "rust-toolchain.toml").write_text('[toolchain]\nchannel = "stable"\n')
    pinned, replayed = run_env(base_env, project, *argv, env=env)
    assert not replayed and b"RUSTUP_TOOLCHAIN" not in pinned.stdout


# ------------------------------------------------- found by trying to break the replay


def assert_fresh(base_env, cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``env`` now prints what a full run prints now; return the process."""
    proc, _replayed = run_env(base_env, cwd, *args, env=env)
    full, replayed = run_env(base_env, cwd, *args, env={**(env or {}), replay_store.ENV_SWITCH: "off"})
    assert not replayed
    assert (proc.stdout, proc.stderr) == (full.stdout, full.stderr)
    return proc


def test_a_dangling_profile_symlink_is_an_error_not_a_replay(base_env, project):
    run_env(base_env, project)
    assert run_env(base_env, project)[1]
    (project / "buildpolicy.toml").symlink_to(project / "nowhere.toml")
    proc = subprocess.run([sys.executable, "-m", "buildpolicy", "env"], cwd=project, env=base_env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "broken symbolic link" in proc.stderr


def test_a_replaced_ld_mold_is_noticed(base_env, project, tmp_path):
    import shutil

    mold, clang = shutil.which("mold"), shutil.which("clang")
    if not (mold and clang):
        if os.environ.get("CI"):
            pytest.fail("mold and clang are installed by scripts/install-system-deps.sh")
        pytest.skip("needs mold and clang (scripts/install-system-deps.sh installs them)")
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "mold").symlink_to(mold)
    (tools / "ld.mold").symlink_to(mold)
    env = {"PATH": f"{tools}:{base_env['PATH']}"}
    first, _ = run_env(base_env, project, env=env)
    assert b"fuse-ld=mold" in first.stdout
    assert run_env(base_env, project, env=env)[1]
    (tools / "ld.mold").unlink()
    shutil.copy(shutil.which("true"), tools / "ld.mold")  # another program behind the same name
    proc = assert_fresh(base_env, project, env=env)
    assert b"fuse-ld=mold" not in proc.stdout


def test_a_closed_pipe_on_replay_exits_quietly(base_env, project):
    run_env(base_env, project)
    assert run_env(base_env, project)[1]
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "buildpolicy", "env"], cwd=project, env=base_env,
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == 0
    assert "Traceback" not in proc.stderr


def test_warnings_are_printed_once_when_stdout_fails_on_replay(base_env, project):
    env = {"CARGO_BUILD_JOBS": "many"}
    run_env(base_env, project, env=env)
    assert run_env(base_env, project, env=env)[1]
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([sys.executable, "-m", "buildpolicy", "env"], cwd=project, env={**base_env, **env},
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 74
    assert proc.stderr.count("ignoring inherited CARGO_BUILD_JOBS") == 1


def test_an_environment_fact_value_is_not_stored(base_env, project, home):
    secret = "s3cr3t-token-value"
    (home / "config" / "buildpolicy").mkdir(parents=True)
    (home / "config" / "buildpolicy" / "corp.toml").write_text(
        '[[rule]]\nid = "corp"\nwhen = "env.CORP_TOKEN != null"\nenv = { CARGO_NET_OFFLINE = "false" }\n')
    run_env(base_env, project, env={"CORP_TOKEN": secret})
    [path] = records(home)
    assert secret.encode() not in path.read_bytes()
    assert run_env(base_env, project, env={"CORP_TOKEN": secret})[1]


def test_a_workspace_root_created_above_a_member_applies(base_env, project):
    member = project / "crates" / "app"
    member.mkdir(parents=True)
    (member / "Cargo.toml").write_text('[package]\nname = "app"\nversion = "0.1.0"\n')
    (project / "buildpolicy.toml").write_text(
        '[[rule]]\nid = "inc"\nwhen = "cargo.incremental"\nenv = { CARGO_PROFILE_DEV_DEBUG = "0" }\n')
    assert b"CARGO_PROFILE_DEV_DEBUG" in run_env(base_env, member)[0].stdout
    assert run_env(base_env, member)[1]
    (project / "Cargo.toml").write_text(
        '[workspace]\nmembers = ["crates/app"]\n\n[profile.dev]\nincremental = false\n')
    proc = assert_fresh(base_env, member)
    assert b"CARGO_PROFILE_DEV_DEBUG" not in proc.stdout


def test_a_pack_symlink_pointed_elsewhere_applies(base_env, project, tmp_path):
    for version, color in (("v1", "always"), ("v2", "never")):
        (tmp_path / version).mkdir()
        (tmp_path / version / "team.toml").write_text(
            f'[[rule]]\nid = "color"\nenv = {{ CARGO_TERM_COLOR = "{color}" }}\n')
    (project / "shared").symlink_to(tmp_path / "v1")
    (project / "buildpolicy.toml").write_text('extends = ["shared"]\n')
    assert b"CARGO_TERM_COLOR='always'" in run_env(base_env, project)[0].stdout
    assert run_env(base_env, project)[1]
    (project / "shared").unlink()
    (project / "shared").symlink_to(tmp_path / "v2")
    proc = assert_fresh(base_env, project)
    assert b"CARGO_TERM_COLOR='never'" in proc.stdout


def test_a_file_changed_since_the_run_started_is_racy():
    token = filestate.stat_token(filestate.__file__)
    ctime = int(token.split(":")[3])
    assert filestate.racy(token, ctime)  # changed at the start of the run
    assert filestate.racy(token, ctime + filestate.RACY_MARGIN_NS // 2)  # within the clock's lag
    assert not filestate.racy(token, ctime + 2 * filestate.RACY_MARGIN_NS)
    assert not filestate.racy("missing", ctime)


def test_cargo_profiles_read_while_changing_are_not_cached(tmp_path, monkeypatch):
    from buildpolicy.facts import FactStore, ProbeContext, cargo_profiles

    (tmp_path / "Cargo.toml").write_text('[package]\nname = "x"\nversion = "0.1.0"\n')
    ctx = ProbeContext(cwd=tmp_path, environ={"HOME": str(tmp_path)}, cache_dir=tmp_path / "cache")
    # The run started well after the manifest was written: cached.
    import time

    later = time.time_ns() + 10 * filestate.RACY_MARGIN_NS
    monkeypatch.setattr(cargo_profiles.time, "time_ns", lambda: later)
    FactStore(ctx).get("cargo.incremental")
    assert "cargo-profiles" in (tmp_path / "cache" / "probes.json").read_text()
    (tmp_path / "cache" / "probes.json").unlink()
    # The manifest changed after the run started: not cached.
    monkeypatch.setattr(cargo_profiles.time, "time_ns", lambda: 0)
    FactStore(ctx).get("cargo.incremental")
    assert not (tmp_path / "cache" / "probes.json").exists()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_a_prompt_hook_sees_the_same_environment_with_and_without_replay(base_env, project, shell):
    import shutil

    if shutil.which(shell) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{shell} is installed by scripts/install-system-deps.sh")
        pytest.skip(f"{shell} is not installed (scripts/install-system-deps.sh installs it)")
    command = f"{sys.executable} -m buildpolicy env --shell {shell}"
    if shell == "fish":
        script = "; ".join([f"{command} | source"] * 4) + "; env"
    else:
        script = "; ".join([f'eval "$({command})"'] * 4) + "; env"

    def prompt_environment(replay: str) -> dict[str, str]:
        proc = subprocess.run([shell, "-c", script], cwd=project, env={**base_env, replay_store.ENV_SWITCH: replay},
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        pairs = (line.partition("=") for line in proc.stdout.splitlines() if "=" in line)
        return {k: v for k, _sep, v in pairs if k not in (replay_store.ENV_SWITCH, "_", "SHLVL", "PWD", "OLDPWD")}

    full = prompt_environment("off")
    assert "CARGO_BUILD_JOBS" in full and "BUILDPOLICY_ENV_STATE" in full
    assert prompt_environment("on") == full
    assert prompt_environment("on") == full  # now replayed from the records of the run before
