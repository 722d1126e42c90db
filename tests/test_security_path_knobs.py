"""Trust rule: knobs that name paths need ``allow`` when a project or pack sets them (issue 10, item 7).

``gate_lock`` names the file ``exec`` creates (with its parent directories),
locks, and whose ``<path>.holder`` it replaces and then deletes; ``remote_dir``
where trees are synced to (and deleted from) on the build host. From a project
or pack file — as a value, a declared default, an alias, or a rule setting
their ``BUILDPOLICY_*`` variable — they need ``buildpolicy allow``; until then
``exec`` runs nothing and other commands ignore the value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import write


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    write(root / "Cargo.toml", '[package]\nname = "demo"\nversion = "0.1.0"\n')
    write(root / "buildpolicy.toml", 'policies = ["policies"]\n')
    (root / "policies").mkdir()
    return root


@pytest.fixture
def fake_cargo(tmp_path, base_env) -> dict[str, str]:
    """A `cargo` first on PATH that only records that it ran."""
    bin_dir = tmp_path / "fakebin"
    write(bin_dir / "cargo", f'#!/bin/sh\ntouch "{tmp_path / "cargo-ran"}"\n').chmod(0o755)
    return {"PATH": f"{bin_dir}:{base_env['PATH']}"}


@pytest.fixture
def victim(tmp_path) -> Path:
    """A file of the user's that the attack's lock path points next to."""
    target = write(tmp_path / "home-files" / "notes", "mine\n")
    write(target.with_name("notes.holder"), "my other file\n")
    return target


def _unharmed(victim: Path, tmp_path: Path) -> None:
    assert victim.with_name("notes.holder").read_text() == "my other file\n"
    assert not (tmp_path / "made" / "by" / "the" / "repo").exists()
    assert not (tmp_path / "cargo-ran").exists()


@pytest.mark.parametrize("how", ["value", "default", "rule"])
def test_an_untrusted_gate_lock_creates_replaces_and_deletes_nothing(cli, project, fake_cargo, victim, tmp_path, how):
    deep = tmp_path / "made" / "by" / "the" / "repo" / "lock"
    if how == "value":
        write(project / "buildpolicy.toml", f'policies = ["policies"]\n[knobs]\ngate_lock = "{victim}"\n')
        where, what = f"{project / 'buildpolicy.toml'}:3:1", "knob gate_lock is set here"
    elif how == "default":
        write(project / "policies" / "gate.toml", f'[knobs.gate_lock]\ndefault = "{deep}"\n')
        where, what = f"{project / 'policies' / 'gate.toml'}:1:8", "knob gate_lock is set here"
    else:
        write(project / "policies" / "gate.toml", f'[[rule]]\nid = "gate"\nenv = {{ BUILDPOLICY_GATE_LOCK = "{deep}" }}\n')
        where, what = f"{project / 'policies' / 'gate.toml'}:3:9", "rule 'gate' sets BUILDPOLICY_GATE_LOCK"
    proc = cli("exec", "--", "cargo", "build", cwd=project, env=fake_cargo)
    assert proc.returncode == 2, proc.stderr
    assert f"{where}: {what}" in proc.stderr and "buildpolicy allow" in proc.stderr
    _unharmed(victim, tmp_path)
    # The gate is taken by `exec` only, but even a dry run and explain must not take the value.
    if how != "rule":
        plan = json.loads(cli("explain", "--format", "json", "--", "cargo", "build", cwd=project, check=True).stdout)
        assert plan["knobs"]["gate_lock"]["value"] is None
        assert any("knob gate_lock is set here" in warning for warning in plan["warnings"])
    _unharmed(victim, tmp_path)


def test_an_allowed_gate_lock_is_used(cli, project, fake_cargo, tmp_path):
    lock = tmp_path / "team-gate" / "sub" / "gate.lock"
    write(project / "buildpolicy.toml", f'policies = ["policies"]\n[knobs]\ngate_lock = "{lock}"\n')
    cli("allow", "-q", cwd=project, check=True)
    proc = cli("exec", "--", "cargo", "build", cwd=project, env=fake_cargo)
    assert proc.returncode == 0, proc.stderr
    assert lock.exists() and (tmp_path / "cargo-ran").exists()


def test_aliases_for_path_knobs_need_allow(cli, project):
    profile = write(project / "buildpolicy.toml",
                    'policies = ["policies"]\n[knobs.gate_lock]\naliases = ["OLD_GATE_FILE"]\n'
                    '[knobs.remote_ssh_config]\naliases = ["OLD_SSH_CONFIG"]\n')
    proc = cli("env", cwd=project)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"{profile}:3:12: knob gate_lock gets the environment name OLD_GATE_FILE here" in proc.stderr
    assert f"{profile}:5:12: knob remote_ssh_config gets the environment name OLD_SSH_CONFIG here" in proc.stderr
    # Inspecting works, without the alias: the user's OLD_GATE_FILE does not become the knob.
    plan = json.loads(cli("explain", "--format", "json", cwd=project, env={"OLD_GATE_FILE": "/tmp/x"}, check=True).stdout)
    assert plan["knobs"]["gate_lock"]["value"] is None


def test_remote_dir_from_a_project_needs_allow(cli, project):
    profile = write(project / "buildpolicy.toml", 'policies = ["policies"]\n[knobs]\nremote_dir = "/"\n')
    proc = cli("env", cwd=project)
    assert proc.returncode == 2
    assert f"{profile}:3:1: knob remote_dir is set here, which names the directory buildpolicy syncs into" in proc.stderr
