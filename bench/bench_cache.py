"""Benchmark shared sccache caches and sccache-dist through ``buildpolicy exec`` (issue 12, DESIGN §12).

Each project is built, with a fresh target directory every time, as:

- ``plain``: plain ``cargo build --release`` (no sccache): the baseline every ratio is against;
- ``cold``: ``buildpolicy exec`` with sccache's local disk cache, empty;
- ``warm-local``: the same machine again (its local cache is warm);
- ``redis-first`` / ``redis-second-machine``: machine A fills a real redis-server, then
  machine B (its own HOME, CARGO_HOME, state and cache dirs, so its own sccache server
  and an empty disk cache) builds the same checkout through it;
- ``dist-first``: sccache-dist (a real scheduler and overlay build server on loopback)
  on a machine that never packaged its toolchain: exec's packaging is included;
- ``dist-later``: the same machine with an empty sccache disk cache (every compilation
  misses, so it may go to the build server), the toolchain archive reused;
- small workspace only: ``redis-dies-mid-build``, Redis killed once the first crate is
  compiled (exec's watch switches the rest to the local server), and, unless ``--quick``,
  ``redis-dies-no-switch``: the same with cargo run directly in the decided environment
  (no exec, no watch), i.e. sccache's own behaviour.

The build server runs on this same machine, so distributed builds show sccache-dist's
overhead here, not a farm's speed-up. Projects: ``ripgrep`` (``bench/setup_build_project.sh``
sets it up offline at ``~/.cache/buildpolicy-bench/project``) and ``small`` (a generated
chain of library crates). ``--quick``: the small workspace only, without the no-switch row.

    python bench/bench_cache.py [--project ripgrep,small] [--quick] [--json] [--workdir DIR]

A report, not a test: it exits 0 whatever the numbers say (2 when it cannot run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.memkit import workspaces  # noqa: E402

BUILDPOLICY = (sys.executable, "-m", "buildpolicy")
VENV_BIN = Path(sys.executable).parent
RIPGREP_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "buildpolicy-bench" / "project"
BUILD_TIMEOUT = 3600


class BenchError(Exception):
    """A setup problem: the benchmark cannot run."""


def chain_workspace(root: Path, count: int = 6, functions: int = 300) -> Path:
    """A workspace of ``count`` library crates, each depending on the previous one (built one after another)."""
    ws = root / "checkout" / "chain"
    names = [f"link{i}" for i in range(count)]
    ws.mkdir(parents=True)
    (ws / "Cargo.toml").write_text('[workspace]\nresolver = "2"\nmembers = [' + ", ".join(f'"{n}"' for n in names) + "]\n")
    previous = None
    for name in names:
        (ws / name / "src").mkdir(parents=True)
        deps = f'[dependencies]\n{previous} = {{ path = "../{previous}" }}\n' if previous else ""
        (ws / name / "Cargo.toml").write_text(f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n\n{deps}')
        (ws / name / "src" / "lib.rs").write_text("".join(
            f"pub fn f{i}(x: u64) -> u64 {{ x.wrapping_mul({i + 3}).rotate_left({i % 7}) }}\n" for i in range(functions)))
        previous = name
    return ws


class Machine:
    """One simulated developer machine: its own HOME, CARGO_HOME, buildpolicy state and cache dirs."""

    def __init__(self, root: Path, ws: Path, **knobs: str):
        self.root, self.ws = root, ws
        home = root / "home"
        for sub in ("config", "state", "cache", "site", "cargo-home"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("BUILDPOLICY_", "SCCACHE_"))}
        real_home = Path(base.get("HOME") or Path.home())
        base.setdefault("RUSTUP_HOME", str(real_home / ".rustup"))
        base.setdefault("CARGO_HOME", str(real_home / ".cargo"))
        env = workspaces.cargo_environ(base)
        cargo_bin = str(Path(env["CARGO_HOME"]) / "bin")
        env["PATH"] = os.pathsep.join([cargo_bin, str(VENV_BIN), *env["PATH"].split(os.pathsep)[1:]])
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_STATE_HOME=str(home / "state"),
                   XDG_CACHE_HOME=str(home / "cache"), BUILDPOLICY_SITE_DIR=str(home / "site"),
                   CARGO_HOME=str(home / "cargo-home"), CARGO_NET_OFFLINE="true", BUILDPOLICY_GATE="off",
                   BUILDPOLICY_REMOTE="off", BUILDPOLICY_SCCACHE="on", SCCACHE_IDLE_TIMEOUT="300",
                   **{f"BUILDPOLICY_{k.upper()}": v for k, v in knobs.items()})
        # A private server for sccache's plain local cache too (buildpolicy keeps an inherited
        # socket there): the default port's server may be someone else's.
        env["SCCACHE_SERVER_UDS"] = str(root / "local.sock")
        self.env = env
        self.sockets: set[str] = {env["SCCACHE_SERVER_UDS"]}
        self.sccache = str(VENV_BIN / "sccache")
        self.builds = 0
        self.shared_target = root.parent / "target"  # root is <workdir>/<project>/<machine>

    def buildpolicy(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([*BUILDPOLICY, *args], cwd=self.ws, env=self.env, capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT)
        if check and proc.returncode != 0:
            raise BenchError(f"buildpolicy {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return proc

    def cache(self) -> dict:
        """``buildpolicy cache``: probes and records the backend and scheduler, as exec would."""
        return json.loads(self.buildpolicy("cache", "--format", "json").stdout)

    def socket(self) -> str:
        """The server socket ``exec`` would use now."""
        plan = json.loads(self.buildpolicy("exec", "--dry-run", "--", "cargo", "build", "--release").stdout)
        uds = plan["env"].get("SCCACHE_SERVER_UDS") or self.env["SCCACHE_SERVER_UDS"]  # set, or inherited
        self.sockets.add(uds)
        return uds

    def stats(self, sockets: set[str], *, zero: bool = False) -> dict[str, int]:
        """sccache's counts summed over the servers on ``sockets`` that run (zeroed first with ``zero``)."""
        from buildpolicy.run.cache import server

        total: dict[str, int] = {}
        for uds in sorted(sockets):
            env = dict(self.env, SCCACHE_SERVER_UDS=uds)
            if not server.running(env):
                continue
            if zero:
                server.zero_stats(self.sccache, env)
            for key, value in server.counts(server.show_stats(self.sccache, env)).items():
                total[key] = total.get(key, 0) + value
        return total

    def target(self) -> str:
        """A fresh target directory, at the same path on every machine of a project: developers
        who share the checkout path share its ``target`` path too, and a build script's
        ``OUT_DIR`` (under it) reaches what sccache hashes for the crates that include from it."""
        self.builds += 1
        shutil.rmtree(self.shared_target, ignore_errors=True)
        return str(self.shared_target)

    def stop_servers(self) -> None:
        """Stop the private sccache servers this machine used (never the default port's)."""
        for uds in self.sockets:
            if os.path.exists(uds):
                subprocess.run([self.sccache, "--stop-server"], env=dict(self.env, SCCACHE_SERVER_UDS=uds),
                               capture_output=True, timeout=60, check=False)


