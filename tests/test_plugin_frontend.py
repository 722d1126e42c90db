"""The frontend decision: which profiles get rustc's parallel front-end, on which nightly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from buildpolicy.engine.pipeline import Request, evaluate
from buildpolicy.facts.system import machine_triple
from buildpolicy.facts.context import ProbeContext
from tests.conftest import LOW_MEMORY_LAPTOP

CARGO_TOML = """\
[package]
name = "demo"
version = "0.1.0"
edition = "2021"

[profile.selfdev]
inherits = "dev"

[profile.ci-fast]
inherits = "release"

[profile.selfdev-deep]
inherits = "selfdev"
"""

NIGHTLY = "nightly-x86_64-unknown-linux-gnu"
RUSTUP = {
    "tool.rustup": "/home/u/.cargo/bin/rustup",
    "rust.toolchains": ["stable-x86_64-unknown-linux-gnu", NIGHTLY, "nightly-2026-01-05-x86_64-unknown-linux-gnu"],
    "rust.nightly": NIGHTLY,
}
SELFDEV = ("cargo", "build", "--profile", "selfdev")
RUSTFLAGS = "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS"


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "Cargo.toml").write_text(CARGO_TOML)
    (root / "buildpolicy.toml").write_text("policies = []\n")
    return root


def run(project, base_env, *, facts=RUSTUP, argv=SELFDEV, env=None, sets=(), hermetic=True):
    environ = dict(base_env, **(env or {}))
    overrides = dict(LOW_MEMORY_LAPTOP) if hermetic else {}
    overrides.update(dict(facts))
    return evaluate(Request(cwd=project, environ=environ, cargo_argv=tuple(argv) if argv else None,
                            cli_sets=tuple(sets), fact_overrides=overrides, hermetic=hermetic))


def status(project, base_env, **kw) -> str:
    return run(project, base_env, **kw).decisions["frontend"].status


def test_enabled_for_a_custom_dev_profile(project, base_env):
    result = run(project, base_env)
    decision = result.decisions["frontend"]
    assert decision.status == f"enabled:{NIGHTLY}:threads=4"  # min(4, 8 CPUs)
    assert result.set_env["RUSTUP_TOOLCHAIN"] == NIGHTLY
    assert result.set_env[RUSTFLAGS] == "-Zthreads=4"
    assert "inherits from dev" in decision.reason and "min(4, cpu.count=8)" in decision.reason


def test_threads_default_and_knob(project, base_env):
    two_cpus = dict(RUSTUP, **{"cpu.count": 2})
    assert status(project, base_env, facts=two_cpus) == f"enabled:{NIGHTLY}:threads=2"
    knob = run(project, base_env, facts=two_cpus, sets=["frontend_threads=6"])
    assert knob.decisions["frontend"].status == f"enabled:{NIGHTLY}:threads=6"
    assert knob.set_env[RUSTFLAGS] == "-Zthreads=6"
    assert status(project, base_env, env={"BUILDPOLICY_FRONTEND_THREADS": "3"}) == f"enabled:{NIGHTLY}:threads=3"


def test_profiles(project, base_env):
    assert status(project, base_env, argv=("cargo", "build")) == "skipped-profile-shared-target:dev"
    assert status(project, base_env, argv=("cargo", "test")) == "skipped-profile-shared-target:test"
    assert status(project, base_env, argv=("cargo", "build", "--release")) == "skipped-profile:release"
    assert status(project, base_env, argv=("cargo", "build", "--profile", "ci-fast")) == "skipped-profile:ci-fast"
    # Without a cargo argv the profile file's default_profile (dev) applies.
    assert status(project, base_env, argv=None) == "skipped-profile-shared-target:dev"
    # `on` forces every profile, dev included.
    on = run(project, base_env, argv=("cargo", "build"), sets=["frontend=on"])
    assert on.decisions["frontend"].status == f"enabled:{NIGHTLY}:threads=4"
    assert on.set_env["RUSTUP_TOOLCHAIN"] == NIGHTLY


def test_profiles_listed_in_the_profile_file(project, base_env):
    (project / "buildpolicy.toml").write_text('policies = []\n\n[frontend]\nprofiles = ["ci-fast"]\n')
    assert status(project, base_env, argv=("cargo", "build", "--profile", "ci-fast")) == f"enabled:{NIGHTLY}:threads=4"
    assert status(project, base_env, argv=("cargo", "build", "--release")) == "skipped-profile:release"
    # dev shares target/debug with rust-analyzer even when listed: only `on` overrides that.
    (project / "buildpolicy.toml").write_text('policies = []\n\n[frontend]\nprofiles = ["dev"]\n')
    assert status(project, base_env, argv=("cargo", "build")) == "skipped-profile-shared-target:dev"


def test_only_direct_dev_children_are_eligible_under_auto(project, base_env):
    deep = run(project, base_env, argv=("cargo", "build", "--profile", "selfdev-deep")).decisions["frontend"]
    assert deep.status == "skipped-profile:selfdev-deep"
    assert "inherits from selfdev" in deep.reason
    unknown = run(project, base_env, argv=("cargo", "build", "--profile", "nowhere")).decisions["frontend"]
    assert unknown.status == "skipped-profile:nowhere" and "unknown" in unknown.reason


def test_explicit_toolchain_argument(project, base_env):
    for tc in ("nightly", "stable"):
        result = run(project, base_env, argv=("cargo", f"+{tc}", "build", "--profile", "selfdev"))
        assert result.decisions["frontend"].status == f"skipped-explicit-toolchain:+{tc}"
        assert "RUSTUP_TOOLCHAIN" not in result.set_env and RUSTFLAGS not in result.set_env
    forced = run(project, base_env, argv=("cargo", "+stable", "build"), sets=["frontend=on"])
    assert forced.decisions["frontend"].status == "skipped-explicit-toolchain:+stable"


def test_no_rustup_and_no_nightly(project, base_env):
    assert status(project, base_env, facts={}) == "skipped-no-rustup"
    no_proxy = dict(RUSTUP, **{"tool.rustup": None})
    assert status(project, base_env, facts=no_proxy) == "skipped-no-rustup"
    stable_only = dict(RUSTUP, **{"rust.toolchains": ["stable-x86_64-unknown-linux-gnu"], "rust.nightly": None})
    result = run(project, base_env, facts=stable_only)
    assert result.decisions["frontend"].status == "skipped-no-nightly"
    assert RUSTFLAGS not in result.set_env


def test_toolchain_knob(project, base_env):
    dated = "nightly-2026-01-05-x86_64-unknown-linux-gnu"
    result = run(project, base_env, sets=[f"toolchain={dated}"])
    assert result.decisions["frontend"].status == f"enabled:{dated}:threads=4"
    assert result.set_env["RUSTUP_TOOLCHAIN"] == dated
    missing = run(project, base_env, env={"BUILDPOLICY_TOOLCHAIN": "nightly-2020-01-01"})
    assert missing.decisions["frontend"].status == "skipped-nightly-unavailable:nightly-2020-01-01"
    assert "RUSTUP_TOOLCHAIN" not in missing.set_env


def test_knob_off(project, base_env):
    result = run(project, base_env, sets=["frontend=off"])
    assert result.decisions["frontend"].status == "disabled-by-knob"
    assert RUSTFLAGS not in result.set_env


def test_inherited_rustup_toolchain(project, base_env):
    stable = run(project, base_env, env={"RUSTUP_TOOLCHAIN": "stable"})
    assert stable.decisions["frontend"].status == "skipped-inherited-toolchain:stable"
    assert RUSTFLAGS not in stable.set_env
    nightly = run(project, base_env, env={"RUSTUP_TOOLCHAIN": "nightly"})
    assert nightly.decisions["frontend"].status == "enabled:nightly:threads=4"
    assert "RUSTUP_TOOLCHAIN" not in nightly.set_env  # the caller's value is kept as it is
    assert nightly.set_env[RUSTFLAGS] == "-Zthreads=4"


def test_project_pin(project, base_env):
    (project / "rust-toolchain.toml").write_text('[toolchain]\nchannel = "1.85.0"\n')
    pinned = run(project, base_env).decisions["frontend"]
    assert pinned.status == "skipped-pinned-toolchain:1.85.0"
    assert "rust-toolchain.toml" in pinned.reason
    # `on` (or a toolchain knob) overrides the pin.
    assert status(project, base_env, sets=["frontend=on"]) == f"enabled:{NIGHTLY}:threads=4"
    (project / "rust-toolchain.toml").write_text('[toolchain]\nchannel = "nightly"\n')
    result = run(project, base_env)
    assert result.decisions["frontend"].status == "enabled:nightly:threads=4"


# --- a real (fake) rustup home: toolchain checks run once and are cached ---------------------

def _rustup_home(tmp_path: Path, rustc_body: str) -> tuple[Path, str, Path]:
    triple = machine_triple(ProbeContext(cwd=tmp_path, environ={}, cache_dir=tmp_path))
    home = tmp_path / "rustup"
    bindir = home / "toolchains" / f"nightly-{triple}" / "bin"
    bindir.mkdir(parents=True)
    log = tmp_path / "rustc-calls.log"
    rustc = bindir / "rustc"
    rustc.write_text(f'#!/bin/sh\necho call >> "{log}"\n{rustc_body}')
    rustc.chmod(0o755)
    return home, f"nightly-{triple}", log


@pytest.fixture
def machine_env(tmp_path, base_env):
    """The caller's environment with a fake ``rustup`` first on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "rustup").write_text("#!/bin/sh\nexit 0\n")
    (bindir / "rustup").chmod(0o755)
    return dict(base_env, PATH=f"{bindir}{os.pathsep}{base_env['PATH']}")


