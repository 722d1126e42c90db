"""`buildpolicy doctor`: each trap found in the effective environment, with its fix; exit 1 when any."""

from __future__ import annotations

import json
from shlex import quote as shlex_quote
from pathlib import Path

import pytest

from buildpolicy.run import fingerprints
from buildpolicy.team import doctor
from buildpolicy.engine.pipeline import Request, evaluate
from tests.conftest import LOW_MEMORY_LAPTOP, write

TRIPLE_VAR = "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU"
ROOMY = dict(LOW_MEMORY_LAPTOP, **{"memory.total": "64GiB", "memory.available": "48GiB", "cpu.count": 16})


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    write(root / "Cargo.toml", '[package]\nname = "demo"\nversion = "0.1.0"\n')
    write(root / "buildpolicy.toml", "")
    return root


@pytest.fixture
def roomy(tmp_path) -> Path:
    path = tmp_path / "roomy.json"
    path.write_text(json.dumps(ROOMY))
    return path


def run_doctor(cli, project, facts, env=None, *extra):
    proc = cli("doctor", "--format", "json", "--facts", str(facts), *extra, cwd=project, env=env)
    assert proc.returncode in (0, 1), proc.stderr
    problems = json.loads(proc.stdout)["problems"]
    assert proc.returncode == (1 if problems else 0)
    return {p["check"]: p for p in problems}


def test_a_clean_environment_has_no_problems(cli, project, roomy):
    assert run_doctor(cli, project, roomy) == {}
    text = cli("doctor", "--facts", str(roomy), cwd=project)
    assert text.returncode == 0 and text.stdout == "buildpolicy doctor: no problems found\n"


def test_rustflags_shadowing_config_and_target_flags(cli, project, roomy):
    config = write(project / ".cargo" / "config.toml",
                   '[build]\nrustflags = ["-C", "target-cpu=native"]\n\n'
                   '[target.x86_64-unknown-linux-gnu]\nrustflags = ["-C", "force-frame-pointers=yes"]\n')
    # An empty RUSTFLAGS still shadows (the linker knob keeps buildpolicy's flags out of it here).
    found = run_doctor(cli, project, roomy, {"RUSTFLAGS": "", "BUILDPOLICY_LINKER": "system"})
    problem = found["rustflags-shadowed"]
    assert problem["message"].startswith("cargo takes its rustflags from RUSTFLAGS='' (your environment) only")
    assert any(f"{config}:5" in d and "force-frame-pointers" in d for d in problem["details"])
    assert any(f"{config}:2" in d and "target-cpu=native" in d for d in problem["details"])
    assert "unset RUSTFLAGS" in problem["fix"]
    # Without RUSTFLAGS, target rustflags still shadow [build] rustflags.
    found = run_doctor(cli, project, roomy, {"BUILDPOLICY_LINKER": "system"})
    assert found["rustflags-shadowed"]["message"].startswith("cargo takes its rustflags from [target.x86_64-unknown-linux-gnu]")
    assert "[build] rustflags" in found["rustflags-shadowed"]["details"][0]


def test_buildpolicys_own_rustflags_join_build_rustflags_instead_of_shadowing_them(cli, project, roomy):
    write(project / "policies" / "flags.toml", '[[rule]]\nid = "fp"\nrustflags = ["-C", "force-frame-pointers=yes"]\n')
    write(project / ".cargo" / "config.toml", '[build]\nrustflags = ["-C", "target-cpu=native"]\n')
    assert "rustflags-shadowed" not in run_doctor(cli, project, roomy)
    env = json.loads(cli("env", "--format", "json", "--facts", str(roomy), cwd=project, check=True).stdout)["set"]
    assert env["CARGO_BUILD_RUSTFLAGS"].startswith("-C force-frame-pointers=yes")
    assert f"{TRIPLE_VAR}_RUSTFLAGS" not in env
    # The caller's own target variable still hides [build] rustflags: that trap is reported.
    problem = run_doctor(cli, project, roomy, {f"{TRIPLE_VAR}_RUSTFLAGS": "-Cdebuginfo=1"})["rustflags-shadowed"]
    assert f"{TRIPLE_VAR}_RUSTFLAGS=" in problem["message"]