def timed(argv: list[str], cwd: Path, env: dict[str, str], during=None) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``argv``; ``(seconds, completed process)``. ``during(proc)`` runs while it does."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        if during is not None:
            during(proc)
        out, err = proc.communicate(timeout=BUILD_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return time.monotonic() - started, subprocess.CompletedProcess(argv, proc.returncode, out, err)


def exec_row(name: str, machine: Machine, say, *, during=None, direct: bool = False) -> dict:
    """One measured ``buildpolicy exec -- cargo build --release`` (or, with ``direct``, cargo in the
    environment exec would give) and the sccache statistics of its server."""
    before = {machine.socket()}
    machine.stats(before, zero=True)
    # --target-dir, not CARGO_TARGET_DIR: sccache hashes CARGO_* variables, and the plain
    # local cache has no key wrapper to keep it out.
    cargo = ["cargo", "build", "--release", "--target-dir", machine.target()]
    if direct:
        plan = json.loads(machine.buildpolicy("exec", "--dry-run", "--", *cargo).stdout)
        env = {k: v for k, v in {**machine.env, **plan["env"]}.items() if k not in plan["unset"]}
        seconds, proc = timed(cargo, machine.ws, env, during)
    else:
        seconds, proc = timed([*BUILDPOLICY, "exec", "--", *cargo], machine.ws, machine.env, during)
    decision = json.loads(machine.buildpolicy("exec", "--dry-run", "--", *cargo).stdout)["decisions"]["sccache"]
    counts = machine.stats(before | {machine.socket()})
    row = {"wall_s": round(seconds, 2), "exit": proc.returncode, "decision": decision["status"],
           "hits": counts.get("cache_hits"), "misses": counts.get("cache_misses"),
           "dist_compiles": counts.get("dist_compiles"), "packaged": "packaging the toolchain" in proc.stderr,
           "switched": "went down during the build" in proc.stderr}
    if proc.returncode != 0:
        row["stderr"] = proc.stderr[-1500:]
    say(f"{name}: {row['wall_s']} s, exit {proc.returncode}, {row['decision']}, hits {row['hits']}, "
        f"misses {row['misses']}, distributed {row['dist_compiles']}")
    return row


def plain_row(ws: Path, machine: Machine, say) -> dict:
    """Plain cargo, no sccache, no buildpolicy: the baseline."""
    env = {k: v for k, v in machine.env.items() if not k.startswith(("BUILDPOLICY_", "SCCACHE_"))}
    seconds, proc = timed(["cargo", "build", "--release", "--target-dir", machine.target()], ws, env)
    say(f"plain: {seconds:.2f} s, exit {proc.returncode}")
    return {"wall_s": round(seconds, 2), "exit": proc.returncode}


def run_project(name: str, ws: Path, workdir: Path, say, quick: bool) -> dict:
    """Every row of the module docstring for one project."""
    from tests.distfarm import Farm
    from tests.redisserver import Redis

    rows: dict[str, dict] = {}
    machines: list[Machine] = []
    started: list = []

    def machine(label: str, **knobs: str) -> Machine:
        made = Machine(workdir / name / label, ws, **knobs)
        machines.append(made)
        return made

    try:
        local = machine("local")
        rows["plain"] = plain_row(ws, local, say)
        rows["cold"] = exec_row("cold", local, say)
        rows["warm-local"] = exec_row("warm-local", local, say)

        redis = Redis(workdir / name / "redis").start()
        started.append(redis)
        a = machine("redis-a", sccache_backend=redis.url)
        b = machine("redis-b", sccache_backend=redis.url)
        a.cache()  # probe and record: exec would too
        rows["redis-first"] = exec_row("redis-first", a, say)
        rows["redis-second-machine"] = exec_row("redis-second-machine", b, say)

        farm = Farm(workdir / name / "farm").start()
        started.append(farm)
        c = machine("dist", sccache_dist_scheduler=farm.url, sccache_dist_token=f"file:{farm.token_file}")
        rows["dist-first"] = exec_row("dist-first", c, say)
        c.env["SCCACHE_DIR"] = str(c.root / "sccache-empty")  # every compilation misses: it may go remote
        rows["dist-later"] = exec_row("dist-later", c, say)

        if name == "small":
            variants = [("redis-dies-mid-build", False)] + ([] if quick else [("redis-dies-no-switch", True)])
            for label, direct in variants:
                dying = Redis(workdir / name / f"redis-{label}").start()
                started.append(dying)
                m = machine(label, sccache_backend=dying.url)
                m.cache()

                def kill_after_first_crate(proc, m=m, dying=dying) -> None:
                    deps = m.shared_target / "release" / "deps"
                    while not list(deps.glob("liblink0-*.rlib")) and proc.poll() is None:
                        time.sleep(0.05)
                    dying.stop()

                rows[label] = exec_row(label, m, say, during=kill_after_first_crate, direct=direct)
    finally:
        for made in machines:
            made.stop_servers()
        for server in reversed(started):
            server.stop()
    baseline = rows["plain"]["wall_s"]
    for row in rows.values():
        row["ratio"] = round(row["wall_s"] / baseline, 2) if baseline else None
    return {"project": name, "rows": rows}


def markdown(results: list[dict]) -> str:
    """The table of bench/README.md."""
    lines = ["| project | row | wall | vs plain | sccache | hits / misses | distributed |",
             "|---|---|---|---|---|---|---|"]
    for result in results:
        for label, row in result["rows"].items():
            note = " (packaging included)" if row.get("packaged") else ""
            note += " (switched to local)" if row.get("switched") else ""
            note += f" (exit {row['exit']})" if row.get("exit") else ""
            hits = f"{row['hits']} / {row['misses']}" if row.get("hits") is not None else ""
            lines.append(f"| {result['project']} | {label}{note} | {row['wall_s']:.1f} s | {row['ratio']:.2f}× | "
                         f"{row.get('decision') or 'none'} | {hits} | {row.get('dist_compiles') or ''} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", default="ripgrep,small", help="comma-separated: ripgrep, small")
    parser.add_argument("--quick", action="store_true", help="the small workspace only, without the no-switch row")
    parser.add_argument("--workdir", type=Path, help="where machines, targets and servers go (default: a temporary directory)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    projects = ["small"] if args.quick else [p.strip() for p in args.project.split(",") if p.strip()]

    def say(message: str) -> None:
        print(f"bench_cache: {message}", file=sys.stderr, flush=True)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-cache-"))
    results = []
    try:
        for name in projects:
            if name == "ripgrep":
                if not (RIPGREP_DIR / "Cargo.toml").exists():
                    raise BenchError(f"no ripgrep project in {RIPGREP_DIR}: run bench/setup_build_project.sh first")
                ws = RIPGREP_DIR
            elif name == "small":
                ws = chain_workspace(workdir / "small-src", functions=1000)
            else:
                raise BenchError(f"unknown project {name!r}: ripgrep, small")
            results.append(run_project(name, ws, workdir, say, args.quick))
    except BenchError as exc:
        print(f"bench_cache: {exc}", file=sys.stderr)
        return 2
    except BaseException as exc:
        if type(exc).__name__ in ("Skipped", "Failed"):  # the test fixtures' "not installed" outcomes
            print(f"bench_cache: {exc}", file=sys.stderr)
            return 2
        raise
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps({"results": results}, indent=2))
    else:
        print(markdown(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
