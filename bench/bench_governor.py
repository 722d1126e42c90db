#!/usr/bin/env python3
"""Memory-governor benchmark (issue 11): builds that fit in memory, as parallel as it allows.

Every build runs in a new memory cgroup of its own (``bench/memkit/cgroups.py``: a real
limit, real OOM kills counted by the kernel) with a clean target directory. Scenarios:

- **heavy**: two independent crates whose rustc peaks at ~2.2 GB each, 3.9 GiB limit
  (``memkit.workspaces.heavy_pair``): two at once do not fit;
- **light**: six crates at ~180 MB each, each compile lengthened to ~1.5 s of CPU without
  memory (``spin``), 1 GiB limit: the static budget (1792 MiB/job) allows one job, two fit;
- **ripgrep**: the real project of ``bench/setup_build_project.sh`` (ripgrep from Debian's
  sources, offline), with a limit (``--ripgrep-limit``, default 1 GiB) under which its
  heaviest crates cannot all run at once.

Configurations, each one build per round:

- ``plain``: ``cargo build`` (cargo's default: one job per CPU);
- ``serial``: ``cargo build -j1``;
- ``static``: ``buildpolicy exec --set governor=off -- cargo build`` (the static budget:
  ``adaptive:N`` from ``mib_per_job``);
- ``governed``: ``buildpolicy exec -- cargo build`` after one learning run of the same
  scenario (not counted), with the learned peaks of that run.

Reported per configuration: wall time (median over rounds), OOM kills (sum), governor
preemptions (sum), peak cgroup memory (max), and for governed runs the governor's own
cost (its loop's and the wrappers' CPU as a share of one CPU; the exec process's peak
RSS). Targets (issue 11): 0 OOM kills in every governed run; light: governed wall ≤ 0.8×
static; heavy: governed wall ≤ 1.1× serial; the governor under 50 MiB and under 2 % of one
CPU. A report, not a test: it exits 0 whatever the numbers say (2 on a setup error).

    python bench/bench_governor.py [--scenario heavy,light,ripgrep] [--rounds N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.memkit import cgroups, workspaces  # noqa: E402

MIB = 1 << 20
BUILDPOLICY = (sys.executable, "-m", "buildpolicy")
CONFIGS = ("plain", "serial", "static", "governed")
SETUP_SCRIPT = REPO / "bench" / "setup_build_project.sh"
RIPGREP_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "buildpolicy-bench" / "project"


class BenchError(Exception):
    """A setup problem: the benchmark cannot run."""


def sandbox_environ(sandbox: Path) -> dict[str, str]:
    """A clean build environment (memkit's) with buildpolicy's directories in ``sandbox``."""
    env = workspaces.cargo_environ({k: v for k, v in os.environ.items() if not k.startswith("BUILDPOLICY_")})
    for sub in ("config", "state", "cache", "site"):
        (sandbox / sub).mkdir(parents=True, exist_ok=True)
    env.update(XDG_CONFIG_HOME=str(sandbox / "config"), XDG_STATE_HOME=str(sandbox / "state"),
               XDG_CACHE_HOME=str(sandbox / "cache"), BUILDPOLICY_SITE_DIR=str(sandbox / "site"),
               BUILDPOLICY_SCCACHE="off", BUILDPOLICY_GATE="off", BUILDPOLICY_REMOTE="off",
               CARGO_NET_OFFLINE="true")
    return env


def scenario(name: str, workdir: Path, ripgrep_limit: int, quick: bool = False) -> tuple[Path, int, list[str]]:
    """``(workspace, memory limit, cargo build arguments)`` of a scenario (``quick``: no spin)."""
    if name == "heavy":
        return workspaces.write_workspace(workdir / "heavy", workspaces.heavy_pair()), int(3.9 * 1024) * MIB, ["--release"]
    if name == "light":
        crates = workspaces.light_six()
        spin = {} if quick else {crate: workspaces.spin_for_seconds(1.5) for crate in crates}
        return workspaces.write_workspace(workdir / "light", crates, spin=spin), 1024 * MIB, ["--release"]
    if name == "ripgrep":
        if not (RIPGREP_DIR / "Cargo.toml").is_file():
            raise BenchError(f"no ripgrep project in {RIPGREP_DIR}: run {SETUP_SCRIPT.relative_to(REPO)} first")
        return RIPGREP_DIR, ripgrep_limit, ["--release", "--offline"]
    raise BenchError(f"unknown scenario {name!r}: heavy, light, ripgrep")


def argv_of(config: str, cargo_args: list[str]) -> list[str]:
    """The command line of a configuration."""
    if config == "plain":
        return ["cargo", "build", *cargo_args]
    if config == "serial":
        return ["cargo", "build", "-j1", *cargo_args]
    sets = ["--set", "governor=off"] if config == "static" else []
    return [*BUILDPOLICY, "exec", *sets, "--", "cargo", "build", *cargo_args]


def last_log_entry(env: dict[str, str]) -> dict:
    log = Path(env["XDG_STATE_HOME"]) / "buildpolicy" / "actions.jsonl"
    try:
        return json.loads(log.read_text().splitlines()[-1])
    except (OSError, IndexError, ValueError):
        return {}


def one_build(config: str, ws: Path, limit: int, cargo_args: list[str], env: dict[str, str], target: Path) -> dict:
    """One build in a new cgroup, from a clean target directory."""
    shutil.rmtree(target, ignore_errors=True)
    run_env = dict(env, CARGO_TARGET_DIR=str(target))
    with cgroups.MemoryCgroup.create(limit, name_prefix="bp-bench") as cgroup:
        began = time.monotonic()
        proc = cgroup.run(argv_of(config, cargo_args), cwd=ws, env=run_env, capture_output=True, text=True,
                          timeout=7200)
        wall = time.monotonic() - began
        row = {"config": config, "wall_s": round(wall, 2), "exit": proc.returncode, "oom_kills": cgroup.oom_kills(),
               "peak_mib": (cgroup.max_usage() or 0) // MIB}
    if config in ("static", "governed"):
        entry = last_log_entry(env)
        governor = entry.get("governor") or {}
        row["jobs"] = (entry.get("decisions") or {}).get("jobs")
        row["preemptions"] = len(governor.get("preemptions") or ())
        if governor:
            row["max_concurrent"] = governor.get("max_concurrent")
            row["cost"] = governor.get("cost")
    if proc.returncode != 0 and row["oom_kills"] == 0:
        row["stderr_tail"] = proc.stderr[-800:]
    return row


def run_scenario(name: str, rounds: int, workdir: Path, ripgrep_limit: int, say, quick: bool = False) -> dict:
    """Every configuration of one scenario, ``rounds`` times, plus the governor's learning run."""
    ws, limit, cargo_args = scenario(name, workdir, ripgrep_limit, quick)
    env = sandbox_environ(workdir / f"sandbox-{name}")
    say(f"{name}: limit {limit // MIB} MiB, learning run")
    learning = one_build("governed", ws, limit, cargo_args, env, workdir / f"target-{name}-governed")
    rows = []
    for round_no in range(rounds):
        for config in CONFIGS:
            row = one_build(config, ws, limit, cargo_args, env, workdir / f"target-{name}-{config}")
            row["round"] = round_no
            say(f"{name} round {round_no + 1}: {config} {row['wall_s']} s, exit {row['exit']}, "
                f"OOM kills {row['oom_kills']}, preemptions {row.get('preemptions', '-')}")
            rows.append(row)
    return {"scenario": name, "limit_mib": limit // MIB, "learning": learning, "runs": rows,
            "summary": summarize(name, rows)}


def summarize(name: str, rows: list[dict]) -> dict:
    """Medians and sums per configuration, and the targets of issue 11."""
    per = {}
    for config in CONFIGS:
        mine = [row for row in rows if row["config"] == config]
        if not mine:
            continue
        costs = [row["cost"] for row in mine if row.get("cost")]
        per[config] = {
            "wall_s": round(statistics.median(row["wall_s"] for row in mine), 2),
            "failed": sum(1 for row in mine if row["exit"] != 0),
            "oom_kills": sum(row["oom_kills"] for row in mine),
            "preemptions": sum(row.get("preemptions") or 0 for row in mine),
            "peak_mib": max(row["peak_mib"] for row in mine),
            "jobs": mine[-1].get("jobs"),
            "max_concurrent": max((row.get("max_concurrent") or 0) for row in mine) or None,
            "governor_cpu_percent": max((c["cpu_percent"] for c in costs), default=None),
            "governor_rss_mib": max((c["exec_peak_rss_mib"] for c in costs), default=None),
        }
    targets = {}
    governed = per.get("governed")
    if governed:
        targets["governed: 0 OOM kills"] = governed["oom_kills"] == 0 and governed["failed"] == 0
        targets["governor < 2 % of one CPU"] = (governed["governor_cpu_percent"] or 0) < 2
        targets["governor < 50 MiB"] = (governed["governor_rss_mib"] or 0) < 50
        if name == "light" and per.get("static"):
            ratio = governed["wall_s"] / per["static"]["wall_s"]
            targets[f"light: governed ≤ 0.8× static ({ratio:.2f}×)"] = ratio <= 0.8
        if name == "heavy" and per.get("serial"):
            ratio = governed["wall_s"] / per["serial"]["wall_s"]
            targets[f"heavy: governed ≤ 1.1× serial ({ratio:.2f}×)"] = ratio <= 1.1
    return {"configs": per, "targets": targets}


def markdown(results: list[dict]) -> str:
    """The report as Markdown tables."""
    lines = []
    for result in results:
        lines += [f"### {result['scenario']} (cgroup limit {result['limit_mib']} MiB)", "",
                  "| config | wall s | failed | OOM kills | preemptions | peak MiB | jobs | most at once |",
                  "|---|---:|---:|---:|---:|---:|---|---:|"]
        for config, row in result["summary"]["configs"].items():
            lines.append(f"| {config} | {row['wall_s']:.1f} | {row['failed']} | {row['oom_kills']} | "
                         f"{row['preemptions']} | {row['peak_mib']} | {row['jobs'] or ''} | {row['max_concurrent'] or ''} |")
        governed = result["summary"]["configs"].get("governed") or {}
        if governed.get("governor_cpu_percent") is not None:
            lines.append(f"\ngovernor cost: {governed['governor_cpu_percent']} % of one CPU, "
                         f"exec peak RSS {governed['governor_rss_mib']} MiB")
        for target, met in result["summary"]["targets"].items():
            lines.append(f"- {target}: {'met' if met else 'MISSED'}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="heavy,light,ripgrep", help="comma-separated: heavy, light, ripgrep")
    parser.add_argument("--rounds", type=int, default=1, help="builds per configuration (default 1)")
    parser.add_argument("--ripgrep-limit", type=int, default=1024, help="MiB (default 1024)")
    parser.add_argument("--workdir", type=Path, help="where workspaces and targets go (default: a temporary directory)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quick", action="store_true",
                        help="the light scenario without its long compiles: checks the benchmark runs, measures little")
    args = parser.parse_args(argv)
    # Killed with SIGTERM (a timeout, Ctrl-C's cousin): unwind, so every cgroup made is
    # emptied and removed on the way out.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(128 + signal.SIGTERM))
    problem = cgroups.skip_reason()
    if problem:
        print(f"bench_governor: no memory cgroup can be created here: {problem}", file=sys.stderr)
        return 2
    names = ["light"] if args.quick else [name.strip() for name in args.scenario.split(",") if name.strip()]

    def say(message: str) -> None:
        print(f"bench_governor: {message}", file=sys.stderr, flush=True)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-governor-"))
    results = []
    try:
        for name in names:
            results.append(run_scenario(name, args.rounds, workdir, args.ripgrep_limit * MIB, say, args.quick))
    except BenchError as exc:
        print(f"bench_governor: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps({"date": time.strftime("%Y-%m-%d"), "results": results}, indent=2))
    else:
        print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