def test_sccache_with_incremental_builds(cli, project, roomy, tmp_path):
    sccache = write(tmp_path / "bin" / "sccache", "#!/bin/sh\n")
    sccache.chmod(0o755)
    # The sccache knob `on` keeps an inherited wrapper on incremental builds: the trap.
    env = {"RUSTC_WRAPPER": str(sccache), "BUILDPOLICY_SCCACHE": "on"}
    problem = run_doctor(cli, project, roomy, env, "--", "cargo", "build")["sccache-incremental"]
    assert f"RUSTC_WRAPPER={sccache}" in problem["message"] and "incremental (profile dev)" in problem["message"]
    assert "CARGO_INCREMENTAL=0" in problem["fix"]
    assert "sccache-incremental" not in run_doctor(cli, project, roomy, dict(env, CARGO_INCREMENTAL="0"), "--", "cargo", "build")
    assert "sccache-incremental" not in run_doctor(cli, project, roomy, env, "--", "cargo", "build", "--release")
    # Without the knob buildpolicy removes the inherited wrapper from incremental builds itself.
    assert "sccache-incremental" not in run_doctor(cli, project, roomy, {"RUSTC_WRAPPER": str(sccache)}, "--", "cargo", "build")


def test_linker_pointing_at_a_missing_binary(cli, project, roomy):
    found = run_doctor(cli, project, roomy, {f"{TRIPLE_VAR}_LINKER": "/opt/nowhere/clang"})
    assert any("/opt/nowhere/clang" in d for d in found["linker-missing"]["details"])
    config = write(project / ".cargo" / "config.toml", '[target.x86_64-unknown-linux-gnu]\nlinker = "no-such-cc-xyz"\n')
    # buildpolicy's own linker decision sets the variable, which overrides the config file...
    assert "linker-missing" not in run_doctor(cli, project, roomy)
    # ...unless it leaves the linker alone.
    found = run_doctor(cli, project, roomy, {"BUILDPOLICY_LINKER": "system"})
    assert f"[target.x86_64-unknown-linux-gnu] linker = 'no-such-cc-xyz' in {config}:2: not found" in found["linker-missing"]["details"]
    config.unlink()
    flags = run_doctor(cli, project, roomy, {"RUSTFLAGS": "-C linker=/opt/none/cc -Clink-arg=-fuse-ld=/opt/none/mold"})
    details = flags["linker-missing"]["details"]
    assert any("-C linker=/opt/none/cc" in d for d in details) and any("-fuse-ld=/opt/none/mold" in d for d in details)


def test_inherited_jobs_above_what_memory_allows(cli, project, tmp_path):
    small = tmp_path / "small.json"
    small.write_text(json.dumps(LOW_MEMORY_LAPTOP))  # 6 GiB available: 3 jobs at 1792 MiB
    problem = run_doctor(cli, project, small, {"CARGO_BUILD_JOBS": "16"})["jobs-over-memory"]
    assert "CARGO_BUILD_JOBS=16 is inherited" in problem["message"] and "fits 3" in problem["message"]
    assert "jobs-over-memory" not in run_doctor(cli, project, small, {"CARGO_BUILD_JOBS": "3"})
    # A larger memory budget per job lowers what fits.
    found = run_doctor(cli, project, small, {"CARGO_BUILD_JOBS": "3", "BUILDPOLICY_MIB_PER_JOB": "4096"})
    assert "fits 1" in found["jobs-over-memory"]["message"]
    # The jobs knob replaces the inherited value: nothing inherited is used, nothing to report.
    assert "jobs-over-memory" not in run_doctor(cli, project, small, {"CARGO_BUILD_JOBS": "16", "BUILDPOLICY_JOBS": "2"})


def _evaluate(project, base_env, env=None, argv=("cargo", "build")):
    environ = dict(base_env, **(env or {}))
    return evaluate(Request(cwd=project, environ=environ, command="exec", cargo_argv=tuple(argv),
                            fact_overrides=dict(ROOMY), hermetic=True))


