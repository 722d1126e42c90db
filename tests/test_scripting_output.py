"""Output for scripts and a glance (issue 13 item 12), through the real CLI: ``check``/``test
--format json``, ``log --since/--project/--all`` and one run, ``allow``/``deny PATH``, ``status``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import DEMO_CARGO_TOML, write


def make_project(root: Path) -> Path:
    write(root / "Cargo.toml", DEMO_CARGO_TOML)
    write(root / "src" / "main.rs", "fn main() {}\n")
    write(root / "buildpolicy.toml", 'policies = ["policies"]\n')
    write(root / "policies" / "tool.toml", '[[rule]]\nid = "tool"\nenv = { MY_TOOL_HOME = "/opt/tool" }\n')
    return root


@pytest.fixture
def project(tmp_path) -> Path:
    return make_project(tmp_path / "proj")


@pytest.fixture
def fake_cargo(tmp_path, base_env) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    write(bin_dir / "cargo", "#!/bin/sh\nexit ${FAKE_EXIT:-0}\n").chmod(0o755)
    return {"PATH": f"{bin_dir}:{base_env['PATH']}"}


def test_check_format_json_locates_every_problem(cli, project):
    bad = write(project / "policies" / "bad.toml", '[[rule]]\nid = "x"\nwhen = "memory.totl > 1"\n')
    proc = cli("check", "--format", "json", cwd=project)
    assert proc.returncode == 1 and proc.stderr == ""
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    [problem] = report["problems"]
    assert (problem["file"], problem["line"], problem["col"]) == (str(bad), 3, 9)
    assert "unknown fact 'memory.totl'" in problem["message"] and problem["detail"][-1].strip() == "^"
    bad.unlink()
    cli("allow", cwd=project, check=True)
    good = json.loads(cli("check", "--format", "json", cwd=project, check=True).stdout)
    assert good["ok"] is True and good["problems"] == [] and good["rules"] >= 1
    # What would need `allow` in a project: a located warning.
    outside = json.loads(cli("check", "--format", "json", str(project / "policies"), cwd=project, check=True).stdout)
    assert outside["warnings"][0]["file"] == str(project / "policies" / "tool.toml")
    assert outside["warnings"][0]["line"] == 3
    assert cli("check", "--format", "yaml", cwd=project).returncode == 2


def test_test_format_json_reports_each_case(cli, project):
    cases = write(project / "policies" / "tests" / "cases.toml",
                  '[[case]]\nname = "tool home"\nexpect.env = { MY_TOOL_HOME = "/opt/tool" }\n\n'
                  '[[case]]\nname = "wrong"\nexpect.env = { MY_TOOL_HOME = "/elsewhere" }\n')
    proc = cli("test", "--format", "json", cwd=project)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert (report["ok"], report["passed"], report["failed"]) == (False, 1, 1)
    ok, wrong = report["cases"]
    assert ok == {"name": "tool home", "file": str(cases), "line": 1, "passed": True, "mismatches": []}
    assert wrong["line"] == 5 and wrong["passed"] is False
    assert wrong["mismatches"][0]["key"] == "MY_TOOL_HOME" and wrong["mismatches"][0]["expected"] == "'/elsewhere'"
    assert wrong["mismatches"][0]["actual"] == "'/opt/tool'"
    cases.write_text('[[case]]\nname = "broken"\nexpect.nope = 1\n')
    broken = cli("test", "--format", "json", cwd=project)
    assert broken.returncode == 2
    problem = json.loads(broken.stdout)["problems"][0]
    assert problem["file"] == str(cases) and problem["line"] == 3


def test_log_scopes_runs_by_project_and_time_and_shows_one_run(cli, tmp_path, project, fake_cargo, base_env):
    other = make_project(tmp_path / "other")
    for where in (project, other):
        cli("allow", cwd=where, check=True)
    cli("exec", "-q", "--", "cargo", "build", cwd=project, env=fake_cargo, check=True)
    failed = cli("exec", "-q", "--", "cargo", "test", cwd=project / "src", env=dict(fake_cargo, FAKE_EXIT="3"))
    assert failed.returncode == 3
    cli("exec", "-q", "--", "cargo", "build", "--release", cwd=other, env=fake_cargo, check=True)

    mine = json.loads(cli("log", "--format", "json", cwd=project / "src", check=True).stdout)
    assert mine["project"] == str(project) and mine["runs"] == 2
    assert [run["action"] for run in mine["recent"]] == ["build", "test"]
    assert {run["workspace"] for run in mine["recent"]} == {str(project)}
    theirs = json.loads(cli("log", "--format", "json", "--project", str(other), cwd=project, check=True).stdout)
    assert theirs["runs"] == 1 and theirs["recent"][0]["profile"] == "release"
    every = json.loads(cli("log", "--format", "json", "--all", cwd=tmp_path, check=True).stdout)
    assert every["project"] is None and every["runs"] == 3
    assert json.loads(cli("log", "--format", "json", "--all", "--since", "1h", cwd=tmp_path).stdout)["runs"] == 3
    assert json.loads(cli("log", "--format", "json", "--all", "--since", "2999-01-01", cwd=tmp_path).stdout)["runs"] == 0
    bad_since = cli("log", "--since", "yesterday", cwd=project)
    assert bad_since.returncode == 2 and "expected a duration" in bad_since.stderr

    text = cli("log", cwd=project, check=True).stdout
    assert "2 run(s)" in text and f"for {project}" in text and "recent runs" in text
    run_id = mine["recent"][1]["id"]
    assert run_id in text
    shown = cli("log", run_id[:6], cwd=project, check=True).stdout
    assert shown.startswith(f"run {run_id}") and "exit 3" in shown and "command:      cargo test" in shown
    assert f"directory:    {project / 'src'}" in shown and "decisions:" in shown
    assert json.loads(cli("log", "last", "--format", "json", cwd=project, check=True).stdout)["id"] == run_id
    unknown = cli("log", "ffffffffff", cwd=project)
    assert unknown.returncode == 2 and "no logged run has the id" in unknown.stderr


def test_allow_and_deny_take_a_path(cli, tmp_path, project):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert cli("env", cwd=project).returncode == 2  # MY_TOOL_HOME needs trust
    allowed = cli("allow", str(project / "src"), cwd=elsewhere)  # a directory below the project
    assert allowed.returncode == 0 and f"allowed {project / 'buildpolicy.toml'}" in allowed.stdout
    assert cli("env", cwd=project).returncode == 0
    denied = cli("deny", str(project / "buildpolicy.toml"), cwd=elsewhere)
    assert denied.returncode == 0 and "no longer trusted" in denied.stdout
    assert cli("env", cwd=project).returncode == 2
    for command in ("allow", "deny"):
        missing = cli(command, str(tmp_path / "nope"), cwd=elsewhere)
        assert missing.returncode == 2 and "does not exist" in missing.stderr
        bare = cli(command, str(elsewhere), cwd=project)
        assert bare.returncode == 2 and f"no buildpolicy.toml in {elsewhere}" in bare.stderr


def test_status_in_five_lines(cli, tmp_path, project, fake_cargo, base_env):
    def status(**env) -> list[str]:
        proc = cli("status", cwd=project, env=env, check=True)
        lines = proc.stdout.splitlines()
        assert len(lines) == 5 and [line.split(":")[0] for line in lines] == [
            "project", "trust", "profile", "replay", "last build"], proc.stdout
        return lines

    lines = status()
    assert lines[0] == f"project:    {project}"
    assert lines[1].startswith("trust:      not allowed; 1 setting(s) need it")
    assert lines[2].startswith("profile:    dev (cargo's default")
    assert lines[3].startswith("replay:     no record")
    assert lines[4].startswith("last build: none logged")
    cli("allow", cwd=project, check=True)
    cli("env", "--shell", "bash", "--hook", cwd=project, check=True)  # what the prompt hook runs
    cli("exec", "-q", "--", "cargo", "build", cwd=project, env=fake_cargo, check=True)
    lines = status()
    assert lines[1] == "trust:      allowed"
    assert lines[3] == "replay:     warm: the next `buildpolicy env --shell bash --hook` here replays its recorded output"
    assert " build dev  ok " in lines[4]
    assert status(BUILDPOLICY_REPLAY="off")[3].startswith("replay:     off")
    (project / "policies" / "tool.toml").write_text('[[rule]]\nid = "tool"\nenv = { MY_TOOL_HOME = "/opt/t2" }\n')
    lines = status()
    assert lines[1].startswith("trust:      not allowed: 1 file(s) changed since `buildpolicy allow` (tool.toml)")
    assert lines[3].startswith("replay:     stale")
    data = json.loads(cli("status", "--format", "json", cwd=project, check=True).stdout)
    assert data["trust"]["allowed"] is False and data["trust"]["changed"] == [str(project / "policies" / "tool.toml")]
    assert data["profile"]["name"] == "dev" and data["last_build"]["action"] == "build"
    (project / "buildpolicy.toml").write_text('policies = ["policies"\n')
    lines = cli("status", cwd=project, check=True).stdout.splitlines()
    assert len(lines) == 5 and "cannot tell: the policies do not load" in lines[1]
    assert os.path.isdir(project)
