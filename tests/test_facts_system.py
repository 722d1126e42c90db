"""Machine probes against fake trees: platform, meminfo, mounts, processes, tools, environment."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from buildpolicy.facts import FactStore, ProbeContext, memory, mounts, processes, system


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_store(tmp_path: Path, environ=None, platform="linux", **kw) -> FactStore:
    ctx = ProbeContext(cwd=kw.pop("cwd", tmp_path), environ=environ or {}, cache_dir=tmp_path / "cache",
                       root=tmp_path, platform=platform, **kw)
    return FactStore(ctx)


@pytest.mark.parametrize(("platform", "expected"), [
    ("linux", "linux"), ("darwin", "macos"), ("win32", "windows"), ("cygwin", "windows"),
    ("freebsd14", "freebsd"), ("openbsd7", "openbsd"),
])
def test_os_names(platform, expected):
    assert system.os_name(platform) == expected


@pytest.mark.parametrize(("machine", "expected"), [
    ("x86_64", "x86_64"), ("AMD64", "x86_64"), ("amd64", "x86_64"), ("arm64", "aarch64"), ("aarch64", "aarch64"),
])
def test_arch_is_normalised(machine, expected):
    assert system.normalise_arch(machine) == expected


@pytest.mark.parametrize(("os_", "arch", "libc", "expected"), [
    ("linux", "x86_64", "gnu", "x86_64-unknown-linux-gnu"),
    ("linux", "aarch64", "gnu", "aarch64-unknown-linux-gnu"),
    ("linux", "x86_64", "musl", "x86_64-unknown-linux-musl"),
    ("macos", "x86_64", "gnu", "x86_64-apple-darwin"),
    ("macos", "aarch64", "gnu", "aarch64-apple-darwin"),
    ("windows", "x86_64", "gnu", "x86_64-pc-windows-msvc"),
    ("freebsd", "x86_64", "gnu", "x86_64-unknown-freebsd"),
    ("haiku", "x86_64", "gnu", None),
])
def test_host_triples(os_, arch, libc, expected):
    assert system.host_triple(os_, arch, libc) == expected


def test_platform_override_drives_os_and_triple(tmp_path, monkeypatch):
    monkeypatch.setattr(system, "machine", lambda: "arm64")
    facts = make_store(tmp_path, platform="darwin")
    assert (facts.get("os"), facts.get("arch"), facts.get("host.triple")) == ("macos", "aarch64", "aarch64-apple-darwin")


def test_meminfo_is_parsed_in_bytes(tmp_path):
    write(tmp_path, "proc/meminfo", "MemTotal:       16318708 kB\nMemFree:  1 kB\nMemAvailable:    8000000 kB\n"
                                    "SwapTotal:       2097148 kB\nSwapFree:        1048576 kB\n")
    facts = make_store(tmp_path)
    assert facts.get("memory.total") == 16318708 * 1024
    assert facts.get("memory.available") == 8000000 * 1024
    assert facts.get("swap.total") == 2097148 * 1024
    assert facts.get("swap.free") == 1048576 * 1024


def test_meminfo_is_read_once_for_all_memory_facts(tmp_path, monkeypatch):
    write(tmp_path, "proc/meminfo", "MemTotal: 4 kB\nMemAvailable: 2 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n")
    calls = []
    real = memory.parse_meminfo
    monkeypatch.setattr(memory, "parse_meminfo", lambda text: calls.append(1) or real(text))
    facts = make_store(tmp_path)
    for name in ("memory.total", "memory.available", "swap.total", "swap.free"):
        facts.get(name)
    assert calls == [1]


def test_missing_meminfo_gives_null_and_a_reason(tmp_path):
    facts = make_store(tmp_path)
    assert facts.get("memory.total") is None
    assert "meminfo" in facts.unknown_reason("memory.total")
    write(tmp_path, "proc/meminfo", "MemTotal: 4 kB\n")
    facts = make_store(tmp_path)
    assert facts.get("memory.available") is None
    assert "MemAvailable" in facts.unknown_reason("memory.available")


MOUNTS = """\
/dev/sda1 / ext4 rw,relatime 0 0
proc /proc proc rw 0 0
tmpfs /tmpfoo tmpfs rw 0 0
tmpfs /run tmpfs rw 0 0
"""


@pytest.mark.parametrize(("extra", "expected"), [
    ("", False),
    ("tmpfs /tmp tmpfs rw,nosuid 0 0\n", True),
    ("none /tmp ramfs rw 0 0\n", True),
    ("/dev/sdb1 /tmp xfs rw 0 0\n", False),
    # A later mount over /tmp hides the earlier one.
    ("tmpfs /tmp tmpfs rw 0 0\n/dev/sdb1 /tmp ext4 rw 0 0\n", False),
    ("/dev/sdb1 /tmp ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n", True),
])
def test_tmp_is_memory_from_mounts(tmp_path, extra, expected):
    write(tmp_path, "proc/self/mounts", MOUNTS + extra)
    assert make_store(tmp_path).get("fs.tmp_is_memory") is expected


def test_tmpfs_root_counts_for_tmp():
    assert mounts.filesystem_of("/tmp", [("/", "tmpfs"), ("/home", "ext4")]) == "tmpfs"
    assert mounts.parse_mounts("tmpfs /my\\040tmp tmpfs rw 0 0\n") == [("/my tmp", "tmpfs")]


def fake_proc(tmp_path: Path, comms: dict[str, str]) -> None:
    for pid, comm in comms.items():
        write(tmp_path, f"proc/{pid}/comm", comm + "\n")
    (tmp_path / "proc/self").mkdir(parents=True, exist_ok=True)
    (tmp_path / "proc/999").mkdir()  # a process that exited: no comm left


def test_process_facts_from_proc_comm(tmp_path):
    fake_proc(tmp_path, {"1": "systemd", "120": "earlyoom", "300": "rustc", "301": "rustc", "302": "cargo"})
    facts = make_store(tmp_path)
    assert facts.get("process.earlyoom") is True
    assert facts.get("process.oomd") is False
    assert facts.get("process.rustc_count") == 2


def test_oomd_without_earlyoom(tmp_path):
    fake_proc(tmp_path, {"1": "systemd", "77": "systemd-oomd"})
    facts = make_store(tmp_path)
    assert (facts.get("process.earlyoom"), facts.get("process.oomd"), facts.get("process.rustc_count")) == (False, True, 0)


def test_processes_are_scanned_once(tmp_path, monkeypatch):
    fake_proc(tmp_path, {"1": "earlyoom"})
    calls = []
    real = processes.scan_proc
    monkeypatch.setattr(processes, "scan_proc", lambda proc: calls.append(proc) or real(proc))
    facts = make_store(tmp_path)
    facts.get("process.earlyoom"), facts.get("process.oomd"), facts.get("process.rustc_count")
    assert calls == [str(tmp_path / "proc")]


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_tools_are_found_on_the_callers_path_only(tmp_path):
    mold = executable(tmp_path / "bin/mold")
    (tmp_path / "bin/clang").write_text("not executable")
    facts = make_store(tmp_path, environ={"PATH": str(tmp_path / "bin")})
    assert facts.get("tool.mold") == str(mold)
    assert facts.get("tool.clang") is None
    assert "not on PATH" in facts.unknown_reason("tool.clang")
    # git is on this process's PATH, but not on the caller's.
    assert facts.get("tool.git") is None
    # Any tool name is a fact.
    executable(tmp_path / "bin/cargo-nextest")
    assert facts.get("tool.cargo-nextest") == str(tmp_path / "bin/cargo-nextest")


def test_relative_path_entries_are_relative_to_the_callers_directory(tmp_path):
    lld = executable(tmp_path / "project/tools/ld.lld")
    facts = make_store(tmp_path, environ={"PATH": "tools"}, cwd=tmp_path / "project")
    assert facts.get("tool.ld.lld") == str(lld)


@pytest.mark.parametrize(("value", "expected"), [
    (None, False), ("", False), ("0", False), ("false", False), ("FALSE", False), ("no", False), ("off", False),
    ("1", True), ("true", True), ("yes", True), ("woodpecker", True),
])
def test_ci(tmp_path, value, expected):
    environ = {} if value is None else {"CI": value}
    assert make_store(tmp_path, environ=environ).get("ci") is expected


def test_env_facts_read_the_callers_environment(tmp_path):
    assert "BUILDPOLICY_TEST_ONLY" not in os.environ
    facts = make_store(tmp_path, environ={"BUILDPOLICY_TEST_ONLY": "x y", "EMPTY": ""})
    assert facts.get("env.BUILDPOLICY_TEST_ONLY") == "x y"
    assert facts.get("env.EMPTY") == ""
    assert facts.get("env.HOME") is None
    assert facts.unknown_reason("env.HOME") == "HOME is not set"
