"""The linker decision: statuses from facts, and the real smoke test with its cache."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from buildpolicy.engine.pipeline import Request, evaluate
from buildpolicy_plugins import linker as linker_plugin
from tests.conftest import DEMO_CARGO_TOML, LOW_MEMORY_LAPTOP

X86 = "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU"
MOLD = {"tool.mold": "/usr/bin/mold", "tool.ld.mold": "/usr/bin/ld.mold", "tool.clang": "/usr/bin/clang"}
LLD = {"tool.ld.lld": "/usr/bin/ld.lld", "tool.clang": "/usr/bin/clang"}


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "Cargo.toml").write_text(DEMO_CARGO_TOML)
    (root / "buildpolicy.toml").write_text("policies = []\n")
    return root


def run(project, base_env, *, facts=(), argv=("cargo", "build"), env=None, sets=(), hermetic=True):
    environ = dict(base_env, **(env or {}))
    overrides = dict(LOW_MEMORY_LAPTOP) if hermetic else {}
    overrides.update(dict(facts))
    return evaluate(Request(cwd=project, environ=environ, cargo_argv=tuple(argv) if argv else None,
                            cli_sets=tuple(sets), fact_overrides=overrides, hermetic=hermetic))


def test_mold_is_preferred_and_sets_clang_and_fuse_ld(project, base_env):
    result = run(project, base_env, facts={**MOLD, **LLD})
    decision = result.decisions["linker"]
    assert (decision.status, decision.value) == ("mold", "mold")
    assert result.set_env[f"{X86}_LINKER"] == "/usr/bin/clang"
    assert result.set_env[f"{X86}_RUSTFLAGS"] == "-C link-arg=-fuse-ld=mold"
    assert "not smoke-tested" in decision.reason  # given facts describe another machine
    assert result.provenance[f"{X86}_LINKER"].source == "plugin linker"


def test_lld_when_mold_is_missing_and_system_when_nothing_is(project, base_env):
    lld = run(project, base_env, facts=LLD)
    assert lld.decisions["linker"].status == "lld"
    assert lld.set_env[f"{X86}_RUSTFLAGS"] == "-C link-arg=-fuse-ld=lld"
    # mold without clang cannot be used: clang is the driver that takes -fuse-ld.
    no_clang = run(project, base_env, facts={"tool.mold": "/usr/bin/mold"})
    assert no_clang.decisions["linker"].status == "system"
    assert "clang (the linker driver) not found" in no_clang.decisions["linker"].reason
    assert f"{X86}_LINKER" not in no_clang.set_env and f"{X86}_RUSTFLAGS" not in no_clang.set_env


def test_linker_path_is_used_when_clang_would_not_find_it_by_name(project, base_env):
    facts = {"tool.mold": "/opt/mold/bin/mold", "tool.clang": "/usr/bin/clang"}  # no ld.mold anywhere
    result = run(project, base_env, facts=facts)
    assert result.decisions["linker"].status == "mold"
    assert result.set_env[f"{X86}_RUSTFLAGS"] == "-C link-arg=-fuse-ld=/opt/mold/bin/mold"


@pytest.mark.parametrize(("version", "expected"), [
    ("1.95.0", "already links x86_64-unknown-linux-gnu with its bundled rust-lld by default"),
    ("1.90.0", "already links x86_64-unknown-linux-gnu with its bundled rust-lld by default"),
    ("1.89.0", "rustc 1.89.0 links x86_64-unknown-linux-gnu through cc with the system linker (usually GNU ld)"),
    (None, "rust.version is unknown"),
])
def test_system_reason_says_what_the_default_linker_is_for_the_rustc_in_use(project, base_env, version, expected):
    facts = {"rust.version": version} if version else {}
    decision = run(project, base_env, facts=facts).decisions["linker"]
    assert decision.status == "system"
    assert expected in decision.reason
    assert "since Rust 1.90" in decision.reason or "1.90+" in decision.reason


def test_aarch64_linux_triple(project, base_env):
    facts = {**MOLD, "arch": "aarch64", "host.triple": "aarch64-unknown-linux-gnu", "rust.version": "1.95.0"}
    result = run(project, base_env, facts=facts)
    assert result.set_env["CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER"] == "/usr/bin/clang"
    assert result.set_env["CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS"] == "-C link-arg=-fuse-ld=mold"
    system = run(project, base_env, facts={**facts, "tool.mold": None}).decisions["linker"]
    # rust-lld is the default on x86_64 only: aarch64 links through cc.
    assert system.status == "system" and "through the C compiler (cc)" in system.reason


def test_skipped_os(project, base_env):
    mac = run(project, base_env, facts={**MOLD, "os": "macos", "host.triple": "aarch64-apple-darwin"})
    assert mac.decisions["linker"].status == "skipped-os"
    assert not any(name.endswith("_LINKER") for name in mac.set_env)
    assert run(project, base_env, facts={**MOLD, "os": None}).decisions["linker"].status == "skipped-os"


def test_skip_profiles_default_and_option(project, base_env):
    lto = run(project, base_env, facts=MOLD, argv=("cargo", "build", "--profile", "release-lto"))
    assert lto.decisions["linker"].status == "skipped-profile:release-lto"
    assert f"{X86}_LINKER" not in lto.set_env
    # An explicit knob beats the option.
    forced = run(project, base_env, facts=MOLD, argv=("cargo", "build", "--profile", "release-lto"), sets=["linker=mold"])
    assert forced.decisions["linker"].status == "mold"
    (project / "buildpolicy.toml").write_text('policies = []\n\n[linker]\nskip_profiles = ["release"]\n')
    release = run(project, base_env, facts=MOLD, argv=("cargo", "build", "--release"))
    assert release.decisions["linker"].status == "skipped-profile:release"
    assert run(project, base_env, facts=MOLD, argv=("cargo", "build", "--profile", "release-lto")).decisions["linker"].status == "mold"


def test_skip_profiles_option_must_be_a_list(project, base_env):
    (project / "buildpolicy.toml").write_text("policies = []\n\n[linker]\nskip_profiles = 3\n")
    result = run(project, base_env, facts=MOLD, argv=("cargo", "build", "--profile", "release-lto"))
    assert result.decisions["linker"].status == "skipped-profile:release-lto"  # the default applies
    assert any("skip_profiles must be a list" in w for w in result.warnings)


def test_knob_values(project, base_env):
    assert run(project, base_env, facts={**MOLD, **LLD}, sets=["linker=lld"]).decisions["linker"].status == "lld"
    system = run(project, base_env, facts={**MOLD, **LLD}, env={"BUILDPOLICY_LINKER": "system"})
    assert system.decisions["linker"].status == "system"
    assert "knob linker = system ($BUILDPOLICY_LINKER)" in system.decisions["linker"].reason
    missing = run(project, base_env, facts=MOLD, sets=["linker=lld"])
    assert missing.decisions["linker"].status == "system"
    assert any("knob linker = lld" in w and "ld.lld not found" in w for w in missing.warnings)


def test_inherited_linker_is_kept(project, base_env):
    result = run(project, base_env, facts=MOLD, env={f"{X86}_LINKER": "gcc-12"})
    assert result.decisions["linker"].status == "inherited:gcc-12"
    assert f"{X86}_LINKER" not in result.set_env and f"{X86}_RUSTFLAGS" not in result.set_env
    flags = run(project, base_env, facts=MOLD, env={"RUSTFLAGS": "-C link-arg=-fuse-ld=lld -C opt-level=1"})
    assert flags.decisions["linker"].status == "inherited:lld"
    target = run(project, base_env, facts=MOLD, env={f"{X86}_RUSTFLAGS": "-C linker=/opt/cc"})
    assert target.decisions["linker"].status == "inherited:/opt/cc"


# --- the real smoke test, on this machine's clang ---------------------------------------

def _var(result, suffix: str) -> str:
    """``CARGO_TARGET_<host triple>_<suffix>`` for a run that probed this machine."""
    return f"CARGO_TARGET_{linker_plugin.triple_env(result.facts.get('host.triple'))}_{suffix}"


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on"):
            pytest.fail(f"{tool} is missing: install the Debian package {package} (scripts/install-system-deps.sh)")
        pytest.skip(f"{tool} is not installed (Debian package {package})")
    return path


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_bin(tmp_path, base_env):
    """A directory first on PATH for fake tools; returns (dir, environ)."""
    directory = tmp_path / "fakebin"
    directory.mkdir()
    return directory, dict(base_env, PATH=f"{directory}{os.pathsep}{base_env['PATH']}")


def test_smoke_test_links_and_runs_and_is_cached_by_identity(project, fake_bin):
    _need("clang", "clang")
    mold = _need("mold", "mold")
    directory, environ = fake_bin
    log = directory / "calls.log"
    # A mold that records each call, then links for real: counts smoke tests.
    wrapper = _script(directory / "mold", f'echo call >> "{log}"\nexec "{mold}" "$@"\n')
    first = run(project, environ, hermetic=False)
    decision = first.decisions["linker"]
    assert decision.status == "mold", decision.reason
    # ld.mold on PATH is not the wrapper: the wrapper's path goes to clang.
    assert first.set_env[_var(first, "RUSTFLAGS")] == f"-C link-arg=-fuse-ld={wrapper}"
    assert first.set_env[_var(first, "LINKER")] == shutil.which("clang")
    assert log.read_text().count("call") == 1
    second = run(project, environ, hermetic=False)
    assert second.decisions["linker"].status == "mold"
    assert "cached smoke test" in second.decisions["linker"].reason
    assert log.read_text().count("call") == 1  # warm: not run again
    stat = wrapper.stat()
    os.utime(wrapper, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a "new" binary
    run(project, environ, hermetic=False)
    assert log.read_text().count("call") == 2


def test_failing_mold_is_skipped_with_its_reason(project, fake_bin):
    _need("clang", "clang")
    _need("ld.lld", "lld")
    directory, environ = fake_bin
    log = directory / "calls.log"
    _script(directory / "mold", f'echo call >> "{log}"\necho "mold: fatal: broken on purpose" >&2\nexit 1\n')
    result = run(project, environ, hermetic=False)
    decision = result.decisions["linker"]
    assert decision.status == "lld"
    assert "failed the smoke test" in decision.reason and "mold: fatal: broken on purpose" in decision.reason
    assert result.set_env[_var(result, "RUSTFLAGS")].endswith("-fuse-ld=lld") or "ld.lld" in result.set_env[_var(result, "RUSTFLAGS")]
    # The failure is cached too: the broken mold is not run again on the next prompt.
    again = run(project, environ, hermetic=False)
    assert again.decisions["linker"].status == "lld"
    assert log.read_text().count("call") == 1


def test_warm_run_starts_no_process(project, base_env, monkeypatch):
    _need("clang", "clang")
    _need("mold", "mold")
    cold = run(project, base_env, hermetic=False)
    assert cold.decisions["linker"].status == "mold"

    def no_process(*args, **kwargs):
        raise AssertionError(f"a warm run started a process: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    warm = run(project, base_env, hermetic=False)
    assert warm.decisions["linker"].status == "mold"
    assert warm.set_env[_var(warm, "LINKER")] == cold.set_env[_var(cold, "LINKER")]


def test_smoke_test_times_out_and_a_timeout_is_not_cached(project, fake_bin, monkeypatch):
    directory, environ = fake_bin
    _script(directory / "clang", "sleep 30\n")
    _script(directory / "mold", "exit 0\n")
    ok, why = linker_plugin.smoke_test(str(directory / "clang"), str(directory / "mold"), "mold", environ=environ,
                                       scratch_parent=directory / "scratch", link_timeout=0.5)
    assert ok is None and "did not answer within 0.5s" in why
    monkeypatch.setattr(linker_plugin, "LINK_TIMEOUT", 0.5)
    result = run(project, environ, hermetic=False, facts={"tool.ld.lld": None})
    assert result.decisions["linker"].status == "system"
    assert "timed out" in result.decisions["linker"].reason
    cache = Path(environ["XDG_CACHE_HOME"]) / "buildpolicy" / "probes" / linker_plugin.SMOKE_CACHE
    assert not cache.exists() or "linker-smoke" not in cache.read_text()


def test_smoke_test_reports_a_program_that_does_not_run(tmp_path, base_env):
    directory = tmp_path / "bin"
    directory.mkdir()
    # A "clang" that writes a program which fails: the link "works", the result does not.
    _script(directory / "clang", 'out=""\nwhile [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done\n'
            'printf "#!/bin/sh\\nexit 3\\n" > "$out"\nchmod +x "$out"\n')
    ok, why = linker_plugin.smoke_test(str(directory / "clang"), "/usr/bin/mold", "mold", environ=base_env,
                                       scratch_parent=tmp_path / "scratch")
    assert ok is False and "failed (exit 3)" in why
    assert not list((tmp_path / "scratch").iterdir())  # the scratch directory is removed