def test_nightly_checked_once_then_cached(project, tmp_path, machine_env, monkeypatch):
    home, nightly, log = _rustup_home(tmp_path, 'echo "rustc 1.99.0-nightly (0123abcd 2026-05-01)"\n')
    env = dict(machine_env, RUSTUP_HOME=str(home))
    first = run(project, env, facts={"cpu.count": 8}, hermetic=False)
    assert first.decisions["frontend"].status == f"enabled:{nightly}:threads=4"
    assert "rustc 1.99.0-nightly" in first.decisions["frontend"].reason
    assert log.read_text().count("call") == 1

    def no_process(*args, **kwargs):
        raise AssertionError(f"a warm run started a process: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    second = run(project, env, facts={"cpu.count": 8}, hermetic=False)
    assert second.decisions["frontend"].status == f"enabled:{nightly}:threads=4"
    assert log.read_text().count("call") == 1


def test_nightly_that_does_not_run(project, tmp_path, machine_env):
    home, nightly, _log = _rustup_home(tmp_path, 'echo "error: missing component" >&2\nexit 1\n')
    result = run(project, dict(machine_env, RUSTUP_HOME=str(home)), facts={}, hermetic=False)
    decision = result.decisions["frontend"]
    assert decision.status == f"skipped-nightly-unavailable:{nightly}"
    assert "missing component" in decision.reason
    assert "RUSTUP_TOOLCHAIN" not in result.set_env


def test_a_toolchain_that_is_not_nightly_is_unavailable(project, tmp_path, machine_env):
    home, nightly, _log = _rustup_home(tmp_path, 'echo "rustc 1.95.0 (59807616e 2026-04-14)"\n')
    decision = run(project, dict(machine_env, RUSTUP_HOME=str(home)), facts={}, hermetic=False).decisions["frontend"]
    assert decision.status == f"skipped-nightly-unavailable:{nightly}"
    assert "not a nightly" in decision.reason


def test_no_rustup_home_on_this_machine(project, tmp_path, machine_env):
    env = dict(machine_env, RUSTUP_HOME=str(tmp_path / "absent"))
    assert status(project, env, facts={}, hermetic=False) == "skipped-no-rustup"
