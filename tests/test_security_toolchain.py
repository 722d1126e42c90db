"""Trust rule: no binary a repository chose runs at the prompt (issue 10, item 1).

A clone's ``rust-toolchain[.toml]`` can point rustup at the repository's own
binaries: a ``path`` toolchain, a legacy file holding a path, or a custom
toolchain name linked to a directory. Probing ``rust.version`` through the
rustup proxy in that clone ran them. These tests use the machine's real rustup
and toolchains with a fake "evil" toolchain that leaves a marker when it runs.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import write
from tests.rustup import HOST, REAL_PROXY_DIR, REAL_RUSTUP_HOME, needs_rustup

pytestmark = needs_rustup

# A user-layer rule that depends on rust.version: the probe runs at every `env`.
VERSION_RULE = ('[[rule]]\nid = "new-rustc"\nwhen = "rust.version == \'1.2.3\'"\n'
                'env = { CARGO_TERM_VERBOSE = "true" }\n')


def executable(path: Path, text: str) -> Path:
    write(path, text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fake_toolchain(directory: Path, marker: Path, version: str) -> Path:
    """A toolchain directory whose rustc leaves ``marker`` and claims ``version``."""
    executable(directory / "bin" / "rustc", f'#!/bin/sh\ntouch "{marker}"\necho "rustc {version} (fake 2026-01-01)"\n')
    return directory


@pytest.fixture
def clone(tmp_path) -> Path:
    """A cloned repository (no buildpolicy.toml: nothing in it was ever allowed)."""
    root = tmp_path / "clone"
    write(root / "Cargo.toml", '[package]\nname = "clone"\nversion = "0.1.0"\n')
    return root


@pytest.fixture
def rust_env(base_env) -> dict[str, str]:
    """The caller's environment with the machine's real rustup (HOME is a private one)."""
    env = dict(base_env, RUSTUP_HOME=str(REAL_RUSTUP_HOME))
    env["PATH"] = f"{REAL_PROXY_DIR}:{env['PATH']}"
    return env


def _runs_nothing(cli, cwd: Path, env: dict[str, str], marker: Path, why: str = "not run") -> dict:
    """Run env, facts and explain at the prompt in ``cwd``; none may run the fake rustc,
    and explain says why rust.version is unknown (``why``). Returns the JSON facts."""
    proc = cli("env", "--set", "linker=system", cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists(), "env ran the repository's rustc"
    facts = cli("facts", "--format", "json", cwd=cwd, env=env, check=True)
    assert not marker.exists(), "facts ran the repository's rustc"
    explain = cli("explain", "--set", "linker=system", cwd=cwd, env=env, check=True)
    assert not marker.exists(), "explain ran the repository's rustc"
    assert "rust.version" in explain.stdout and why in explain.stdout, explain.stdout
    return json.loads(facts.stdout)


@pytest.mark.parametrize("form", ["toml-path", "toml-relative-path", "legacy-path"])
def test_a_path_toolchain_chosen_by_a_clone_never_runs(cli, clone, rust_env, tmp_path, form):
    marker = tmp_path / "evil-ran"
    evil = fake_toolchain(clone / "evil", marker, "9.9.9")
    if form == "toml-path":
        write(clone / "rust-toolchain.toml", f'[toolchain]\npath = "{evil}"\n')
    elif form == "toml-relative-path":
        write(clone / "rust-toolchain.toml", '[toolchain]\npath = "evil"\n')
    else:
        write(clone / "rust-toolchain", f"{evil}\n")
    # The attack is real: rustup itself runs the repository's binary here.
    if form != "toml-relative-path":
        direct = subprocess.run([str(REAL_PROXY_DIR / "rustc"), "--version"], cwd=clone, env=rust_env,
                                              capture_output=True, text=True, timeout=60)
        assert "9.9.9" in direct.stdout and marker.exists()
        marker.unlink()
    write(Path(rust_env["XDG_CONFIG_HOME"]) / "buildpolicy" / "version.toml", VERSION_RULE)

    facts = _runs_nothing(cli, clone, rust_env, marker)
    assert facts["rust.version"] is None
    text = cli("facts", "rust.version", cwd=clone, env=rust_env, check=True).stdout
    assert "rust-toolchain" in text and str(evil) in text and "`buildpolicy allow`" in text
    # From a subdirectory too: rustup walks up to the clone's file.
    (clone / "src").mkdir()
    _runs_nothing(cli, clone / "src", rust_env, marker)


def test_a_custom_toolchain_linked_elsewhere_is_not_run_for_a_clone(cli, clone, rust_env, tmp_path):
    marker = tmp_path / "evil-ran"
    evil = fake_toolchain(tmp_path / "elsewhere" / "evil", marker, "9.9.9")
    rustup_home = tmp_path / "rustup"
    (rustup_home / "toolchains").mkdir(parents=True)
    (rustup_home / "settings.toml").write_text(f'version = "12"\ndefault_toolchain = "stable-{HOST}"\n')
    (rustup_home / "toolchains" / "evil").symlink_to(evil)  # what `rustup toolchain link evil <dir>` makes
    (rustup_home / "toolchains" / f"stable-{HOST}").symlink_to(REAL_RUSTUP_HOME / "toolchains" / f"stable-{HOST}")
    write(clone / "rust-toolchain.toml", '[toolchain]\nchannel = "evil"\n')
    env = dict(rust_env, RUSTUP_HOME=str(rustup_home))

    facts = _runs_nothing(cli, clone, env, marker)
    assert facts["rust.version"] is None
    assert "custom toolchain evil, linked to" in cli("facts", "rust.version", cwd=clone, env=env, check=True).stdout


def test_an_installed_channel_pinned_by_a_clone_is_still_probed(cli, clone, rust_env):
    """Naming a toolchain rustup installed runs the user's own binaries: that stays a fact."""
    stable = REAL_RUSTUP_HOME / "toolchains" / f"stable-{HOST}" / "bin" / "rustc"
    expected = subprocess.run([str(stable), "--version"], capture_output=True, text=True,
                                            timeout=60).stdout.split()[1]
    write(clone / "rust-toolchain.toml", '[toolchain]\nchannel = "stable"\n')
    facts = json.loads(cli("facts", "rust.version", "--format", "json", cwd=clone, env=rust_env, check=True).stdout)
    assert facts["rust.version"] == expected


