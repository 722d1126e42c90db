"""Trust rule: a project's files cannot configure buildpolicy itself (issue 10, item 2).

``BUILDPOLICY_*`` variables are buildpolicy's own configuration (knob variables,
``BUILDPOLICY_SITE_DIR``, bookkeeping), not build variables: a project or pack
rule setting one needs ``buildpolicy allow``, and so does one setting a knob's
declared alias. ``BUILDPOLICY_ENV_STATE``, the record the next ``env`` restores
variables from, may not be set by any policy file at all, and a record that
names anything but build variables restores nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "repo"
    write(root / "buildpolicy.toml", 'policies = ["policies"]\n')
    (root / "policies").mkdir()
    return root


# What a cloned repository would put in its "site layer": every shell that loads it runs its hook.
EVIL_SITE = '[[rule]]\nid = "owned"\nenv = {{ PROMPT_COMMAND = "touch {marker}", LD_PRELOAD = "{repo}/evil.so" }}\n'


def test_a_rule_pointing_buildpolicy_site_dir_into_the_repo_is_refused(cli, project, tmp_path):
    marker = tmp_path / "prompt-command-ran"
    write(project / "fake-site" / "site.toml", EVIL_SITE.format(marker=marker, repo=project))
    policy = write(project / "policies" / "site.toml",
                   f'[[rule]]\nid = "site"\nenv = {{ BUILDPOLICY_SITE_DIR = "{project / "fake-site"}" }}\n')
    refused = cli("env", cwd=project)
    assert refused.returncode == 2 and refused.stdout == ""
    assert (f"{policy}:3:9: rule 'site' sets BUILDPOLICY_SITE_DIR, which configures buildpolicy itself, not the build"
            in refused.stderr)
    assert "buildpolicy allow" in refused.stderr
    # The attack's second step: a shell started by `exec` runs `env` at its prompt. `exec` refuses
    # first, so that shell never starts with the repo's site directory.
    inner = f"{sys.executable} -m buildpolicy env; touch {tmp_path / 'shell-ran'}"
    started = cli("exec", "--", "sh", "-c", inner, cwd=project)
    assert started.returncode == 2 and started.stdout == ""
    assert not (tmp_path / "shell-ran").exists() and not marker.exists()


def test_a_rule_setting_the_remote_ssh_config_variable_is_refused(cli, project, tmp_path):
    # `Match exec` in an ssh configuration runs a command when ssh reads it.
    write(project / "ssh_config", f'Match exec "touch {tmp_path / "ssh-ran"}"\n')
    policy = write(project / "policies" / "remote.toml",
                   '[[rule]]\nid = "remote"\nenv = { BUILDPOLICY_REMOTE_SSH_CONFIG = "ssh_config", BUILDPOLICY_REMOTE = "on" }\n')
    proc = cli("env", cwd=project)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"{policy}:3:9: rule 'remote' sets BUILDPOLICY_REMOTE_SSH_CONFIG" in proc.stderr
    col = policy.read_text().splitlines()[2].index("BUILDPOLICY_REMOTE =") + 1
    assert f"{policy}:3:{col}: rule 'remote' sets BUILDPOLICY_REMOTE," in proc.stderr
    assert not (tmp_path / "ssh-ran").exists()


def test_a_rule_setting_a_knob_alias_that_looks_like_a_build_variable_is_refused(cli, project):
    # The profile gives the linker knob a cargo-looking alias; a rule exporting it would set the knob
    # for the next `env` (and for every shell that inherits it).
    write(project / "buildpolicy.toml", 'policies = ["policies"]\n[knobs.linker]\naliases = ["CARGO_FAST_LINKER"]\n')
    policy = write(project / "policies" / "alias.toml",
                   '[[rule]]\nid = "alias"\nenv = { CARGO_FAST_LINKER = "system" }\n'
                   '[[rule]]\nid = "template"\nenv = { "CARGO_FAST_${cargo.profile_env}" = "system" }\n')
    proc = cli("env", cwd=project)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"{policy}:3:9: rule 'alias' sets CARGO_FAST_LINKER, the environment name of knob linker" in proc.stderr
    assert (f"{policy}:6:9: rule 'template' sets CARGO_FAST_${{cargo.profile_env}}, the environment name of knob linker "
            "(it can produce CARGO_FAST_LINKER)") in proc.stderr
    cli("allow", "-q", cwd=project, check=True)
    assert "export CARGO_FAST_LINKER='system'" in cli("env", cwd=project, check=True).stdout.splitlines()


def test_a_knob_alias_a_plugin_declares_is_a_knob_name_too(cli, project, tmp_path):
    # Aliases declared by installed plugins count like the profile's: the names come from the engine, not the file.
    write(project / "policies" / "alias.toml", '[[rule]]\nid = "alias"\nunset = ["CARGO_TEAM_SWITCH"]\n')
    plugin = write(tmp_path / "site-packages" / "teamknob.py",
                   "from buildpolicy import hookimpl\nfrom buildpolicy.model import KnobSpec\n"
                   "@hookimpl\ndef buildpolicy_declare_knobs():\n"
                   "    return [KnobSpec('team_switch', 'bool', default=False, aliases=('CARGO_TEAM_SWITCH',))]\n")
    code = ("import sys; sys.path.insert(0, %r)\n"
            "import teamknob\n"
            "from pathlib import Path\n"
            "from buildpolicy.engine.pipeline import Request, evaluate\n"
            "from buildpolicy.errors import BuildpolicyError\n"
            "import os\n"
            "try:\n"
            "    evaluate(Request(cwd=Path(%r), environ=dict(os.environ), extra_plugins=(('teamknob', teamknob),)))\n"
            "except BuildpolicyError as exc:\n"
            "    print(exc)\n") % (str(plugin.parent), str(project))
    out = subprocess.run([sys.executable, "-c", code], env=cli.env, capture_output=True, text=True, timeout=60)
    assert "rule 'alias' unsets CARGO_TEAM_SWITCH, the environment name of knob team_switch" in out.stdout, out.stderr


def test_no_policy_file_may_set_the_env_state_record_not_even_after_allow(cli, project, home):
    forged = json.dumps({"set": {}, "orig": {"LD_PRELOAD": "/tmp/evil.so", "BASH_ENV": "/tmp/evil.sh"}})
    policy = write(project / "policies" / "state.toml",
                   f"[[rule]]\nid = \"state\"\nenv = {{ BUILDPOLICY_ENV_STATE = '{forged}' }}\n"
                   '[[rule]]\nid = "unstate"\nunset = ["BUILDPOLICY_ENV_STATE"]\n')
    for fmt in ("github", "dotenv", "json", "sh"):
        proc = cli("env", "--format", fmt, cwd=project)
        assert proc.returncode == 2 and proc.stdout == "", fmt
        assert f"{policy}:3:9: rule 'state' sets BUILDPOLICY_ENV_STATE, the record `buildpolicy env` keeps" in proc.stderr
        assert f"{policy}:6:10: rule 'unstate' unsets BUILDPOLICY_ENV_STATE" in proc.stderr
    assert cli("allow", cwd=project).returncode == 2  # a file that cannot load cannot be allowed either
    # Trusted layers may not set it either.
    (project / "policies" / "state.toml").unlink()
    user = write(home / "config" / "buildpolicy" / "mine.toml",
                 f"[[rule]]\nid = \"mine\"\nenv = {{ BUILDPOLICY_ENV_STATE = '{forged}' }}\n")
    proc = cli("env", "--format", "github", cwd=project)
    assert proc.returncode == 2 and f"{user}:3:9: rule 'mine' sets BUILDPOLICY_ENV_STATE" in proc.stderr


def test_a_name_made_from_facts_cannot_become_the_env_state_record(cli, project, home):
    user = write(home / "config" / "buildpolicy" / "dyn.toml",
                 '[[rule]]\nid = "dyn"\nenv = { "${env.WHICH}" = "{}" }\n')
    proc = cli("env", "--format", "github", cwd=project, env={"WHICH": "BUILDPOLICY_ENV_STATE"})
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"{user}:3:9: rule 'dyn': '${{env.WHICH}}' became BUILDPOLICY_ENV_STATE" in proc.stderr


def _shell_after(cli, project, caller_env: dict[str, str], *names: str) -> dict[str, str]:
    """Evaluate `env`'s output in a real shell started with ``caller_env``; return ``names`` as it has them."""
    script = f'eval "$({sys.executable} -m buildpolicy env)" || exit 9\n' + "".join(
        f'printf "%s=%s\\0" {name} "${{{name}-<unset>}}"\n' for name in names)
    env = dict(cli.env, **caller_env)
    proc = subprocess.run(["sh", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return dict(item.split("=", 1) for item in proc.stdout.split("\0") if item)


def test_a_forged_env_state_record_restores_nothing_but_build_variables(cli, project, tmp_path):
    # A record that reached the environment some other way (a CI step's $GITHUB_ENV, a parent
    # shell): it claims buildpolicy had unset LD_PRELOAD and BASH_ENV, and replaced PATH, HOME
    # and the site directory. None of that may come back; a build variable it names still may.
    path = cli.env["PATH"]
    forged = {
        "set": {"PATH": _crc(path), "BUILDPOLICY_SITE_DIR": _crc(cli.env["BUILDPOLICY_SITE_DIR"])},
        "orig": {"LD_PRELOAD": "/tmp/evil.so", "BASH_ENV": "/tmp/evil.sh", "PATH": f"/tmp/evil:{path}",
                 "BUILDPOLICY_SITE_DIR": str(tmp_path / "repo-site"), "CARGO_TERM_COLOR": "always"},
    }
    seen = _shell_after(cli, project, {"BUILDPOLICY_ENV_STATE": json.dumps(forged)},
                        "LD_PRELOAD", "BASH_ENV", "PATH", "CARGO_TERM_COLOR")
    assert seen["LD_PRELOAD"] == "<unset>" and seen["BASH_ENV"] == "<unset>"
    assert seen["PATH"] == path
    assert seen["CARGO_TERM_COLOR"] == "always"  # a build variable the record says it unset: restored
    for fmt in ("github", "dotenv", "json"):
        out = cli("env", "--format", fmt, cwd=project, env={"BUILDPOLICY_ENV_STATE": json.dumps(forged)}, check=True)
        assert "evil" not in out.stdout and "repo-site" not in out.stdout, fmt


def _crc(value: str) -> str:
    from buildpolicy.engine.envstate import _digest

    return _digest(value)
