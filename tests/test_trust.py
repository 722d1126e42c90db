"""Trust (DESIGN §9): project and pack files may set build variables; anything else needs `allow`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from buildpolicy.policy import trust
from buildpolicy.engine.pipeline import Request, evaluate
from buildpolicy.errors import BuildpolicyError
from tests.conftest import write


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    write(root / "buildpolicy.toml", 'policies = ["policies"]\n')
    (root / "policies").mkdir()
    return root


EVIL = ('[[rule]]\nid = "hook"\nenv = { BASH_ENV = "/tmp/evil.sh", CARGO_TERM_COLOR = "always" }\n'
        'unset = ["RUSTC_WRAPPER"]\n')


@pytest.mark.parametrize("name", [
    "CARGO_TERM_COLOR", "CARGO_PROFILE_DEV_DEBUG", "RUSTC_WRAPPER", "RUSTC", "RUSTFLAGS", "RUSTDOCFLAGS",
    "RUSTUP_TOOLCHAIN", "SCCACHE_DIR", "TMPDIR", "CC", "CC_x86_64_unknown_linux_gnu", "CXX", "AR", "CFLAGS",
    "CXXFLAGS_x86_64", "MAKEFLAGS", "CMAKE_GENERATOR", "NUM_JOBS",
])
def test_build_variables_are_safe(name):
    assert trust.is_safe_name(name) and trust.is_safe_name_template(name)


@pytest.mark.parametrize("name", ["PATH", "LD_PRELOAD", "BASH_ENV", "PROMPT_COMMAND", "HOME", "CARGO", "RUSTFLAGSX",
                                  "cargo_home", "SSH_AUTH_SOCK", "PYTHONPATH",
                                  # knob variables configure buildpolicy itself (issue 10, item 2)
                                  "BUILDPOLICY_JOBS"])
def test_other_variables_are_not(name):
    assert not trust.is_safe_name(name) and not trust.is_safe_name_template(name)


def test_templates_are_checked_statically():
    assert trust.is_safe_name_template("CARGO_PROFILE_${cargo.profile_env}_INCREMENTAL")
    assert trust.is_safe_name_template("CC_${host.triple}")
    assert not trust.is_safe_name_template("${env.NAME}")  # could become PATH
    assert not trust.is_safe_name_template("C${env.X}")  # could become CPATH... or anything starting with C
    assert not trust.is_safe_name_template("LD_${env.X}")


def test_env_refuses_until_allowed_and_any_edit_needs_a_new_allow(cli, project):
    policy = write(project / "policies" / "hooks.toml", EVIL)
    refused = cli("env", cwd=project)
    assert refused.returncode == 2 and refused.stdout == ""
    assert f"{policy}:3:9: rule 'hook' sets BASH_ENV, which is not a build variable" in refused.stderr
    assert "`buildpolicy allow`" in refused.stderr and "Traceback" not in refused.stderr
    # Unsetting RUSTC_WRAPPER is a build variable: not mentioned.
    assert "RUSTC_WRAPPER" not in refused.stderr
    assert cli("exec", "--", "true", cwd=project).returncode == 2

    allowed = cli("allow", cwd=project)
    assert allowed.returncode == 0 and "BASH_ENV" in allowed.stdout
    ok = cli("env", cwd=project, check=True)
    assert "export BASH_ENV='/tmp/evil.sh'" in ok.stdout.splitlines()

    policy.write_text(EVIL.replace("evil.sh", "worse.sh"))
    edited = cli("env", cwd=project)
    assert edited.returncode == 2 and edited.stdout == ""
    assert "changed since `buildpolicy allow`" in edited.stderr and str(policy) in edited.stderr
    # A new policy file is an edit too.
    cli("allow", "-q", cwd=project, check=True)
    assert cli("env", cwd=project).returncode == 0
    write(project / "policies" / "more.toml", '[[rule]]\nid = "more"\nenv = { CARGO_TERM_VERBOSE = "true" }\n')
    assert cli("env", cwd=project).returncode == 2

    cli("allow", "-q", cwd=project, check=True)
    denied = cli("deny", cwd=project)
    assert denied.returncode == 0 and "no longer trusted" in denied.stdout
    assert cli("env", cwd=project).returncode == 2
    assert "nothing to revoke" in cli("deny", cwd=project, check=True).stdout


def test_build_variables_need_no_allow(cli, project):
    write(project / "policies" / "build.toml",
          '[[rule]]\nid = "b"\nenv = { CARGO_TERM_COLOR = "always", "CARGO_PROFILE_${cargo.profile_env}_DEBUG" = "1", '
          'RUSTDOCFLAGS = "-D warnings", SCCACHE_CACHE_SIZE = "5G" }\nunset = ["RUSTC_WRAPPER", "CARGO_BUILD_TARGET"]\n')
    proc = cli("env", cwd=project, check=True)
    assert "export CARGO_PROFILE_DEV_DEBUG='1'" in proc.stdout.splitlines()
    assert not (Path(cli.env["XDG_STATE_HOME"]) / "buildpolicy" / "trust").exists()


def test_unset_of_a_non_build_variable_needs_allow(cli, project):
    write(project / "policies" / "u.toml", '[[rule]]\nid = "u"\nunset = ["CARGO_HOME", "PATH"]\n')
    proc = cli("env", cwd=project)
    assert proc.returncode == 2
    assert f"{project / 'policies' / 'u.toml'}:3:24: rule 'u' unsets PATH" in proc.stderr


def test_dynamic_name_needs_allow(cli, project):
    write(project / "policies" / "d.toml", '[[rule]]\nid = "d"\nenv = { "${env.WHICH}" = "x" }\n')
    proc = cli("env", cwd=project)
    assert proc.returncode == 2 and "a name made from facts that could be any variable" in proc.stderr


def test_user_and_site_layers_are_trusted(cli, project, home):
    write(home / "config" / "buildpolicy" / "mine.toml", '[[rule]]\nid = "u"\nenv = { LESS = "-R" }\n')
    write(home / "site" / "site.toml", '[[rule]]\nid = "s"\nenv = { PAGER = "less" }\n')
    lines = cli("env", cwd=project, check=True).stdout.splitlines()
    assert "export LESS='-R'" in lines and "export PAGER='less'" in lines


def test_pack_layer_needs_trust_too(cli, project, tmp_path):
    pack = write(tmp_path / "shared" / "p.toml", '[[rule]]\nid = "p"\nenv = { LD_PRELOAD = "/tmp/x.so" }\n')
    write(project / "buildpolicy.toml", 'extends = ["../shared"]\n')
    proc = cli("env", cwd=project)
    assert proc.returncode == 2 and f"{pack}:3:9: rule 'p' sets LD_PRELOAD" in proc.stderr
    cli("allow", "-q", cwd=project, check=True)
    assert "export LD_PRELOAD='/tmp/x.so'" in cli("env", cwd=project, check=True).stdout
    pack.write_text(pack.read_text().replace("x.so", "y.so"))
    assert cli("env", cwd=project).returncode == 2  # pack files are part of the hash


PLUGIN = """\
from pathlib import Path
from buildpolicy import hookimpl
from buildpolicy.model import Decision

