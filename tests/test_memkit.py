"""The memory governor's test kit (bench/memkit) against the real kernel and the real rustc.

Cgroups are real: a limit must really bind, the OOM killer must really be counted, and
cleanup must really leave nothing behind. The workspace generator's calibration is
checked by building a generated crate with the machine's cargo and measuring rustc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.memkit import cgroups, workspaces
from bench.memkit.cgroups import CgroupError, MemoryCgroup
from tests.memcgroup import require_memory_cgroups
from tests.rustup import needs_rustup

MiB = 2**20
ALLOCATE = "import sys; block = bytearray(int(sys.argv[1])); print('allocated', len(block))"


def state(pid: int) -> str | None:
    """The /proc state letter of ``pid`` ("Z" for a zombie), or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until true; fail saying ``what`` did not happen (never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.02)


# --- cgroups ------------------------------------------------------------------------------

def test_a_child_over_the_limit_is_oom_killed_and_counted(memory_cgroup):
    cgroup = memory_cgroup(64 * MiB)
    small = cgroup.run([sys.executable, "-c", ALLOCATE, str(16 * MiB)], capture_output=True, text=True, timeout=60)
    assert small.returncode == 0, small.stderr
    assert small.stdout.strip() == f"allocated {16 * MiB}"
    assert cgroup.oom_kills() == 0

    big = cgroup.run([sys.executable, "-c", ALLOCATE, str(128 * MiB)], capture_output=True, text=True, timeout=60)
    assert big.returncode == -signal.SIGKILL, (big.returncode, big.stderr)
    assert "allocated" not in big.stdout
    assert cgroup.oom_kills() == 1
    peak = cgroup.max_usage()
    assert peak is None or 16 * MiB < peak <= 64 * MiB
    assert cgroup.usage() <= 64 * MiB


def test_wrapped_commands_and_their_children_run_inside(memory_cgroup):
    cgroup = memory_cgroup(64 * MiB)
    # sh forks a grandchild and reports its pid: both must be inside from the start.
    parent = cgroup.popen(["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(parent.stdout.readline())
        assert sorted(cgroup.pids()) == sorted([parent.pid, grandchild])
        relative = Path(f"/proc/{grandchild}/cgroup").read_text()
        assert f"/{cgroup.path.name}\n" in relative
    finally:
        parent.kill()
        parent.wait()


def test_the_launcher_never_runs_a_command_outside_the_cgroup(tmp_path):
    require_memory_cgroups()
    marker = tmp_path / "ran"
    with MemoryCgroup.create(64 * MiB) as cgroup:
        argv = cgroup.wrap(["touch", str(marker)])
    assert not cgroup.path.exists()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 125
    assert "cgroup.procs" in proc.stderr
    assert not marker.exists()


def test_close_kills_forking_stragglers_and_removes_the_cgroup():
    require_memory_cgroups()
    with MemoryCgroup.create(256 * MiB) as cgroup:
        # Forks for as long as it lives and ignores SIGTERM: only a loop of SIGKILLs ends it.
        forker = cgroup.popen(["sh", "-c", "trap '' TERM; while :; do sleep 60 & sleep 0.01; done"])
        wait_for(lambda: len(cgroup.pids()) >= 6, "the forking loop starting children")
        members = cgroup.pids()
    assert not cgroup.path.exists()
    assert forker.wait(timeout=30) == -signal.SIGKILL
    # Orphans are reaped by init; the forker is a zombie until we waited for it above.
    wait_for(lambda: all(state(pid) in (None, "Z") for pid in members), "every member dying")


def test_close_removes_cgroups_made_inside_and_their_processes():
    require_memory_cgroups()
    with MemoryCgroup.create(128 * MiB) as cgroup:
        inner = cgroup.path / "made-by-the-code-under-test" / "deeper"
        inner.mkdir(parents=True)
        sleeper = subprocess.Popen(["sh", "-c", f'echo $$ > "{inner}/cgroup.procs" && exec sleep 60'])
        wait_for(lambda: (inner / "cgroup.procs").read_text().split() == [str(sleeper.pid)], "the sleeper joining")
    assert sleeper.wait(timeout=30) == -signal.SIGKILL
    assert not cgroup.path.exists()


def test_close_after_the_block_raised_still_cleans_up():
    require_memory_cgroups()
    with pytest.raises(RuntimeError, match="the test failed"):
        with MemoryCgroup.create(64 * MiB) as cgroup:
            sleeper = cgroup.popen(["sleep", "60"])
            wait_for(lambda: cgroup.pids() == [sleeper.pid], "the sleeper joining")
            raise RuntimeError("the test failed")
    assert sleeper.wait(timeout=30) == -signal.SIGKILL
    assert not cgroup.path.exists()
    cgroup.close()  # a second close is harmless


def test_this_process_and_strangers_are_never_moved(memory_cgroup):
    cgroup = memory_cgroup(64 * MiB)
    before = Path("/proc/self/cgroup").read_text()
    for pid in (os.getpid(), os.getppid(), 1):
        with pytest.raises(ValueError, match="not a child of this process"):
            cgroup.adopt(pid)
    child = subprocess.Popen(["sleep", "60"])  # started outside, moved in afterwards
    try:
        assert child.pid not in cgroup.pids()
        cgroup.adopt(child.pid)
        assert cgroup.pids() == [child.pid]
    finally:
        child.kill()
        child.wait()
    assert Path("/proc/self/cgroup").read_text() == before
    assert os.getpid() not in cgroup.pids()


def test_the_new_cgroup_is_a_child_of_this_process_s_own():
    require_memory_cgroups()
    version, own = cgroups.own_cgroup()
    assert str(os.getpid()) in (own / "cgroup.procs").read_text().split()
    with MemoryCgroup.create(64 * MiB, name_prefix="bp-kit") as cgroup:
        assert cgroup.version == version
        assert cgroup.path.parent == own
        assert cgroup.path.name.startswith(f"bp-kit-{os.getpid()}-")
        limit = "memory.limit_in_bytes" if version == 1 else "memory.max"
        assert int((cgroup.path / limit).read_text()) == 64 * MiB
    with pytest.raises(ValueError):
        MemoryCgroup.create(64 * MiB, name_prefix="../escape")


def test_skip_reason_says_why_when_no_cgroup_can_be_made():
    require_memory_cgroups()  # root here; the same code run as nobody must explain, not crash
    _, own = cgroups.own_cgroup()
    before = sorted(path.name for path in own.iterdir())
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); from bench.memkit import cgroups; "
             "print(cgroups.skip_reason())")
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-c", probe, str(Path(__file__).resolve().parent.parent)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("cannot create a cgroup under ") and "Permission denied" in proc.stdout
    assert sorted(path.name for path in own.iterdir()) == before


