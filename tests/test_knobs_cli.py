"""Knobs at the terminal (issue 13 items 8 and 9), through the real CLI and a real shell:
``get``/``knobs``, what ``set``/``unset`` say, unknown ``BUILDPOLICY_`` variables, and
the severity rule (what the user typed is an error; inherited garbage a warning, once)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO_CARGO_TOML, write
from tests.test_hook import _require, start

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    write(root / "Cargo.toml", DEMO_CARGO_TOML)
    write(root / "src" / "main.rs", "fn main() {}\n")
    write(root / "buildpolicy.toml", '# the team\npolicies = ["policies"]\n\n[knobs]\nmib_per_job = 2048\n')
    write(root / "policies" / "project.toml", '[[rule]]\nid = "color"\nenv = { CARGO_TERM_COLOR = "always" }\n')
    return root


def test_unset_prints_values_as_typed_never_python_reprs(cli, project):
    cli("set", "jobs", "3", cwd=project, check=True)
    jobs = cli("unset", "jobs", cwd=project, check=True)
    assert "knob jobs is now unset (default of plugin jobs)" in jobs.stderr
    cli("set", "remote_hosts", "a,b", cwd=project, check=True)
    hosts = cli("unset", "remote_hosts", cwd=project, check=True)
    assert "knob remote_hosts is now none (default of plugin remote)" in hosts.stderr
    for proc in (jobs, hosts):
        assert "None" not in proc.stderr and "()" not in proc.stderr


def test_unset_of_an_unknown_name_is_exit_2_with_the_closest_knob(cli, project, home):
    typo = cli("unset", "jbos", cwd=project)
    assert typo.returncode == 2 and "unknown knob 'jbos'" in typo.stderr and "did you mean 'jobs'?" in typo.stderr
    nothing = cli("unset", "nosuch", cwd=project)
    assert nothing.returncode == 2 and "unknown knob 'nosuch'" in nothing.stderr
    # A declared knob without a value is still only a note, exit 0.
    assert cli("unset", "jobs", cwd=project).returncode == 0


def test_set_says_what_the_environment_still_decides(cli, project):
    replaced = cli("set", "jobs", "2", cwd=project, env={"CARGO_BUILD_JOBS": "5"})
    assert replaced.returncode == 0, replaced.stderr
    assert "CARGO_BUILD_JOBS='5' in this environment" in replaced.stderr
    assert "replace it with '2'" in replaced.stderr and "cargo run without buildpolicy still reads '5'" in replaced.stderr
    # The caller's linker variable is kept by the linker decision: said, naming it.
    triple = json.loads(cli("facts", "host.triple", "--format", "json", cwd=project, check=True).stdout)["host.triple"]
    linker_var = f"CARGO_TARGET_{triple.upper().replace('-', '_')}_LINKER"
    kept = cli("set", "linker", "system", cwd=project, env={linker_var: "gcc"})
    assert kept.returncode == 0
    assert f"decision linker is inherited:gcc in this environment: the caller's {linker_var} already" in kept.stderr
    # A higher layer (the knob's variable) still wins: said, naming it.
    wins = cli("set", "linker", "mold", cwd=project, env={"BUILDPOLICY_LINKER": "system"})
    assert wins.returncode == 0
    assert "knob linker is still system here: env $BUILDPOLICY_LINKER takes precedence" in wins.stderr


def test_set_and_unset_in_an_allowed_project_say_trust_is_revoked_and_how_to_allow(cli, project):
    cli("allow", cwd=project, check=True)
    edited = cli("set", "jobs", "2", "--layer", "project", cwd=project)
    assert edited.returncode == 0
    assert "no longer covers it" in edited.stderr and f"run: buildpolicy allow {project}" in edited.stderr
    status = cli("status", cwd=project, check=True).stdout
    assert "trust:      not allowed: 1 file(s) changed since `buildpolicy allow` (buildpolicy.toml)" in status
    cli("allow", str(project), cwd=project.parent, check=True)  # the command offered, run from elsewhere
    assert "trust:      allowed" in cli("status", cwd=project, check=True).stdout
    removed = cli("unset", "jobs", "--layer", "project", cwd=project)
    assert removed.returncode == 0 and "no longer covers it" in removed.stderr
    # Not allowed before: nothing is said about trust.
    assert "allow" not in cli("set", "jobs", "4", "--layer", "project", cwd=project).stderr


def test_get_and_knobs_show_value_and_source(cli, project, home):
    cli("set", "jobs", "3", cwd=project, check=True)
    user_file = home / "config" / "buildpolicy" / "knobs.toml"
    text = cli("get", "jobs", cwd=project, check=True).stdout
    assert text.startswith(f"jobs = 3  # user {user_file}:")
    assert cli("get", "jobs", "--format", "value", cwd=project, check=True).stdout == "3\n"
    data = json.loads(cli("get", "mib_per_job", "--format", "json", cwd=project, check=True).stdout)
    assert data["value"] == 2048 and data["source"]["layer"] == "project" and data["source"]["line"] == 5
    assert cli("get", "linker", cwd=project, env={"BUILDPOLICY_LINKER": "lld"}, check=True).stdout == \
        "linker = lld  # env $BUILDPOLICY_LINKER\n"
    typo = cli("get", "jbos", cwd=project)
    assert typo.returncode == 2 and "did you mean 'jobs'?" in typo.stderr
    listing = cli("knobs", cwd=project, check=True).stdout.splitlines()
    assert listing[0].split() == ["knob", "value", "source"]
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in listing[1:] if not line.startswith(" ")}
    assert rows["jobs"] == ["3", f"user {user_file}:6:1"]
    assert rows["remote_hosts"][0] == "none" and rows["features"][0] == "unset"
    table = json.loads(cli("knobs", "--format", "json", cwd=project, check=True).stdout)
    assert table["jobs"]["value"] == 3 and table["jobs"]["variables"] == ["BUILDPOLICY_JOBS"]
    assert table["remote_hosts"]["value"] == [] and table["mib_per_job"]["source"]["layer"] == "project"


def test_typed_bad_values_are_errors_with_positions(cli, project):
    bad_file = write(project / "policies" / "knobs.toml", '[knobs]\njobs = "four"\n')
    check = cli("check", cwd=project)
    assert check.returncode == 1 and f"{bad_file}:2:8: knob 'jobs': bad value 'four'" in check.stderr
    located = json.loads(cli("check", "--format", "json", cwd=project).stdout)
    assert located["ok"] is False
    assert located["problems"][0]["file"] == str(bad_file) and located["problems"][0]["line"] == 2
    assert located["problems"][0]["col"] == 8 and "'four'" in located["problems"][0]["message"]
    for command in (("env",), ("explain", "jobs"), ("exec", "--dry-run", "--", "cargo", "build")):
        proc = cli(*command, cwd=project)
        assert proc.returncode == 2 and f"{bad_file}:2:8" in proc.stderr and proc.stdout == "", command
    bad_file.unlink()
    typed = cli("env", "--set", "jobs=abc", cwd=project)
    assert typed.returncode == 2 and typed.stdout == "" and "--set jobs=abc" in typed.stderr


def test_a_profile_cargo_does_not_have_is_an_error_like_cargo(cli, project):
    missing = cli("env", "--profile", "nonexist", cwd=project)
    assert missing.returncode == 2 and missing.stdout == ""
    assert "--profile nonexist: profile `nonexist` is not defined" in missing.stderr
    assert "bench, dev, doc, release, release-lto, selfdev, test" in missing.stderr
    close = cli("explain", "--profile", "relese", cwd=project)
    assert close.returncode == 2 and "did you mean `release`?" in close.stderr
    for profile in ("selfdev", "release-lto", "release", "test", "bench", "doc"):
        assert cli("env", "--profile", profile, cwd=project).returncode == 0, profile
    # A cargo command line's own --profile is cargo's to judge.
    assert cli("env", "--", "cargo", "build", "--profile", "nonexist", cwd=project).returncode == 0
    profile = project / "buildpolicy.toml"
    profile.write_text(profile.read_text().replace("policies =", 'default_profile = "relese"\npolicies ='))
    env = cli("env", cwd=project)
    assert env.returncode == 2 and env.stdout == ""
    assert f"{profile}:2:19: default_profile: profile `relese` is not defined (did you mean `release`?" in env.stderr
    assert cli("check", cwd=project).returncode == 1


def test_inherited_garbage_warns_and_explain_names_what_was_ignored(cli, project):
    env = {"BUILDPOLICY_JOBS": "four", "CARGO_BUILD_JOBS": "abc", "BUILDPOLICY_REPLAY": "off"}
    proc = cli("env", cwd=project, env=env)
    assert proc.returncode == 0 and "export CARGO_BUILD_JOBS=" in proc.stdout
    assert "bad value 'four' from $BUILDPOLICY_JOBS" in proc.stderr and "CARGO_BUILD_JOBS='abc'" in proc.stderr
    explained = cli("explain", "jobs", cwd=project, env=env, check=True).stdout
    assert "ignored: knob 'jobs': bad value 'four' from $BUILDPOLICY_JOBS" in explained
    assert "ignored: inherited CARGO_BUILD_JOBS='abc'" in explained
    assert "ignored" in cli("get", "jobs", cwd=project, env=env, check=True).stdout


def test_unknown_buildpolicy_variable_warns_with_did_you_mean_once_at_the_prompt(cli, project):
    env = {"BUILDPOLICY_LINKR": "mold", "BUILDPOLICY_REPLAY": "off"}  # every run evaluates in full
    first = cli("env", cwd=project, env=env)
    assert first.returncode == 0
    expected = "buildpolicy: warning: ignoring $BUILDPOLICY_LINKR: no knob reads it (did you mean BUILDPOLICY_LINKER?)"
    assert expected in first.stderr and "mold" not in first.stderr  # the value may be a secret: not shown
    again = cli("env", cwd=project, env=env)
    assert again.returncode == 0 and "BUILDPOLICY_LINKR" not in again.stderr
    # explain and exec say it every time.
    assert "BUILDPOLICY_LINKR" in cli("explain", cwd=project, env=env, check=True).stdout
    assert "BUILDPOLICY_LINKR" in cli("exec", "--dry-run", "--", "cargo", "build", cwd=project, env=env).stderr
    # Another situation (another variable) is said, once.
    other = dict(env, BUILDPOLICY_SCCACH="off")
    assert "BUILDPOLICY_SCCACH" in cli("env", cwd=project, env=other).stderr
    assert "BUILDPOLICY_" not in cli("env", cwd=project, env=other).stderr
    # A team's own switch that a rule reads as env.BUILDPOLICY_X is no typo.
    write(project / "policies" / "fast.toml",
          '[[rule]]\nid = "fast"\nwhen = "env.BUILDPOLICY_FAST == \'1\'"\nenv = { CARGO_PROFILE_DEV_DEBUG = "0" }\n')
    assert "$BUILDPOLICY_FAST" not in cli("explain", cwd=project, env={"BUILDPOLICY_FAST": "1"}, check=True).stdout


def test_the_prompt_hook_says_an_unknown_variable_once(tmp_path, base_env, home, project):
    _require("bash")
    bin_dir = tmp_path / "bin"
    write(bin_dir / "buildpolicy", f'#!/bin/sh\nexec "{sys.executable}" -m buildpolicy "$@"\n').chmod(0o755)
    env = dict(base_env, PATH=f"{bin_dir}:{base_env['PATH']}", TERM="dumb", PYTHONPATH=str(REPO))
    shell = start("bash", env, home, project)
    try:
        shell.run("export BUILDPOLICY_LINKR=mold")
        shell.run("true")
        shell.run("touch policies/project.toml")  # an edit: the next prompt evaluates in full
        shell.run("true")
        terminal = shell.output.decode(errors="replace")
    finally:
        shell.close()
    assert terminal.count("ignoring $BUILDPOLICY_LINKR") == 1, terminal
    assert "did you mean BUILDPOLICY_LINKER?" in terminal
