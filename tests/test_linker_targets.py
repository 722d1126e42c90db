"""Cross builds: the linker decided per target triple (issue 14, item 7).

The targets come from ``--target`` (several), ``CARGO_BUILD_TARGET`` or ``[build] target``;
each foreign target gets a fast linker only where a driver links a program for it (the
real smoke test, with a real cross toolchain where Debian ships one), its own
``CARGO_TARGET_<TRIPLE>_*`` variables and a status under ``targets``. The end-to-end
test cross-compiles a crate for aarch64 with Debian's rustc and its arm64 standard library.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from buildpolicy_plugins import linker as linker_plugin
from buildpolicy_plugins.linker_targets import clang_triple, gnu_triple
from tests.test_e2e_cargo import QUIET, _in_ci, e2e, elf_comment, require  # noqa: F401 - e2e is a fixture
from tests.test_plugin_linker import LLD, MOLD, X86, project, run  # noqa: F401 - project is a fixture

ARM = "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU"
AARCH64 = "aarch64-unknown-linux-gnu"
CROSS = ("cargo", "build", "--target", AARCH64)
# What the end-to-end cross build needs (scripts/install-system-deps.sh installs them).
CROSS_PACKAGES = "rustc-web, cargo-web, gcc-aarch64-linux-gnu and libstd-rust-web-dev:arm64 (dpkg --add-architecture arm64)"


def targets(result) -> dict:
    return {t.triple: t for t in result.decisions["linker"].targets}


def test_each_target_of_the_cargo_argv_gets_its_own_variables_and_status(project, base_env):
    argv = (*CROSS, "--target=riscv64gc-unknown-linux-gnu", "--target", "x86_64-pc-windows-gnu")
    result = run(project, base_env, facts=MOLD, argv=argv)
    decision = result.decisions["linker"]
    assert decision.status == "mold"  # the host's status, as before
    assert result.set_env[f"{X86}_LINKER"] == "/usr/bin/clang"  # build scripts link for the host
    found = targets(result)
    assert list(found) == [AARCH64, "riscv64gc-unknown-linux-gnu", "x86_64-pc-windows-gnu"]
    assert found[AARCH64].status == "mold"
    assert result.set_env[f"{ARM}_LINKER"] == "/usr/bin/clang"
    # rustc does not tell clang the target: the flag does, into that target's variable only.
    assert result.set_env[f"{ARM}_RUSTFLAGS"] == f"-C link-arg=--target={AARCH64} -C link-arg=-fuse-ld=mold"
    assert result.set_env["CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_RUSTFLAGS"] == (
        "-C link-arg=--target=riscv64-unknown-linux-gnu -C link-arg=-fuse-ld=mold")
    # Not a Linux target: nothing set for it, and never the host's linker.
    assert found["x86_64-pc-windows-gnu"].status == "skipped-os"
    assert not any(name.startswith("CARGO_TARGET_X86_64_PC_WINDOWS_GNU") for name in result.set_env)
    # The host's rustflags variable is not read by cargo for --target builds: not set.
    assert f"{X86}_RUSTFLAGS" not in result.set_env
    as_json = decision.to_json()["targets"]
    assert as_json[AARCH64] == {"value": "mold", "status": "mold", "reason": found[AARCH64].reason}
    assert any(line.startswith(f"target {AARCH64}: mold") for line in decision.details)


def test_the_targets_come_from_the_variable_and_the_cargo_config_too(project, base_env):
    from_env = run(project, base_env, facts=LLD, argv=("cargo", "build"), env={"CARGO_BUILD_TARGET": AARCH64})
    assert targets(from_env)[AARCH64].status == "lld"
    assert from_env.set_env[f"{ARM}_RUSTFLAGS"].endswith("-fuse-ld=lld")
    (project / ".cargo").mkdir()
    (project / ".cargo" / "config.toml").write_text(f'[build]\ntarget = ["{AARCH64}", "targets/board.json"]\n')
    from_config = run(project, base_env, facts=LLD, argv=("cargo", "build"))
    assert list(targets(from_config)) == [AARCH64, "board"]  # a target file is named by its stem, as cargo does
    assert from_config.facts.get("cargo.targets") == [AARCH64, "board"]
    # The argv beats the variable, which beats the configuration.
    both = run(project, base_env, facts=LLD, argv=CROSS, env={"CARGO_BUILD_TARGET": "riscv64gc-unknown-linux-gnu"})
    assert list(targets(both)) == [AARCH64]
    # The host named as the target is the host: nothing foreign, the host's flags as before.
    host = run(project, base_env, facts=MOLD, argv=("cargo", "build", "--target", "x86_64-unknown-linux-gnu"))
    assert not host.decisions["linker"].targets
    assert host.set_env[f"{X86}_RUSTFLAGS"] == "-C link-arg=-fuse-ld=mold"


def test_inherited_knob_and_profile_apply_per_target(project, base_env):
    inherited = run(project, base_env, facts=MOLD, argv=CROSS, env={f"{ARM}_LINKER": "aarch64-linux-gnu-gcc"})
    assert targets(inherited)[AARCH64].status == "inherited:aarch64-linux-gnu-gcc"
    assert inherited.decisions["linker"].status == "mold"  # the host is still decided
    assert f"{ARM}_RUSTFLAGS" not in inherited.set_env
    system = run(project, base_env, facts=MOLD, argv=CROSS, sets=["linker=system"])
    assert targets(system)[AARCH64].status == "system" and f"{ARM}_LINKER" not in system.set_env
    lto = run(project, base_env, facts=MOLD, argv=(*CROSS, "--profile", "release-lto"))
    assert targets(lto)[AARCH64].status == "skipped-profile:release-lto"
    mac = run(project, base_env, facts={**MOLD, "os": "macos", "host.triple": "aarch64-apple-darwin"}, argv=CROSS)
    assert mac.decisions["linker"].status == "skipped-os" and not mac.decisions["linker"].targets


def test_other_rustflags_reach_every_target_and_a_shared_variable_keeps_only_common_ones(project, base_env):
    (project / "policies").mkdir()
    (project / "policies" / "flags.toml").write_text('[[rule]]\nid = "debuginfo"\nwhen = "true"\nrustflags = ["-C", "debuginfo=1"]\n')
    (project / "buildpolicy.toml").write_text('policies = ["policies"]\n')
    argv = (*CROSS, "--target", "riscv64gc-unknown-linux-gnu")
    result = run(project, base_env, facts=MOLD, argv=argv)
    assert result.set_env[f"{ARM}_RUSTFLAGS"] == f"-C debuginfo=1 -C link-arg=--target={AARCH64} -C link-arg=-fuse-ld=mold"
    assert result.set_env["CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_RUSTFLAGS"].startswith("-C debuginfo=1 ")
    # RUSTFLAGS from the caller is read for every target: the per-target linker flags
    # cannot go there, only what all targets share (and the caller is told).
    shared = run(project, base_env, facts=MOLD, argv=argv, env={"RUSTFLAGS": "-C opt-level=1"})
    assert shared.set_env["RUSTFLAGS"] == "-C opt-level=1 -C debuginfo=1"
    assert any("only the flags they share" in warning for warning in shared.warnings)


def test_triple_spellings_for_clang_and_debian_cross_gcc():
    assert clang_triple("riscv64gc-unknown-linux-gnu") == "riscv64-unknown-linux-gnu"
    assert clang_triple(AARCH64) == AARCH64
    assert gnu_triple(AARCH64) == "aarch64-linux-gnu"
    assert gnu_triple("armv7-unknown-linux-gnueabihf") == "arm-linux-gnueabihf"
    assert gnu_triple("riscv64gc-unknown-linux-gnu") == "riscv64-linux-gnu"


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_a_driver_that_links_for_the_host_instead_fails_the_cross_smoke_test(project, tmp_path, base_env):
    # A "clang" that ignores --target and links with the host's gcc: its program is an
    # x86_64 ELF, which must not pass for aarch64 (it cannot be run to find out).
    gcc = shutil.which("gcc", path=base_env["PATH"])
    mold = shutil.which("mold", path=base_env["PATH"])
    if gcc is None or mold is None:
        pytest.skip("gcc and mold are needed (scripts/install-system-deps.sh)")
    directory = tmp_path / "bin"
    directory.mkdir()
    _script(directory / "clang", 'for a; do shift; case "$a" in --target=*) ;; *) set -- "$@" "$a";; esac; done\n'
            f'exec {gcc} "$@"\n')
    cross = ((f"--target={AARCH64}",), AARCH64, 183)
    ok, why = linker_plugin.smoke_test(str(directory / "clang"), mold, "mold", environ=base_env,
                                       scratch_parent=tmp_path / "scratch", cross=cross)
    assert ok is False and "ELF machine 62, not aarch64-unknown-linux-gnu" in why
    environ = dict(base_env, PATH=f"{directory}{os.pathsep}{base_env['PATH']}")
    result = run(project, environ, hermetic=False, argv=CROSS, facts={"tool.ld.lld": None})
    target = targets(result)[AARCH64]
    assert target.status == "system" and "ELF machine 62" in target.reason
    assert f"{ARM}_LINKER" not in result.set_env


def _cross_toolchain(environ) -> tuple[str, str]:
    """Debian's cargo and rustc with the aarch64 standard library, or skip (fail in CI)."""
    cargo, rustc = Path("/usr/bin/cargo"), Path("/usr/bin/rustc")
    std = Path("/usr/lib/rustlib") / AARCH64 / "lib"
    found = cargo.is_file() and rustc.is_file() and std.is_dir() and any(std.glob("libstd-*.rlib"))
    found = found and shutil.which("aarch64-linux-gnu-gcc", path=environ["PATH"]) is not None
    if not found:
        message = f"no Rust cross toolchain for {AARCH64}: install {CROSS_PACKAGES}"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return str(cargo), str(rustc)


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