Path(__file__).with_name("ran").write_text("imported")

@hookimpl
def buildpolicy_decide(ctx):
    return Decision("team", 1, "ok", "team plugin", set_env={"CARGO_TERM_COLOR": "always"})
"""


def test_team_plugins_are_not_loaded_until_allowed(cli, project):
    write(project / "tools" / "teamplug.py", PLUGIN)
    write(project / "buildpolicy.toml", '# team\nplugin_paths = ["tools/teamplug.py"]\n')
    marker = project / "tools" / "ran"
    refused = cli("env", cwd=project)
    assert refused.returncode == 2
    assert f"{project / 'buildpolicy.toml'}:2:17: plugin_paths loads tools/teamplug.py" in refused.stderr
    # Inspecting is allowed, but the untrusted code does not run.
    explain = cli("explain", "--format", "json", cwd=project, check=True)
    report = json.loads(explain.stdout)
    assert "team" not in report["decisions"]
    assert any("not loaded until `buildpolicy allow`" in w for w in report["warnings"])
    assert not marker.exists()
    cli("allow", "-q", cwd=project, check=True)
    assert not marker.exists(), "allow itself must not run the code it trusts"
    assert "export CARGO_TERM_COLOR='always'" in cli("env", cwd=project, check=True).stdout
    assert marker.exists()
    # The plugin module is hashed too.
    marker.unlink()
    write(project / "tools" / "teamplug.py", PLUGIN + "# edited\n")
    assert cli("env", cwd=project).returncode == 2 and not marker.exists()


def test_sensitive_knob_values_need_trust(cli, project):
    write(project / "buildpolicy.toml", '[knobs]\nremote_ssh_config = "ssh_config"\n')
    proc = cli("env", cwd=project)
    assert proc.returncode == 2
    assert f"{project / 'buildpolicy.toml'}:2:1: knob remote_ssh_config is set here" in proc.stderr


def _policy_set(project, base_env):
    return evaluate(Request(cwd=project, environ=dict(base_env), command="explain", fact_overrides={}, hermetic=True)).policy_set


def test_warm_check_stats_and_hashes_only_after_a_change(project, base_env, monkeypatch):
    write(project / "policies" / "hooks.toml", EVIL)
    policy_set = _policy_set(project, base_env)
    state = Path(base_env["XDG_STATE_HOME"]) / "buildpolicy"
    assert trust.check(policy_set, state).trusted is False
    record = trust.allow(policy_set, state)
    data = json.loads(record.read_text())
    assert set(data["files"]) == {str(project / "buildpolicy.toml"), str(project / "policies" / "hooks.toml")}

    def no_hashing(path):
        raise AssertionError(f"hashed {path} although nothing changed")

    monkeypatch.setattr(trust, "_file_digest", no_hashing)
    assert trust.check(policy_set, state).trusted is True
    monkeypatch.undo()

    # Same content, new mtime (a checkout): hashed once, still trusted, record refreshed.
    policy = project / "policies" / "hooks.toml"
    os.utime(policy, ns=(1, 10**18))
    assert trust.check(policy_set, state).trusted is True
    monkeypatch.setattr(trust, "_file_digest", no_hashing)
    assert trust.check(policy_set, state).trusted is True


def test_corrupt_record_is_ignored_not_fatal(cli, project):
    write(project / "policies" / "hooks.toml", EVIL)
    cli("allow", "-q", cwd=project, check=True)
    records = list((Path(cli.env["XDG_STATE_HOME"]) / "buildpolicy" / "trust").glob("*.json"))
    assert len(records) == 1
    records[0].write_text("{not json")
    proc = cli("env", cwd=project)
    assert proc.returncode == 2 and "not trusted" in proc.stderr and "Traceback" not in proc.stderr
    cli("allow", "-q", cwd=project, check=True)
    assert cli("env", cwd=project).returncode == 0


def test_allow_needs_a_project_and_valid_files(cli, tmp_path, project):
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    proc = cli("allow", cwd=elsewhere)
    assert proc.returncode == 2 and "no buildpolicy.toml" in proc.stderr
    write(project / "policies" / "bad.toml", '[[rule]]\nid = "x"\nwhen = "os =="\n')
    bad = cli("allow", cwd=project)
    assert bad.returncode == 2 and "bad.toml:3:" in bad.stderr


def test_refusal_is_an_exit_2_error_in_process(project, base_env):
    write(project / "policies" / "hooks.toml", EVIL)
    with pytest.raises(BuildpolicyError) as info:
        evaluate(Request(cwd=project, environ=dict(base_env), command="env", fact_overrides={}, hermetic=True))
    assert info.value.exit_code == 2
    # `test` runs the project's own cases: trust is not enforced there.
    result = evaluate(Request(cwd=project, environ=dict(base_env), command="test", fact_overrides={}, hermetic=True))
    assert result.set_env["BASH_ENV"] == "/tmp/evil.sh"


def test_a_refusal_is_one_error_with_a_note_and_a_help(cli, project):
    """Issue 13 item 10: the refusal printed three `error:` lines, the last of which was the
    fix. Now: one error per untrusted item, then what changed as a `note:` and the fix as a
    cargo-style `help:`."""
    policy = write(project / "policies" / "hooks.toml", EVIL)
    refused = cli("env", cwd=project).stderr.splitlines()
    assert [line.startswith("buildpolicy: error: ") for line in refused] == [True, False]
    assert f"{policy}:3:9: rule 'hook' sets BASH_ENV" in refused[0]
    assert refused[1].startswith("  help: review them, then run `buildpolicy allow` in ")
    cli("allow", "-q", cwd=project, check=True)
    policy.write_text(EVIL.replace("evil.sh", "worse.sh"))
    edited = cli("env", cwd=project).stderr.splitlines()
    assert [line.split(":")[0] for line in edited] == ["buildpolicy", "  note", "  help"]
    assert edited[0].startswith("buildpolicy: error: ") and edited[1] == f"  note: changed since `buildpolicy allow`: {policy}"
    # `check` still lists everything as its problems.
    checked = cli("check", cwd=project)
    assert checked.returncode == 1 and "changed since `buildpolicy allow`" in checked.stderr
    assert "run `buildpolicy allow`" in checked.stderr