# /proc/<pid>/cgroup and mountinfo texts of machine kinds other than this one.
HYBRID_CGROUP = "4:memory:/process_api/abc\n1:cpu:/\n0::/\n"
HYBRID_MOUNTS = (
    "30 25 0:27 / /sys/fs/cgroup/memory rw,relatime shared:8 - cgroup cgroup rw,memory\n"
    "31 25 0:28 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n")
V2_CGROUP = "0::/user.slice/user-1000.slice/session-2.scope\n"
V2_MOUNTS = "35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
CONTAINER_CGROUP = "9:memory:/docker/f00d\n0::/\n"
CONTAINER_MOUNTS = "40 30 0:33 /docker/f00d /sys/fs/cgroup/my\\040memory ro,nosuid - cgroup cgroup rw,memory\n"


def test_locate_prefers_v1_memory_and_maps_mount_roots():
    assert cgroups.locate(HYBRID_CGROUP, HYBRID_MOUNTS) == (1, Path("/sys/fs/cgroup/memory/process_api/abc"))
    assert cgroups.locate(V2_CGROUP, V2_MOUNTS) == (
        2, Path("/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope"))
    # A container sees its own subtree mounted (with an escaped space in the mount point).
    assert cgroups.locate(CONTAINER_CGROUP, CONTAINER_MOUNTS) == (1, Path("/sys/fs/cgroup/my memory"))
    with pytest.raises(CgroupError, match="no memory cgroup"):
        cgroups.locate("1:cpu:/\n", HYBRID_MOUNTS)
    with pytest.raises(CgroupError, match="not mounted"):
        cgroups.locate("4:memory:/elsewhere\n", CONTAINER_MOUNTS)