def test_flags_changed_since_the_last_build(cli, project, base_env, roomy):
    first = _evaluate(project, base_env)
    target = fingerprints.target_dir_for(first)
    assert target == project / "target"
    record = fingerprints.record_build_flags(first)
    assert record is not None and record.parent == Path(base_env["XDG_STATE_HOME"]) / "buildpolicy" / "fingerprints"
    assert json.loads(record.read_text())["target_dir"] == str(project / "target")

    same = _evaluate(project, base_env)
    assert doctor.check_flags_changed(same, target) == []
    changed = _evaluate(project, base_env, {"CARGO_PROFILE_DEV_OPT_LEVEL": "1", "RUSTFLAGS": "-C debuginfo=0"})
    [problem] = doctor.check_flags_changed(changed, target)
    assert problem.check == "flags-changed" and "profile dev" in problem.message
    assert "CARGO_PROFILE_DEV_OPT_LEVEL: last build unset, now '1'" in problem.details
    assert any(d.startswith("RUSTFLAGS: last build unset") for d in problem.details)
    # Another profile or another target directory is another fingerprint.
    release = _evaluate(project, base_env, {"RUSTFLAGS": "-C debuginfo=0"}, ("cargo", "build", "--release"))
    assert doctor.check_flags_changed(release, target) == []
    # Through the command line too (a changed linker variable: relinks).
    found = run_doctor(cli, project, roomy, {"CARGO_PROFILE_DEV_OPT_LEVEL": "1"}, "--", "cargo", "build")
    assert "flags-changed" in found and "CARGO_PROFILE_DEV_OPT_LEVEL" in " ".join(found["flags-changed"]["details"])


def test_corrupt_fingerprint_is_ignored(project, base_env):
    result = _evaluate(project, base_env)
    path = fingerprints.record_build_flags(result)
    path.write_text("{broken")
    assert fingerprints.last_build_flags(result.paths.state_dir, result.profile, project / "target") is None
    assert doctor.check_flags_changed(result, project / "target") == []


def test_target_dir_resolution(project, base_env, tmp_path):
    write(project / "crates" / "a" / "Cargo.toml", '[package]\nname = "a"\nversion = "0.1.0"\n')
    write(project / "Cargo.toml", '[workspace]\nmembers = ["crates/a"]\n')
    member = project / "crates" / "a"
    result = evaluate(Request(cwd=member, environ=dict(base_env), cargo_argv=("cargo", "build"), fact_overrides={}, hermetic=True))
    assert fingerprints.target_dir_for(result) == project / "target"
    write(project / ".cargo" / "config.toml", '[build]\ntarget-dir = "out"\n')
    assert fingerprints.target_dir_for(result) == project / "out"
    env = evaluate(Request(cwd=member, environ=dict(base_env, CARGO_TARGET_DIR="/tmp/t"), cargo_argv=("cargo", "build"),
                           fact_overrides={}, hermetic=True))
    assert fingerprints.target_dir_for(env) == Path("/tmp/t")
    argv = evaluate(Request(cwd=member, environ=dict(base_env), cargo_argv=("cargo", "build", "--target-dir", "x"),
                            fact_overrides={}, hermetic=True))
    assert fingerprints.target_dir_for(argv) == member / "x"


def test_text_report_names_each_problem_and_fix(cli, project, tmp_path):
    small = tmp_path / "small.json"
    small.write_text(json.dumps(LOW_MEMORY_LAPTOP))
    proc = cli("doctor", "--facts", str(small), cwd=project, env={"CARGO_BUILD_JOBS": "16"})
    assert proc.returncode == 1
    assert proc.stdout.startswith("buildpolicy doctor: 1 problem(s) found\n\n[jobs-over-memory] CARGO_BUILD_JOBS=16")
    assert "\n  fix: unset CARGO_BUILD_JOBS" in proc.stdout


def test_unreadable_cargo_config_is_a_note_not_a_crash(cli, project, roomy):
    config = write(project / ".cargo" / "config.toml", "[build\n")
    proc = cli("doctor", "--facts", str(roomy), cwd=project)
    assert proc.returncode == 0 and f"{config}:1:" in proc.stderr and "Traceback" not in proc.stderr


def test_a_config_linker_overridden_by_the_variable_is_named(cli, project, roomy):
    config = write(project / ".cargo" / "config.toml", '[target.x86_64-unknown-linux-gnu]\nlinker = "cc"\n')
    found = run_doctor(cli, project, roomy, {f"{TRIPLE_VAR}_LINKER": "/usr/bin/clang"})
    details = found["linker-overridden"]["details"]
    assert details == [f"[target.x86_64-unknown-linux-gnu] linker = 'cc' in {config}:2 is overridden by "
                       f"{TRIPLE_VAR}_LINKER=/usr/bin/clang (your environment)"]
    assert "buildpolicy set linker system" in found["linker-overridden"]["fix"]
    # The same value, or no variable: nothing is overridden.
    assert "linker-overridden" not in run_doctor(cli, project, roomy, {f"{TRIPLE_VAR}_LINKER": "cc"})
    assert "linker-overridden" not in run_doctor(cli, project, roomy, {"BUILDPOLICY_LINKER": "system"})