def test_an_allowed_project_may_choose_its_toolchain_and_deny_takes_it_back(cli, rust_env, tmp_path):
    project = tmp_path / "team"
    write(project / "buildpolicy.toml", "# team\n")
    marker = tmp_path / "team-rustc-ran"
    own = fake_toolchain(project / "toolchain", marker, "1.2.3")
    write(project / "rust-toolchain.toml", f'[toolchain]\npath = "{own}"\n')
    write(Path(rust_env["XDG_CONFIG_HOME"]) / "buildpolicy" / "version.toml", VERSION_RULE)

    before = cli("env", cwd=project, env=rust_env, check=True)
    assert not marker.exists() and "CARGO_TERM_VERBOSE" not in before.stdout
    cli("allow", "-q", cwd=project, env=rust_env, check=True)
    # The warm replay of the first `env` must not hide the change: allow rewrote the trust record.
    allowed = cli("env", cwd=project, env=rust_env, check=True)
    assert marker.exists() and "export CARGO_TERM_VERBOSE='true'" in allowed.stdout
    assert json.loads(cli("facts", "rust.version", "--format", "json", cwd=project, env=rust_env,
                          check=True).stdout)["rust.version"] == "1.2.3"

    marker.unlink()
    cli("deny", cwd=project, env=rust_env, check=True)
    denied = cli("env", cwd=project, env=rust_env, check=True)
    assert not marker.exists() and "CARGO_TERM_VERBOSE" not in denied.stdout


def test_a_rust_toolchain_file_above_the_allowed_project_is_not_covered_by_allow(cli, rust_env, tmp_path):
    marker = tmp_path / "evil-ran"
    evil = fake_toolchain(tmp_path / "evil", marker, "9.9.9")
    write(tmp_path / "rust-toolchain.toml", f'[toolchain]\npath = "{evil}"\n')  # e.g. in a shared /tmp
    project = tmp_path / "team"
    write(project / "buildpolicy.toml", "# team\n")
    cli("allow", "-q", cwd=project, env=rust_env, check=True)
    facts = _runs_nothing(cli, project, rust_env, marker)
    assert facts["rust.version"] is None


