"""Real builds through ``buildpolicy exec -- cargo …`` of a tiny crate with no dependencies.

These use the real mold, lld, clang, sccache and Rust toolchains that
``scripts/install-system-deps.sh`` (and rustup) install. With ``CI`` set a
missing tool FAILS the test naming the package to install; elsewhere the test
is skipped with the reason. Each test copies the crate into its own tmp
directory and builds into its own target directory, in an isolated HOME/XDG
(so a developer's ~/.config/buildpolicy cannot change the outcome) but with the
real RUSTUP_HOME/CARGO_HOME so the installed toolchains are used.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

CRATE = Path(__file__).parent / "fixtures" / "crates" / "bphello"
BUILD_TIMEOUT = 600  # seconds; a tiny crate, but a cold CI machine can be slow
QUIET = "hello from bphello"
LOUD = "HELLO FROM BPHELLO"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def require(tool: str, package: str, path: str) -> str:
    """The absolute path of ``tool`` on ``path``; in CI a missing tool fails naming its package."""
    found = shutil.which(tool, path=path)
    if found is None:
        message = f"{tool} is not installed: install {package} (scripts/install-system-deps.sh)"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return found


def elf_comment(path: Path) -> list[str]:
    """The strings of the ``.comment`` section of a 64-bit ELF file (who compiled and linked it)."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF", f"{path} is not an ELF file"
    assert data[4] == 2, "only 64-bit ELF is read here (x86_64 and aarch64)"
    order = "<" if data[5] == 1 else ">"
    (shoff,) = struct.unpack_from(order + "Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 0x3A)
    headers = []
    for index in range(shnum):
        # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size
        headers.append(struct.unpack_from(order + "IIQQQQ", data, shoff + index * shentsize))
    names_offset = headers[shstrndx][4]
    for name_index, _type, _flags, _addr, offset, size in headers:
        end = data.index(b"\0", names_offset + name_index)
        if data[names_offset + name_index:end] == b".comment":
            return [part.decode("utf-8", "replace") for part in data[offset:offset + size].split(b"\0") if part]
    return []


@pytest.fixture
def e2e(tmp_path, base_env):
    """A copy of the crate, and a function running ``python -m buildpolicy`` there."""
    crate = tmp_path / "bphello"
    shutil.copytree(CRATE, crate)
    env = dict(base_env)
    real_home = Path(os.path.expanduser("~"))
    # The isolated HOME must not hide the installed toolchains.
    env.setdefault("RUSTUP_HOME", str(real_home / ".rustup"))
    env.setdefault("CARGO_HOME", str(real_home / ".cargo"))
    cargo_bin = Path(env["CARGO_HOME"]) / "bin"
    if cargo_bin.is_dir() and str(cargo_bin) not in env["PATH"].split(os.pathsep):
        env["PATH"] = f"{cargo_bin}{os.pathsep}{env['PATH']}"
    env["CARGO_NET_OFFLINE"] = "true"  # no dependencies: never touch the network
    env["CARGO_TARGET_DIR"] = str(tmp_path / "target")
    env["CARGO_TERM_COLOR"] = "never"
    require("cargo", "a Rust toolchain (rustup, or the Debian package cargo)", env["PATH"])

    class Runner:
        root = crate
        target = tmp_path / "target"
        environ = env

        def __call__(self, *args, env=None, check=True):
            full = dict(self.environ, **(env or {}))
            proc = subprocess.run([sys.executable, "-m", "buildpolicy", *args], cwd=crate, env=full,
                                  capture_output=True, text=True, timeout=BUILD_TIMEOUT)
            if check and proc.returncode != 0:
                raise AssertionError(f"exit {proc.returncode}: {args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
            return proc

        def plan(self, *args, env=None):
            """``exec --dry-run`` of the same command: decisions and argv as JSON."""
            split = args.index("--")
            return json.loads(self("exec", "--dry-run", *args[:split], *args[split:], env=env).stdout)

    return Runner()


def test_mold_links_the_binary(e2e):
    require("clang", "the Debian package clang", e2e.environ["PATH"])
    require("mold", "the Debian package mold", e2e.environ["PATH"])
    plan = e2e.plan("--", "cargo", "build")
    assert plan["decisions"]["linker"]["status"] == "mold", plan["decisions"]["linker"]["reason"]
    e2e("exec", "--", "cargo", "build")
    binary = e2e.target / "debug" / "bphello"
    comment = elf_comment(binary)
    assert any(line.startswith("mold ") for line in comment), comment
    assert subprocess.run([binary], capture_output=True, text=True, timeout=30).stdout.strip() == QUIET


def test_lld_links_the_binary_when_chosen(e2e):
    require("clang", "the Debian package clang", e2e.environ["PATH"])
    require("ld.lld", "the Debian package lld", e2e.environ["PATH"])
    plan = e2e.plan("--set", "linker=lld", "--", "cargo", "build")
    assert plan["decisions"]["linker"]["status"] == "lld", plan["decisions"]["linker"]["reason"]
    e2e("exec", "--set", "linker=lld", "--", "cargo", "build")
    comment = elf_comment(e2e.target / "debug" / "bphello")
    assert any(line.startswith("Linker: ") and "LLD" in line for line in comment), comment
    assert not any(line.startswith("mold ") for line in comment)


def test_a_broken_mold_falls_back_to_lld_in_a_real_build(e2e, tmp_path):
    require("clang", "the Debian package clang", e2e.environ["PATH"])
    require("ld.lld", "the Debian package lld", e2e.environ["PATH"])
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "mold").write_text("#!/bin/sh\necho 'mold: fatal: broken on purpose' >&2\nexit 1\n")
    (fake / "mold").chmod(0o755)
    env = {"PATH": f"{fake}{os.pathsep}{e2e.environ['PATH']}"}
    plan = e2e.plan("--", "cargo", "build", env=env)
    linker = plan["decisions"]["linker"]
    assert linker["status"] == "lld" and "broken on purpose" in linker["reason"]
    e2e("exec", "--", "cargo", "build", env=env)
    comment = elf_comment(e2e.target / "debug" / "bphello")
    assert any(line.startswith("Linker: ") and "LLD" in line for line in comment), comment


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sccache_env(e2e, tmp_path):
    """A private sccache server (own cache dir and port), stopped afterwards."""
    sccache = require("sccache", "the Debian package sccache", e2e.environ["PATH"])
    env = {
        "SCCACHE_DIR": str(tmp_path / "sccache"),
        "SCCACHE_SERVER_PORT": str(_free_port()),  # never talk to a developer's own server
        "SCCACHE_IDLE_TIMEOUT": "120",  # a crashed test leaves no server behind for long
    }
    full = dict(e2e.environ, **env)
    subprocess.run([sccache, "--start-server"], env=full, capture_output=True, timeout=60, check=True)

    def stats() -> dict:
        out = subprocess.run([sccache, "--show-stats", "--stats-format", "json"], env=full, capture_output=True,
                             text=True, timeout=60, check=True).stdout
        return json.loads(out)["stats"]

    try:
        yield env, stats
    finally:
        subprocess.run([sccache, "--stop-server"], env=full, capture_output=True, timeout=60)


def _count(stats: dict, key: str) -> int:
    value = stats.get(key, 0)
    if isinstance(value, dict):  # {"counts": {"Rust": n}} in sccache's JSON
        return sum(v for v in value.get("counts", {}).values() if isinstance(v, int))
    return int(value)


def test_sccache_hits_across_target_directories_on_a_non_incremental_build(e2e, sccache_env, tmp_path):
    env, stats = sccache_env
    plan = e2e.plan("--", "cargo", "build", "--release", env=env)
    assert plan["decisions"]["sccache"]["status"] == "enabled"
    assert os.path.basename(plan["env"]["RUSTC_WRAPPER"]) == "sccache"
    # Two target directories given with --target-dir: sccache hashes CARGO_* variables,
    # so a different CARGO_TARGET_DIR per build would make every compilation a miss.
    base = {k: v for k, v in e2e.environ.items() if k != "CARGO_TARGET_DIR"}
    for name in ("first", "second"):
        proc = subprocess.run(
            [sys.executable, "-m", "buildpolicy", "exec", "--", "cargo", "build", "--release",
             "--target-dir", str(tmp_path / name)],
            cwd=e2e.root, env=dict(base, **env), capture_output=True, text=True, timeout=BUILD_TIMEOUT,
        )
        assert proc.returncode == 0, proc.stderr
    after = stats()
    assert _count(after, "cache_misses") >= 1, after  # the first build compiled the library
    assert _count(after, "cache_hits") >= 1, after  # the second one got it from the cache
    binary = tmp_path / "second" / "release" / "bphello"
    assert subprocess.run([binary], capture_output=True, text=True, timeout=30).stdout.strip() == QUIET


def test_sccache_not_used_on_an_incremental_build(e2e, sccache_env):
    env, stats = sccache_env
    plan = e2e.plan("--", "cargo", "build", env=env)
    assert plan["decisions"]["sccache"]["status"] == "skipped-incremental"
    assert "RUSTC_WRAPPER" not in plan["env"]
    e2e("exec", "--", "cargo", "build", env=env)
    assert (e2e.target / "debug" / "bphello").is_file()
    after = stats()
    assert _count(after, "compile_requests") == 0, after


def _nightly(environ) -> str | None:
    toolchains = Path(environ["RUSTUP_HOME"]) / "toolchains"
    try:
        return next((p.name for p in sorted(toolchains.iterdir()) if p.name.startswith("nightly")), None)
    except OSError:
        return None


def test_parallel_frontend_threads_accepted_by_the_nightly(e2e):
    nightly = _nightly(e2e.environ)
    if nightly is None:
        pytest.skip(f"no nightly toolchain under {e2e.environ['RUSTUP_HOME']}/toolchains: -Zthreads needs one")
    require("rustup", "rustup", e2e.environ["PATH"])
    plan = e2e.plan("--", "cargo", "build", "--profile", "selfdev")
    frontend = plan["decisions"]["frontend"]
    assert frontend["status"].startswith("enabled:nightly"), frontend["reason"]
    threads = frontend["value"]["threads"]
    assert f"-Zthreads={threads}" in " ".join(plan["env"].values())
    proc = e2e("exec", "--", "cargo", "build", "-v", "--profile", "selfdev")
    assert f"-Zthreads={threads}" in proc.stderr  # cargo -v shows each rustc command line
    comment = elf_comment(e2e.target / "selfdev" / "bphello")
    assert any(line.startswith("rustc version") and "nightly" in line for line in comment), comment


def test_feature_profile_changes_what_is_built(e2e):
    quiet = e2e("exec", "--", "cargo", "run", "-q")
    assert quiet.stdout.strip() == QUIET
    plan = e2e.plan("--set", "features=loud", "--", "cargo", "run", "-q")
    assert plan["decisions"]["features"]["status"] == "loud"
    assert plan["argv"] == ["cargo", "run", "-q", "--features", "loud"]
    loud = e2e("exec", "--set", "features=loud", "--", "cargo", "run", "-q")
    assert loud.stdout.strip() == LOUD
    # Explicit feature arguments are left alone.
    explicit = e2e("exec", "--set", "features=loud", "--", "cargo", "run", "-q", "--no-default-features")
    assert explicit.stdout.strip() == QUIET


@pytest.mark.parametrize("level", ["build", "target"])
def test_the_projects_own_config_rustflags_survive_alongside_ours(e2e, level):
    """cargo reads target-level rustflags if any, else [build] ones: ours must not hide the project's."""
    require("clang", "the Debian package clang", e2e.environ["PATH"])
    require("mold", "the Debian package mold", e2e.environ["PATH"])
    (e2e.root / ".cargo").mkdir()
    table = "build" if level == "build" else 'target.x86_64-unknown-linux-gnu'
    (e2e.root / ".cargo" / "config.toml").write_text(f'[{table}]\nrustflags = ["--cfg", "project_flag"]\n')
    lib = e2e.root / "src" / "lib.rs"
    lib.write_text(lib.read_text() + '\n#[cfg(project_flag)]\npub const PROJECT_FLAG: bool = true;\n'
                   '#[cfg(not(project_flag))]\npub const PROJECT_FLAG: bool = false;\n')
    main = e2e.root / "src" / "main.rs"
    main.write_text('fn main() {\n    println!("project_flag={}", bphello::PROJECT_FLAG);\n}\n')
    plan = e2e.plan("--", "cargo", "build")
    expected_var = "CARGO_BUILD_RUSTFLAGS" if level == "build" else "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS"
    assert "-fuse-ld=mold" in plan["env"][expected_var]
    e2e("exec", "--", "cargo", "build")
    binary = e2e.target / "debug" / "bphello"
    assert subprocess.run([binary], capture_output=True, text=True, timeout=30).stdout.strip() == "project_flag=true"
    assert any(line.startswith("mold ") for line in elf_comment(binary))