def test_explain_names_the_config_linker_its_linker_decision_overrides(cli, project):
    write(project / ".cargo" / "config.toml", '[target.x86_64-unknown-linux-gnu]\nlinker = "cc"\n')
    report = json.loads(cli("explain", "--format", "json", cwd=project, check=True).stdout)
    linker = report["decisions"]["linker"]
    if linker["status"] not in ("mold", "lld") or f"{TRIPLE_VAR}_LINKER" not in report["env"]:
        pytest.skip(f"no fast linker is picked here ({linker['status']}): nothing overrides the file")
    assert "this overrides [target.x86_64-unknown-linux-gnu] linker = 'cc'" in linker["reason"]
    assert "buildpolicy set linker system" in linker["reason"]


def test_a_shell_whose_environment_predates_a_policy_edit_is_stale(cli, base_env, project, roomy):
    """Issue 13 item 7: `doctor` in a shell that applied `env` before a policy edit (direnv not
    reloaded, no prompt hook) says so, rather than only that the flags changed. Real bash:
    it evaluates `env`, the policy changes, then doctor runs in that same shell."""
    import shutil
    import subprocess
    import sys

    policy = write(project / "policies" / "p.toml", '[[rule]]\nid = "offline"\nenv = { CARGO_NET_OFFLINE = "true" }\n')
    write(project / "buildpolicy.toml", 'policies = ["policies"]\n')
    bp = f"{shlex_quote(sys.executable)} -m buildpolicy"
    script = (f'eval "$({bp} env --facts {roomy})" || exit 9\n'
              f'{bp} doctor --facts {roomy} --format json > before.json\n'
              f'printf \'%s\\n\' \'[[rule]]\' \'id = "offline"\' \'env = {{ CARGO_NET_OFFLINE = "false" }}\' > {policy}\n'
              f'{bp} doctor --facts {roomy} --format json > after.json\n'
              f'{bp} doctor --facts {roomy} > after.txt\n'
              f'{bp} doctor --facts {roomy} --set jobs=1 --format json -- cargo build --release > release.json\n'
              f'eval "$({bp} env --facts {roomy})" || exit 9\n'
              f'{bp} doctor --facts {roomy} --format json > reloaded.json\n')
    proc = subprocess.run([shutil.which("bash"), "-c", script], cwd=project, env=base_env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr

    def checks(name: str) -> dict:
        return {p["check"]: p for p in json.loads((project / name).read_text())["problems"]}

    assert "stale-shell" not in checks("before.json")
    stale = checks("after.json")["stale-shell"]
    assert stale["message"] == doctor.STALE_SHELL
    assert stale["details"] == ["CARGO_NET_OFFLINE: your shell has 'true'; `env` now gives 'false'"]
    assert "direnv reload" in stale["fix"]
    assert doctor.STALE_SHELL in (project / "after.txt").read_text()
    # Asked about another profile and knob, doctor still compares the shell with a plain `env`.
    assert "stale-shell" in checks("release.json")
    assert "stale-shell" not in checks("reloaded.json")


def test_a_variable_the_user_changed_after_env_is_not_stale(cli, project, roomy):
    write(project / "buildpolicy.toml", 'policies = ["p.toml"]\n')
    write(project / "p.toml", '[[rule]]\nid = "offline"\nenv = { CARGO_NET_OFFLINE = "true" }\n')
    exported = json.loads(cli("env", "--format", "json", "--facts", str(roomy), cwd=project, check=True).stdout)
    state = cli("env", "--facts", str(roomy), cwd=project, check=True).stdout
    record = next(line for line in state.splitlines() if "BUILDPOLICY_ENV_STATE" in line)
    value = record.partition("=")[2].strip("'")
    shell = {**exported["set"], "BUILDPOLICY_ENV_STATE": value}
    assert "stale-shell" not in run_doctor(cli, project, roomy, shell)
    assert "stale-shell" not in run_doctor(cli, project, roomy, {**shell, "CARGO_NET_OFFLINE": "mine"})
    write(project / "p.toml", '[[rule]]\nid = "offline"\nenv = { CARGO_NET_OFFLINE = "false" }\n')
    assert "stale-shell" in run_doctor(cli, project, roomy, shell)
    assert "stale-shell" not in run_doctor(cli, project, roomy, {**shell, "CARGO_NET_OFFLINE": "mine"})