def test_cgroup2_without_the_memory_controller_is_recognised():
    mounts = [line.split() for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    unified = [Path(fields[4]) for fields in mounts if fields[fields.index("-") + 1] == "cgroup2"]
    if not unified or "memory" in (unified[0] / "cgroup.controllers").read_text().split():
        pytest.skip("this machine has no cgroup2 mount without the memory controller")
    problem = cgroups.v2_memory_problem(unified[0])
    assert problem is not None and "memory controller is not available" in problem
    assert cgroups.skip_reason() is None or "v2" in cgroups.skip_reason()


# --- workspaces ---------------------------------------------------------------------------

def test_workspaces_are_deterministic_and_rewriting_keeps_mtimes(tmp_path):
    crates = {"alpha": 1234, "beta": 0}
    first = workspaces.write_workspace(tmp_path / "one", crates, deps={"beta": ["alpha"]}, bin_name="app")
    second = workspaces.write_workspace(tmp_path / "two", crates, deps={"beta": ["alpha"]}, bin_name="app")
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)
    mtimes = {name: (first / name).stat().st_mtime_ns for name in files}
    time.sleep(0.01)
    workspaces.write_workspace(first, crates, deps={"beta": ["alpha"]}, bin_name="app")
    assert mtimes == {name: (first / name).stat().st_mtime_ns for name in files}
    source = (first / "crates" / "alpha" / "src" / "lib.rs").read_text()
    body = source.split("= [", 1)[1].rsplit("];", 1)[0]
    assert len([value for value in body.replace("\n", "").split(",") if value.strip()]) == 1234
    assert 'alpha = { path = "../alpha" }' in (first / "crates" / "beta" / "Cargo.toml").read_text()
    assert (first / "crates" / "alpha" / "src" / "lib.rs").read_text() != (
        workspaces.crate_source("other", 1234)), "two crates of one size must differ"


def test_workspace_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="lowercase identifier"):
        workspaces.write_workspace(tmp_path, {"Bad-Name": 1})
    with pytest.raises(ValueError, match="unknown crates"):
        workspaces.write_workspace(tmp_path, {"a": 1}, deps={"a": ["b"]})
    with pytest.raises(ValueError, match="also a lib"):
        workspaces.write_workspace(tmp_path, {"a": 1}, bin_name="a")
    with pytest.raises(ValueError, match="spin: unknown crates"):
        workspaces.write_workspace(tmp_path, {"a": 1}, spin={"b": 10})
    with pytest.raises(ValueError, match="below rustc's base"):
        workspaces.elements_for_mib(workspaces.BASE_MIB / 2)


def test_the_calibration_fit_and_the_scenarios_agree():
    base, slope = workspaces.fit(workspaces.CALIBRATION)
    assert base == pytest.approx(workspaces.BASE_MIB, abs=0.1)
    assert slope == pytest.approx(workspaces.MIB_PER_ELEMENT, rel=1e-3)
    for target in (100, 150, 180, 1000, 2200):
        assert workspaces.expected_peak_mib(workspaces.elements_for_mib(target)) == pytest.approx(target, rel=1e-3)
    heavy, light = workspaces.heavy_pair(), workspaces.light_six()
    assert len(heavy) == 2 and len(light) == 6
    assert all(workspaces.expected_peak_mib(n) == pytest.approx(2.2e9 / MiB, rel=0.01) for n in heavy.values())
    assert all(workspaces.expected_peak_mib(n) == pytest.approx(180e6 / MiB, rel=0.01) for n in light.values())


@needs_rustup
def test_a_generated_crate_s_rustc_peak_matches_the_calibration(tmp_path, memory_cgroup):
    target_mib = 150
    elements = workspaces.elements_for_mib(target_mib)
    # "after" depends on "measured" and spins: compile time without memory.
    root = workspaces.write_workspace(tmp_path / "ws", {"measured": elements, "after": 0},
                                      deps={"after": ["measured"]}, bin_name="app",
                                      spin={"after": workspaces.spin_for_seconds(0.3)})
    cgroup = memory_cgroup(1024 * MiB)
    build = workspaces.cargo_build(root, profile="dev", jobs=2, argv_prefix=cgroup.wrap([]), timeout=600)
    assert build.returncode == 0, build.stderr
    runs = {run.crate: run for run in build.runs}
    assert [run.crate for run in build.runs] == ["measured", "after", "app"]  # deps finish first
    assert (runs["measured"].crate_types, runs["app"].crate_types) == ("lib", "bin")
    peak_mib = runs["measured"].peak_bytes / MiB
    assert target_mib * 0.65 <= peak_mib <= target_mib * 1.35, (peak_mib, target_mib)
    assert runs["after"].peak_bytes < (workspaces.BASE_MIB + 50) * MiB  # spinning costs no memory
    # The cgroup held the build: rustc, cargo's grandchild, was charged to it (all but the
    # rustc binary's shared pages, which are charged where they were first read).
    assert cgroup.oom_kills() == 0
    max_usage = cgroup.max_usage()
    assert max_usage is None or max_usage >= runs["measured"].peak_bytes - workspaces.BASE_MIB * MiB
    app = subprocess.run([str(root / "target" / "debug" / "app")], capture_output=True, text=True, timeout=30)
    assert app.stdout.strip() == str(elements)
