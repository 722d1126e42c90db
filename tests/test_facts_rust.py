"""Rust toolchain facts: listing, nightly choice, rustc --version caching, toolchain_runs()."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from buildpolicy.facts import FactStore, ProbeContext, rust, subproc, toolchain_runs
from buildpolicy.facts.cache import ProbeCache

pytestmark = pytest.mark.skipif(os.name != "posix", reason="fake rustc is a shell script")

HOST = "x86_64-unknown-linux-gnu"

FAKE_RUSTC = """\
#!/bin/sh
echo "$0 ${RUSTUP_TOOLCHAIN:-}" >> "$FAKE_RUSTC_LOG"
cat "$FAKE_RUSTC_VERSION"
"""


def script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def machine(tmp_path):
    """A caller environment with a fake rustc on PATH and a fake rustup home."""
    version = tmp_path / "version.txt"
    version.write_text("rustc 1.95.0 (59807616e 2026-04-14)\n")
    log = tmp_path / "rustc.log"
    rustc = script(tmp_path / "bin/rustc", FAKE_RUSTC)
    rustup = tmp_path / "rustup"
    for name in (f"stable-{HOST}", f"nightly-{HOST}"):
        script(rustup / "toolchains" / name / "bin/rustc", FAKE_RUSTC)
    (rustup / "settings.toml").write_text(f'version = "12"\ndefault_toolchain = "stable-{HOST}"\n')
    environ = {
        "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "RUSTUP_HOME": str(rustup),
        "FAKE_RUSTC_VERSION": str(version),
        "FAKE_RUSTC_LOG": str(log),
    }
    (tmp_path / "project").mkdir()

    class Machine:
        def __init__(self):
            self.rustc, self.rustup, self.version, self.environ = rustc, rustup, version, environ

        def ctx(self, **kw) -> ProbeContext:
            env = dict(environ, **kw.pop("env", {}))
            return ProbeContext(cwd=kw.pop("cwd", tmp_path / "project"), environ=env, cache_dir=tmp_path / "cache", **kw)

        def store(self, **kw) -> FactStore:
            return FactStore(self.ctx(**kw), overrides={"host.triple": HOST})

        def runs(self) -> int:
            return len(log.read_text().splitlines()) if log.exists() else 0

    return Machine()


def bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def test_toolchains_are_listed_sorted_without_a_subprocess(machine):
    (machine.rustup / "toolchains/nightly-2026-01-02-" f"{HOST}").mkdir(parents=True)
    (machine.rustup / "toolchains/.hidden").mkdir()
    (machine.rustup / "toolchains/stray-file").write_text("")
    store = machine.store()
    assert store.get("rust.toolchains") == [f"nightly-2026-01-02-{HOST}", f"nightly-{HOST}", f"stable-{HOST}"]
    assert store.get("rust.nightly") == f"nightly-{HOST}"
    assert machine.runs() == 0


def test_toolchains_unknown_without_rustup(machine, tmp_path):
    store = machine.store(env={"RUSTUP_HOME": str(tmp_path / "missing")})
    assert store.get("rust.toolchains") is None
    assert store.get("rust.nightly") is None
    assert "rustup is not installed" in store.unknown_reason("rust.toolchains")


@pytest.mark.parametrize(("toolchains", "expected"), [
    ([f"stable-{HOST}"], None),
    ([f"nightly-{HOST}", f"nightly-2026-05-01-{HOST}"], f"nightly-{HOST}"),
    ([f"nightly-2026-01-02-{HOST}", f"nightly-2026-05-01-{HOST}", f"stable-{HOST}"], f"nightly-2026-05-01-{HOST}"),
    (["nightly-2026-09-09-aarch64-apple-darwin", f"nightly-2026-01-02-{HOST}"], f"nightly-2026-01-02-{HOST}"),
    (["nightly-custom", f"stable-{HOST}"], "nightly-custom"),
])
def test_nightly_choice(toolchains, expected):
    assert rust.pick_nightly(toolchains, HOST) == expected


def test_nightly_follows_overridden_toolchains(tmp_path):
    ctx = ProbeContext(cwd=tmp_path, environ={}, cache_dir=tmp_path / "cache")
    store = FactStore(ctx, overrides={"rust.toolchains": ["stable", "nightly-2026-02-02"], "host.triple": HOST})
    assert store.get("rust.nightly") == "nightly-2026-02-02"


def test_rust_version_is_cached_by_binary_identity(machine):
    store = machine.store()
    assert store.get("rust.version") == "1.95.0"
    assert store.source("rust.version") == "probe"
    assert machine.runs() == 1

    again = machine.store()
    assert again.get("rust.version") == "1.95.0"
    assert again.source("rust.version") == "cache"
    assert machine.runs() == 1

    # A new rustc binary (same path, new mtime) is asked again.
    machine.version.write_text("rustc 1.96.0 (0123456 2026-06-01)\n")
    bump_mtime(machine.rustc)
    assert machine.store().get("rust.version") == "1.96.0"
    assert machine.runs() == 2


def test_rust_version_cache_follows_the_toolchain_rustup_would_pick(machine, tmp_path):
    assert machine.store().get("rust.version") == "1.95.0"
    assert machine.runs() == 1
    # The proxy on PATH is unchanged, but the default toolchain moved.
    (machine.rustup / "settings.toml").write_text(f'default_toolchain = "nightly-{HOST}"\n')
    machine.store().get("rust.version")
    assert machine.runs() == 2
    # `rustup update` replaced the selected toolchain's rustc.
    bump_mtime(machine.rustup / f"toolchains/nightly-{HOST}/bin/rustc")
    machine.store().get("rust.version")
    assert machine.runs() == 3
    # RUSTUP_TOOLCHAIN, a rust-toolchain.toml and `cargo +tc` select toolchains too.
    machine.store(env={"RUSTUP_TOOLCHAIN": "stable"}).get("rust.version")
    assert machine.runs() == 4
    (tmp_path / "project/rust-toolchain.toml").write_text('[toolchain]\nchannel = "stable"\n')
    machine.store().get("rust.version")
    assert machine.runs() == 5
    machine.store(cargo_argv=("cargo", "+nightly", "build")).get("rust.version")
    assert machine.runs() == 6
    # The +toolchain reaches the rustup proxy as RUSTUP_TOOLCHAIN.
    assert (tmp_path / "rustc.log").read_text().splitlines()[-1].endswith(" nightly")
    # Nothing changed: every selection above is now cached.
    machine.store(cargo_argv=("cargo", "+nightly", "build")).get("rust.version")
    machine.store(env={"RUSTUP_TOOLCHAIN": "stable"}).get("rust.version")
    assert machine.runs() == 6


def test_toolchain_selection_order(machine, tmp_path):
    ctx = machine.ctx()
    assert rust.toolchain_selection(ctx, machine.rustup)[:2] == ("default", f"stable-{HOST}")
    (tmp_path / "rust-toolchain").write_text("nightly\n")
    assert rust.toolchain_selection(ctx, machine.rustup)[:2] == ("file", "nightly")
    (machine.rustup / "settings.toml").write_text(f'[overrides]\n"{tmp_path / "project"}" = "beta"\n')
    assert rust.toolchain_selection(ctx, machine.rustup)[:2] == ("override", "beta")
    assert rust.toolchain_selection(machine.ctx(env={"RUSTUP_TOOLCHAIN": "x"}), machine.rustup)[:2] == ("env", "x")
    assert rust.toolchain_rustc(machine.rustup, "stable", HOST) == machine.rustup / f"toolchains/stable-{HOST}/bin/rustc"


def test_corrupt_cache_is_ignored_and_rebuilt(machine, tmp_path):
    cache_file = tmp_path / "cache/probes.json"
    cache_file.parent.mkdir(parents=True)
    cache_file.write_text("{not json")
    assert machine.store().get("rust.version") == "1.95.0"
    assert json.loads(cache_file.read_text())["version"] == 1
    cache_file.write_text('{"version": 1, "entries": []}')  # valid JSON, wrong shape
    assert machine.store().get("rust.version") == "1.95.0"
    assert machine.runs() == 2
    assert machine.store().source("rust.version") == "cache"


def test_failing_rustc_is_null_with_reason(machine):
    machine.version.write_text("")
    script(machine.rustc, "#!/bin/sh\necho 'error: toolchain is not installed' >&2\nexit 1\n")
    store = machine.store()
    assert store.get("rust.version") is None
    assert "toolchain is not installed" in store.unknown_reason("rust.version")


def test_no_rustc_on_path(machine):
    store = machine.store(env={"PATH": "/nonexistent"})
    assert store.get("rust.version") is None
    assert store.unknown_reason("rust.version") == "rustc is not on PATH"


def test_toolchain_runs_is_checked_once_per_binary(machine, tmp_path):
    ctx = machine.ctx()
    assert toolchain_runs(ctx, f"nightly-{HOST}") == (True, "rustc 1.95.0 (59807616e 2026-04-14)")
    assert toolchain_runs(ctx, f"nightly-{HOST}")[0] is True
    assert machine.runs() == 1
    broken = machine.rustup / f"toolchains/nightly-{HOST}/bin/rustc"
    script(broken, "#!/bin/sh\necho 'librustc_driver.so: cannot open shared object file' >&2\nexit 127\n")
    bump_mtime(broken)
    ok, why = toolchain_runs(ctx, f"nightly-{HOST}", cache=ProbeCache(tmp_path / "cache/probes.json"))
    assert not ok and "cannot open shared object file" in why
    ok, why = toolchain_runs(ctx, "nightly-2020-01-01")
    assert not ok and "not installed" in why


def test_subprocess_timeout_becomes_a_reason(tmp_path):
    sleeper = script(tmp_path / "sleeper", "#!/bin/sh\nsleep 30\n")
    code, out, problem = subproc.run_text([str(sleeper)], env={"PATH": "/usr/bin:/bin"}, timeout=0.2)
    assert code is None and "did not answer" in problem
    code, out, problem = subproc.run_text([str(tmp_path / "missing")], env={})
    assert code is None and "cannot run" in problem


def test_toolchain_runs_completes_a_channel_with_the_host(machine):
    from buildpolicy.facts.system import machine_triple

    ctx = machine.ctx()
    script(machine.rustup / f"toolchains/beta-{machine_triple(ctx)}/bin/rustc", FAKE_RUSTC)
    assert toolchain_runs(ctx, "beta")[0] is True
    assert toolchain_runs(ctx, "../beta") == (False, "'../beta' is not a toolchain name")


def test_rustup_settings_are_parsed_once_per_identity_of_the_file(machine, monkeypatch):
    # Parsing settings.toml imports tomllib (with typing): a prompt reads the probe cache instead.
    import tomllib

    parsed = []
    real_loads = tomllib.loads
    monkeypatch.setattr(tomllib, "loads", lambda text: parsed.append(text) or real_loads(text))
    settings = machine.rustup / "settings.toml"
    for _ in range(3):  # each run has its own context and probe cache object, as prompts do
        assert rust.toolchain_selection(machine.ctx(), machine.rustup)[:2] == ("default", f"stable-{HOST}")
    assert len(parsed) == 1
    settings.write_text(f'version = "12"\ndefault_toolchain = "beta-{HOST}"\n')
    assert rust.toolchain_selection(machine.ctx(), machine.rustup)[:2] == ("default", f"beta-{HOST}")
    assert len(parsed) == 2
    settings.unlink()
    assert rust.toolchain_selection(machine.ctx(), machine.rustup)[:2] == ("default", None)


def test_rustup_settings_rewritten_with_the_same_size_and_mtime_are_read_again(machine):
    # cp -p, rsync -t or a coarse clock: size and mtime alone would keep the old answer.
    settings = machine.rustup / "settings.toml"
    settings.write_text('version = "12"\ndefault_toolchain = "1.79.0"\n')
    assert rust.toolchain_selection(machine.ctx(), machine.rustup)[:2] == ("default", "1.79.0")
    before = settings.stat()
    settings.unlink()
    settings.write_text('version = "12"\ndefault_toolchain = "1.80.0"\n')
    os.utime(settings, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert rust.toolchain_selection(machine.ctx(), machine.rustup)[:2] == ("default", "1.80.0")


def test_rustup_settings_json_cannot_hold_are_still_answered(machine, tmp_path):
    (machine.rustup / "settings.toml").write_text(f'[overrides]\n"{tmp_path / "project"}" = 1979-05-27\n')
    for _ in range(2):
        assert rust.toolchain_selection(machine.ctx(), machine.rustup)[:2] == ("override", "1979-05-27")


def test_the_probe_cache_skips_a_value_json_cannot_hold_and_keeps_the_rest(tmp_path):
    import datetime

    from buildpolicy.facts.cache import ProbeCache

    cache = ProbeCache(tmp_path / "probes.json")
    cache.put("date", {"when": datetime.date(1979, 5, 27)})
    cache.put("kept", {"value": 1})
    again = ProbeCache(tmp_path / "probes.json")
    assert again.get("date") is None and again.get("kept") == {"value": 1}