@pytest.mark.parametrize("linker", ["mold", "lld"])
def test_a_real_cross_build_links_an_aarch64_binary_with_the_fast_linker(e2e, tmp_path, linker):  # noqa: F811
    require("clang", "the Debian package clang", e2e.environ["PATH"])
    require("mold" if linker == "mold" else "ld.lld", f"the Debian package {linker}", e2e.environ["PATH"])
    cargo, rustc = _cross_toolchain(e2e.environ)
    # Debian's cargo and rustc first on PATH (rustup's toolchains here have no aarch64 std).
    tools = tmp_path / "debian-rust"
    tools.mkdir()
    for name, real in (("cargo", cargo), ("rustc", rustc), ("rustdoc", "/usr/bin/rustdoc")):
        (tools / name).symlink_to(real)
    env = {"PATH": f"{tools}{os.pathsep}{e2e.environ['PATH']}"}
    args = ("--set", f"linker={linker}", "--", "cargo", "build", "--target", AARCH64)
    plan = e2e.plan(*args, env=env)
    target = plan["decisions"]["linker"]["targets"][AARCH64]
    assert target["status"] == linker, target["reason"]
    assert plan["env"][f"{ARM}_RUSTFLAGS"].endswith(f"-C link-arg=--target={AARCH64} -C link-arg=-fuse-ld={linker}")
    proc = e2e("exec", *args, env=env)
    assert f"{AARCH64}: {linker}" in proc.stderr  # the summary line names the target's linker
    binary = e2e.target / AARCH64 / "debug" / "bphello"
    assert _elf_machine(binary) == 183  # EM_AARCH64: a foreign binary
    if shutil.which("file"):
        assert "ARM aarch64" in subprocess.run(["file", str(binary)], capture_output=True, text=True).stdout
    comment = elf_comment(binary)
    if linker == "mold":
        assert any(line.startswith("mold ") for line in comment), comment
    else:
        assert any(line.startswith("Linker: ") and "LLD" in line for line in comment), comment
    qemu = shutil.which("qemu-aarch64", path=e2e.environ["PATH"])
    if qemu and Path("/usr/aarch64-linux-gnu").is_dir():  # qemu-user runs it: the binary works
        ran = subprocess.run([qemu, "-L", "/usr/aarch64-linux-gnu", str(binary)], capture_output=True, text=True, timeout=60)
        assert ran.stdout.strip() == QUIET, ran.stderr
    log = Path(e2e.environ["XDG_STATE_HOME"]) / "buildpolicy" / "actions.jsonl"
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["exit_code"] == 0
