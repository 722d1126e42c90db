"""sccache-dist through ``buildpolicy exec`` with a real scheduler and build server on loopback (DESIGN §12).

The farm (``tests/distfarm.py``) runs sccache-dist's scheduler and one overlay
build server with generated tokens on free 127.0.0.1 ports; the machines are
the simulated developer machines of the Redis tests (their own HOME, state and
cache dirs, so their own private sccache servers, stopped afterwards; the
default port is never touched). Counts come from sccache's own statistics of
the private server (``buildpolicy cache --format json``: "distributed compiles").
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

from tests.distfarm import farm  # noqa: F401 - fixture
from tests.redisserver import redis  # noqa: F401 - fixture
from tests.test_sccache_shared_e2e import CRATES, Machine, _require_sccache_016, _workspace, machines  # noqa: F401

PACKAGING = "sccache-dist: packaging the toolchain"


def _dist(machine: Machine, farm_) -> Machine:
    machine.env.update(BUILDPOLICY_SCCACHE_DIST_SCHEDULER=farm_.url,
                       BUILDPOLICY_SCCACHE_DIST_TOKEN=f"file:{farm_.token_file}", BUILDPOLICY_SCCACHE="on")
    return machine


def _archives(machine: Machine) -> list[Path]:
    return sorted((machine.root / "home" / "cache" / "buildpolicy" / "sccache" / "toolchains").glob("*.tar.gz"))


def _second_project(tmp_path: Path) -> Path:
    other = tmp_path / "other"
    shutil.copytree(_workspace(tmp_path / "second"), other)
    return other


def test_a_distributed_build_runs_on_the_build_server_with_the_toolchain_packaged_once(farm, machines, tmp_path):
    _require_sccache_016()
    ws = _workspace(tmp_path)
    a = _dist(machines("alice", ws, "local", jobs=2), farm)
    plan = a.plan()
    sccache = plan["decisions"]["sccache"]
    assert sccache["status"] == "enabled:local+dist", sccache["reason"]
    assert any("may run on a build server" in line for line in sccache["details"])
    conf = Path(plan["env"]["SCCACHE_CONF"])
    assert conf.stat().st_mode & 0o777 == 0o600 and farm.client_token in conf.read_text()
    assert farm.client_token not in json.dumps(plan)  # the token is in the 0600 file only

    # Two execs at once, in two projects, on a machine with no archive yet: one packs, the other waits for it.
    other = _second_project(tmp_path)
    results: dict[str, subprocess.CompletedProcess] = {}

    def build(name: str, cwd: Path) -> None:
        results[name] = subprocess.run([*_buildpolicy(), "exec", "--", "cargo", "build", "--release"], cwd=cwd,
                                       env=a.env, capture_output=True, text=True, timeout=1200)

    threads = [threading.Thread(target=build, args=(name, cwd)) for name, cwd in (("ws", ws), ("other", other))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for proc in results.values():
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert sum(PACKAGING in proc.stderr for proc in results.values()) == 1, [p.stderr for p in results.values()]
    (archive,) = _archives(a)
    packed_at = archive.stat().st_mtime_ns

    plan = a.plan()  # the client configuration now lists the archive: another server configuration
    assert plan["decisions"]["sccache"]["status"] == "enabled:local+dist"
    assert f'archive = "{archive}"' in Path(plan["env"]["SCCACHE_CONF"]).read_text()
    stats = a.stats()
    assert stats["dist"]["reachable"] is True, stats
    assert stats["stats"]["dist_compiles"] > 0, stats  # compiled on the build server

    # A later build of either project reuses the archive: nothing packed again. (An edit, so that
    # the crates miss the cache and go to the build server again.)
    with (other / CRATES[0] / "src" / "lib.rs").open("a") as source:
        source.write("pub fn edited() -> u64 { 7 }\n")
    again = subprocess.run([*_buildpolicy(), "exec", "--", "cargo", "build", "--release"], cwd=other, env=a.env,
                           capture_output=True, text=True, timeout=1200)
    assert again.returncode == 0, again.stderr[-3000:]
    assert PACKAGING not in again.stderr
    assert _archives(a) == [archive] and archive.stat().st_mtime_ns == packed_at
    assert a.stats()["stats"]["dist_compiles"] > stats["stats"]["dist_compiles"]
    out = subprocess.run([a.root / "target" / "release" / "app"], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == str(sum(len(c) for c in CRATES))


def test_the_scheduler_down_compiles_here_and_the_build_succeeds(farm, machines, tmp_path):
    _require_sccache_016()
    ws = _workspace(tmp_path)
    a = _dist(machines("alice", ws, "local", jobs=2), farm)
    assert a.plan()["decisions"]["sccache"]["status"] == "enabled:local+dist"
    farm.stop_scheduler()
    plan = a.plan()
    sccache = plan["decisions"]["sccache"]
    assert sccache["status"] == "fallback-local:dist-down", sccache
    assert "refused" in sccache["reason"] and "SCCACHE_CONF" not in plan["env"]
    proc = a.build()
    assert PACKAGING not in proc.stderr  # nothing to package for a farm that is not used
    assert (a.root / "target" / "release" / "app").exists()
    assert not _archives(a)
    # The prompt decides from the recorded probe: still no sccache-dist.
    assert "SCCACHE_CONF" not in json.loads(a.run("env", "--format", "json").stdout)["set"]


def test_redis_and_the_farm_together(farm, redis, machines, tmp_path):
    """A shared backend and sccache-dist combine: enabled:redis+dist; each down on its own."""
    _require_sccache_016()
    ws = _workspace(tmp_path)
    a = _dist(machines("alice", ws, redis.url, jobs=2), farm)
    assert a.stats()["reachable"] is True
    up = a.plan()
    assert up["decisions"]["sccache"]["status"] == "enabled:redis+dist", up["decisions"]["sccache"]["reason"]
    assert up["env"]["SCCACHE_REDIS_ENDPOINT"] == redis.url and "SCCACHE_CONF" in up["env"]
    local = _dist(machines("bob", ws, "local", jobs=2), farm).plan()
    assert local["env"]["SCCACHE_SERVER_UDS"] != up["env"]["SCCACHE_SERVER_UDS"]
    redis.stop()
    down = a.plan()
    assert down["decisions"]["sccache"]["status"] == "fallback-local:redis-down+dist"
    assert "SCCACHE_REDIS_ENDPOINT" not in down["env"] and "SCCACHE_CONF" in down["env"]
    farm.stop_scheduler()
    assert a.plan()["decisions"]["sccache"]["status"] == "fallback-local:redis-down"


def _buildpolicy() -> list[str]:
    import sys

    return [sys.executable, "-m", "buildpolicy"]
