"""cgroup v1/v2 limits read from fake trees: nesting, unlimited, CPU quota, container fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildpolicy.facts import FactStore, ProbeContext, cgroup, system

GiB = 1 << 30
PAGE_COUNTER_MAX = 9223372036854771712


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def v2_tree(root: Path, proc_path: str = "/user.slice/app.scope") -> Path:
    write(root, "proc/self/cgroup", f"0::{proc_path}\n")
    write(root, "sys/fs/cgroup/cgroup.controllers", "cpu memory io\n")
    (root / "sys/fs/cgroup" / proc_path.strip("/")).mkdir(parents=True, exist_ok=True)
    return root / "sys/fs/cgroup"


def v1_tree(root: Path, proc_path: str = "/docker/abc", cpu_dir: str = "cpu,cpuacct") -> None:
    write(root, "proc/self/cgroup", f"12:pids:/\n4:memory:{proc_path}\n3:cpu,cpuacct:{proc_path}\n1:name=systemd:/\n")
    (root / "sys/fs/cgroup/memory" / proc_path.strip("/")).mkdir(parents=True, exist_ok=True)
    (root / "sys/fs/cgroup" / cpu_dir / proc_path.strip("/")).mkdir(parents=True, exist_ok=True)
    write(root, "sys/fs/cgroup/memory/memory.limit_in_bytes", f"{PAGE_COUNTER_MAX}\n")


def store(root: Path, tmp_path: Path) -> FactStore:
    ctx = ProbeContext(cwd=tmp_path, environ={}, cache_dir=tmp_path / "cache", root=root, platform="linux")
    return FactStore(ctx)


def test_v2_nested_limits_take_the_tightest(tmp_path):
    base = v2_tree(tmp_path)
    write(base, "user.slice/memory.max", f"{8 * GiB}\n")
    write(base, "user.slice/app.scope/memory.max", "max\n")
    assert cgroup.memory_limit(cgroup.memory_levels(tmp_path)) == 8 * GiB
    write(base, "user.slice/app.scope/memory.max", f"{4 * GiB}\n")
    assert cgroup.memory_limit(cgroup.memory_levels(tmp_path)) == 4 * GiB


def test_v2_unlimited_is_null_with_a_reason(tmp_path):
    base = v2_tree(tmp_path)
    write(base, "user.slice/memory.max", "max\n")
    write(base, "user.slice/app.scope/memory.max", "max\n")
    facts = store(tmp_path, tmp_path)
    assert facts.get("cgroup.memory_limit") is None
    assert "no cgroup memory limit" in facts.unknown_reason("cgroup.memory_limit")


def test_v2_missing_path_falls_back_to_the_mount_root(tmp_path):
    # In a container the host path of /proc/self/cgroup does not exist under the
    # container's own /sys/fs/cgroup: the mount root is the container's cgroup.
    write(tmp_path, "proc/self/cgroup", "0::/system.slice/docker-abc.scope\n")
    write(tmp_path, "sys/fs/cgroup/cgroup.controllers", "memory\n")
    write(tmp_path, "sys/fs/cgroup/memory.max", f"{2 * GiB}\n")
    assert cgroup.levels(tmp_path / "sys/fs/cgroup", "/system.slice/docker-abc.scope") == [str(tmp_path / "sys/fs/cgroup")]
    assert store(tmp_path, tmp_path).get("cgroup.memory_limit") == 2 * GiB


def test_levels_walk_from_leaf_to_mount(tmp_path):
    base = v2_tree(tmp_path, "/a/b/c")
    assert cgroup.levels(base, "/a/b/c") == [str(base / "a/b/c"), str(base / "a/b"), str(base / "a"), str(base)]
    assert cgroup.levels(base, "/") == [str(base)]


def test_v1_limits_with_page_counter_max_as_unlimited(tmp_path):
    v1_tree(tmp_path)
    base = tmp_path / "sys/fs/cgroup/memory"
    write(base, "docker/memory.limit_in_bytes", f"{PAGE_COUNTER_MAX}\n")
    write(base, "docker/abc/memory.limit_in_bytes", f"{3 * GiB}\n")
    assert store(tmp_path, tmp_path).get("cgroup.memory_limit") == 3 * GiB
    write(base, "docker/abc/memory.limit_in_bytes", f"{PAGE_COUNTER_MAX}\n")
    assert store(tmp_path, tmp_path).get("cgroup.memory_limit") is None
    # A parent's limit binds the child even when the child has none.
    write(base, "docker/memory.limit_in_bytes", f"{5 * GiB}\n")
    assert store(tmp_path, tmp_path).get("cgroup.memory_limit") == 5 * GiB


def test_hybrid_system_reads_v1_memory_beside_an_empty_unified_tree(tmp_path):
    v1_tree(tmp_path, "/session")
    write(tmp_path, "proc/self/cgroup", "4:memory:/session\n0::/session\n")
    write(tmp_path, "sys/fs/cgroup/unified/cgroup.controllers", "\n")  # no memory controller here
    write(tmp_path, "sys/fs/cgroup/memory/session/memory.limit_in_bytes", f"{6 * GiB}\n")
    assert store(tmp_path, tmp_path).get("cgroup.memory_limit") == 6 * GiB


def test_memory_facts_are_capped_by_limit_and_headroom(tmp_path):
    base = v2_tree(tmp_path, "/app")
    write(base, "app/memory.max", f"{8 * GiB}\n")
    write(base, "app/memory.current", f"{3 * GiB}\n")
    # Inactive page cache is reclaimable: only the 2 GiB working set counts as used.
    write(base, "app/memory.stat", f"anon 100\ninactive_file {GiB}\nactive_file 5\n")
    write(tmp_path, "proc/meminfo", f"MemTotal: {32 * 1024 * 1024} kB\nMemFree: 1 kB\n"
                                    f"MemAvailable: {20 * 1024 * 1024} kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n")
    facts = store(tmp_path, tmp_path)
    assert facts.get("memory.total") == 8 * GiB
    assert facts.get("memory.available") == 6 * GiB
    assert facts.get("swap.total") == 0


def test_memory_available_below_the_cgroup_headroom_is_kept(tmp_path):
    base = v2_tree(tmp_path, "/app")
    write(base, "app/memory.max", f"{8 * GiB}\n")
    write(base, "app/memory.current", f"{GiB}\n")
    write(tmp_path, "proc/meminfo", f"MemTotal: {32 * 1024 * 1024} kB\nMemAvailable: {2 * 1024 * 1024} kB\n")
    facts = store(tmp_path, tmp_path)
    assert facts.get("memory.available") == 2 * GiB
    assert facts.get("memory.total") == 8 * GiB


def test_v1_headroom_uses_usage_in_bytes(tmp_path):
    v1_tree(tmp_path)
    base = tmp_path / "sys/fs/cgroup/memory/docker/abc"
    write(base, "memory.limit_in_bytes", f"{4 * GiB}\n")
    write(base, "memory.usage_in_bytes", f"{3 * GiB}\n")
    write(tmp_path, "proc/meminfo", f"MemTotal: {16 * 1024 * 1024} kB\nMemAvailable: {10 * 1024 * 1024} kB\n")
    assert store(tmp_path, tmp_path).get("memory.available") == GiB


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000", None), ("200000 100000", 2), ("150000 100000", 2), ("50000 100000", 1), ("400000", 4)],
)
def test_v2_cpu_quota(tmp_path, cpu_max, expected):
    base = v2_tree(tmp_path, "/app")
    write(base, "app/cpu.max", cpu_max + "\n")
    assert cgroup.cpu_quota(tmp_path) == expected


def test_v2_cpu_quota_of_a_parent_binds(tmp_path):
    base = v2_tree(tmp_path, "/parent/child")
    write(base, "parent/cpu.max", "100000 100000\n")
    write(base, "parent/child/cpu.max", "400000 100000\n")
    assert cgroup.cpu_quota(tmp_path) == 1


@pytest.mark.parametrize(("quota", "period", "expected"), [("-1", "100000", None), ("300000", "100000", 3),
                                                           ("25000", "100000", 1)])
def test_v1_cpu_quota_in_a_joined_controller_dir(tmp_path, quota, period, expected):
    v1_tree(tmp_path)
    base = tmp_path / "sys/fs/cgroup/cpu,cpuacct/docker/abc"
    write(base, "cpu.cfs_quota_us", quota + "\n")
    write(base, "cpu.cfs_period_us", period + "\n")
    assert cgroup.cpu_quota(tmp_path) == expected


def test_cpu_count_is_affinity_capped_by_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(system, "affinity_count", lambda: 16)
    base = v2_tree(tmp_path, "/app")
    write(base, "app/cpu.max", "300000 100000\n")
    assert store(tmp_path, tmp_path).get("cpu.count") == 3
    write(base, "app/cpu.max", "max 100000\n")
    assert store(tmp_path, tmp_path).get("cpu.count") == 16
    monkeypatch.setattr(system, "affinity_count", lambda: 2)
    write(base, "app/cpu.max", "800000 100000\n")
    assert store(tmp_path, tmp_path).get("cpu.count") == 2


def test_no_cgroup_files_at_all_means_no_limits(tmp_path):
    write(tmp_path, "proc/meminfo", "MemTotal: 1024 kB\nMemAvailable: 512 kB\n")
    facts = store(tmp_path, tmp_path)
    assert facts.get("cgroup.memory_limit") is None
    assert facts.get("memory.total") == 1024 * 1024
    assert cgroup.cpu_quota(tmp_path) is None