def test_a_rustc_in_a_relative_path_entry_is_not_run(cli, clone, rust_env, tmp_path):
    marker = tmp_path / "evil-ran"
    executable(clone / "rustc", f'#!/bin/sh\ntouch "{marker}"\necho "rustc 9.9.9 (evil)"\n')
    # Only `.` on PATH: the clone's ./rustc is the one rustc there is.
    alone = dict(rust_env, PATH=".")
    facts = _runs_nothing(cli, clone, alone, marker, why="relative PATH entry")
    assert facts["rust.version"] is None
    # `.` first: the rustc of the first absolute entry answers instead.
    first = dict(rust_env, PATH=f".:{rust_env['PATH']}")
    version = json.loads(cli("facts", "rust.version", "--format", "json", cwd=clone, env=first,
                             check=True).stdout)["rust.version"]
    assert not marker.exists() and version not in (None, "9.9.9")


def test_linkers_in_a_relative_path_entry_are_not_smoke_tested(cli, clone, base_env, tmp_path):
    marker = tmp_path / "evil-ran"
    for name in ("clang", "mold", "ld.lld"):
        executable(clone / "bin" / name, f'#!/bin/sh\necho {name} >> "{marker}"\nexit 0\n')
    env = dict(base_env, PATH=f"bin:{base_env['PATH']}")
    for knob in ("auto", "mold", "lld"):
        report = json.loads(cli("explain", "--format", "json", "--set", f"linker={knob}", cwd=clone, env=env,
                                check=True).stdout)
        assert not marker.exists(), f"linker={knob} ran {marker.read_text()}"
        decision = report["decisions"]["linker"]
        assert decision["status"] == "system"
        assert "relative PATH entry 'bin'" in decision["reason"]
    cli("env", "--set", "linker=mold", cwd=clone, env=env)
    assert not marker.exists()


def test_a_relative_ssh_config_from_the_user_layer_is_the_users_file(cli, clone, base_env, tmp_path):
    """`ssh -G` runs `Match exec` commands: a relative remote_ssh_config set in the user's
    own file must not become whatever file the repository ships under that name."""
    ssh = shutil.which("ssh", path=base_env["PATH"])
    if ssh is None:
        pytest.skip("needs ssh")
    marker = tmp_path / "evil-ran"
    write(clone / "ssh_config", f'Match exec "touch {marker}"\n  Hostname evil.invalid\n')
    user_dir = Path(base_env["XDG_CONFIG_HOME"]) / "buildpolicy"
    write(user_dir / "ssh_config", "Host build1\n  Hostname 127.0.0.1\n  Port 9\n")
    write(user_dir / "knobs.toml", '[knobs]\nremote = "on"\nremote_hosts = ["build1"]\nremote_ssh_config = "ssh_config"\n'
                                   "remote_tcp_timeout = 0.2\nremote_recovery_timeout = 0.2\n")
    report = json.loads(cli("explain", "--format", "json", "--", "cargo", "build", cwd=clone, check=True).stdout)
    assert not marker.exists(), "ssh -G read the repository's ssh_config"
    assert "127.0.0.1:9" in report["decisions"]["remote"]["reason"]  # the user's ssh_config answered


def test_an_sccache_in_a_relative_path_entry_is_not_made_the_wrapper(cli, clone, base_env, tmp_path):
    # cargo runs RUSTC_WRAPPER for every crate: a repository's ./bin/sccache must not become it.
    marker = tmp_path / "evil-ran"
    executable(clone / "bin" / "sccache", f'#!/bin/sh\ntouch "{marker}"\nexec "$@"\n')
    env = dict(base_env, PATH=f"bin:{base_env['PATH']}")
    argv = ("--", "cargo", "build", "--release")  # not incremental: sccache would be enabled
    report = json.loads(cli("explain", "--format", "json", "--set", "sccache=on", *argv, cwd=clone, env=env,
                            check=True).stdout)
    decision = report["decisions"]["sccache"]
    assert decision["status"] == "not-found"
    assert "relative PATH entry 'bin'" in decision["reason"]
    assert "RUSTC_WRAPPER" not in report["env"]
    assert "RUSTC_WRAPPER" not in cli("env", *argv, cwd=clone, env=env, check=True).stdout
    assert not marker.exists()
