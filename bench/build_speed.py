#!/usr/bin/env python3
"""Build-speed benchmark: does ``buildpolicy exec`` pick the fastest build settings?

On a real Rust project that nobody here wrote (set up by ``bench/setup_build_project.sh``:
a Debian source package built offline against Debian's ``librust-*-dev`` crates), this
measures two scenarios:

- **clean**: a full ``cargo build`` into an emptied target directory (dependencies
  included: for the parallel front-end that means building them with nightly, which is
  what its user gets);
- **touched**: ``cargo build --bin <bin>`` after inserting a comment line at the top of
  the binary's main source file, in a target directory that is otherwise up to date: the
  edit-compile loop (the file is restored afterwards).

for these configurations:

- ``plain``: ``cargo build``, no buildpolicy;
- ``policy``: ``buildpolicy exec -- cargo build``, every decision the policy's own;
- every combination of linker ∈ {system, lld, mold} × front-end ∈ {off, on} × jobs ∈
  {1, 2} (jobs capped by the CPU count), each through ``buildpolicy exec --set linker=L
  --set frontend=F [--set frontend_threads=min(4, cpus)] --set jobs=J``, so a combination
  is exactly what a user who turns those knobs gets.

Method. Every configuration has its own target directory, kept across repetitions (a
touched rebuild needs its own up-to-date tree; a clean build deletes it first). The
measurements are *paired*: each round runs every configuration once, in an order shuffled
per round (seeded), so slow drifts of the machine — other people's test runs on a 2-core
box, thermal state, page cache — hit every configuration alike instead of whichever ran
last. Each configuration's median over rounds is reported; the **regret** is the
policy's median divided by the best combination's median (1.00 = the policy found the
best), and the paired regret is the median over rounds of the same ratio within a round.

Hygiene. All configurations start from one sanitized environment: inherited build
settings (``RUSTFLAGS``, ``CARGO_BUILD_*``, ``CARGO_TARGET_*``, ``RUSTUP_TOOLCHAIN``,
``BUILDPOLICY_*``…) are dropped so nothing but the knobs differ, and ``RUSTC_WRAPPER``,
``CARGO_BUILD_RUSTC_WRAPPER``, ``RUSTC_WORKSPACE_WRAPPER`` and ``SCCACHE_*`` are removed so
sccache is never silently involved; the combinations also pass ``--set sccache=off``, and
the ``policy`` configuration keeps the policy's own sccache decision (recorded; on a dev
profile it is ``skipped-incremental``). Where declared, ``gate`` and ``remote`` are set
``off`` for every buildpolicy configuration: waiting for another worktree's build, or
building on another machine, is not local build speed. buildpolicy's user and site layers point at empty
directories, so the shipped policies and built-in plugins decide. buildpolicy runs as
``<this interpreter> -m buildpolicy``, never through a PATH lookup that might hit a pyenv
shim (a bash script: tens of milliseconds of noise).

Which buildpolicy. Others edit this working tree, and re-install it, while a 20-minute
run goes on: a half-written module, or an entry point added to the installed metadata
for a plugin the code does not have yet, would fail builds mid-run. By default the
benchmark therefore runs a commit (``--tree HEAD``) installed, once, into a virtual
environment of its own under the work directory: ``git archive`` of that commit (read-only
on the repository) installed with pip, its dependencies pinned to the versions this
interpreter has. Same interpreter binary, immutable code, its own entry points.
``--tree worktree`` runs the live tree (the installed, editable buildpolicy) instead.

A configuration whose knob is not declared (a plugin not written yet) or whose decision
does not come out as requested (say mold fails its smoke test) is reported as
unavailable, with the reason, instead of silently measuring something else.

    python bench/build_speed.py [--project DIR] [--rounds N] [--clean-rounds N] [--quick]
                                [--scenarios clean,touched] [--only REGEX] [--plan]
                                [--json PATH] [--seed N] [--tree HEAD|REV|worktree]

Standard library only. It is a report: it exits 0 whatever the numbers say, 2 when the
project is missing or buildpolicy itself fails.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import io
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETUP_SCRIPT = REPO / "bench" / "setup_build_project.sh"
DEFAULT_BENCH_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "buildpolicy-bench"

# The same interpreter as this script, not whatever `buildpolicy` PATH finds (see above).
# Used as is with --tree worktree; otherwise main() passes the snapshot venv's python (a
# symlink to this same interpreter) to build_configs().
BUILDPOLICY = (sys.executable, "-m", "buildpolicy")

LINKERS = ("system", "lld", "mold")
FRONTENDS = ("off", "on")
SCENARIOS = ("clean", "touched")
# Knobs pinned for every buildpolicy configuration, the policy's included, when a plugin
# declares them: this measures local build speed. The gate (a host-wide lock serializing
# builds from several worktrees) would add the wait for someone else's build; remote
# would move the build to another machine.
PINNED_KNOBS = {"gate": "off", "remote": "off"}

# Inherited variables that would change a build or a decision; dropped for every run.
DROPPED_PREFIXES = ("BUILDPOLICY_", "CARGO_BUILD_", "CARGO_PROFILE_", "CARGO_TARGET_", "SCCACHE_", "CARGO_ENCODED_")
DROPPED_NAMES = (
    "CARGO_INCREMENTAL", "CARGO_TARGET_DIR", "RUSTFLAGS", "RUSTDOCFLAGS", "RUSTC", "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER", "RUSTUP_TOOLCHAIN", "CI", "TMPDIR",
)
# The comment a touched rebuild inserts at the top of the binary's main source file.
TOUCH_MARK = "// buildpolicy build-speed benchmark touch"


class BenchError(Exception):
    """The project is not set up, or buildpolicy itself failed."""


# ---------------------------------------------------------------- configurations


@dataclass
class Config:
    """One way of running the build: plain cargo, the policy, or a knob combination."""

    id: str
    label: str
    # buildpolicy `--set` arguments; None for plain cargo.
    sets: tuple[str, ...] | None
    # How to start buildpolicy: (python, "-m", "buildpolicy").
    launcher: tuple[str, ...] = BUILDPOLICY
    # For combinations: what was asked, to compare with what buildpolicy decided.
    want: dict[str, object] = field(default_factory=dict)
    available: bool = True
    why_unavailable: str = ""
    decisions: dict[str, str] = field(default_factory=dict)  # decision name -> status
    env: dict[str, str] = field(default_factory=dict)  # what buildpolicy sets
    times: dict[str, list[float]] = field(default_factory=dict)  # scenario -> wall seconds
    cpu: dict[str, list[float]] = field(default_factory=dict)  # scenario -> user+sys seconds
    failures: dict[str, str] = field(default_factory=dict)  # scenario -> last error

    @property
    def is_combo(self) -> bool:
        return bool(self.want)

    def argv(self, cargo: list[str]) -> list[str]:
        """The command to time for ``cargo`` argv (``["cargo", "build", ...]``)."""
        if self.sets is None:
            return list(cargo)
        sets = [arg for s in self.sets for arg in ("--set", s)]
        return [*self.launcher, "exec", *sets, "--", *cargo]


def combo_id(linker: str, frontend: str, jobs: int) -> str:
    """``mold-on-j2``: stable id of one combination (target directory name, JSON key)."""
    return f"{linker}-{frontend}-j{jobs}"


def build_configs(cpus: int, launcher: tuple[str, ...] = BUILDPOLICY) -> list[Config]:
    """plain, policy, then linker × front-end × jobs (jobs 1 and 2, capped by ``cpus``)."""
    threads = min(4, cpus)
    jobs_values = sorted({1, min(2, max(1, cpus))})
    configs = [
        Config("plain", "plain `cargo build`", None),
        Config("policy", "`buildpolicy exec` (policy's choice)", (), launcher),
    ]
    for linker in LINKERS:
        for frontend in FRONTENDS:
            for jobs in jobs_values:
                sets = [f"linker={linker}", f"frontend={frontend}", f"jobs={jobs}", "sccache=off"]
                if frontend == "on":
                    sets.append(f"frontend_threads={threads}")
                fe = f"on (threads={threads})" if frontend == "on" else "off"
                configs.append(Config(
                    combo_id(linker, frontend, jobs), f"{linker} × {fe} × jobs={jobs}", tuple(sets), launcher,
                    want={"linker": linker, "frontend": frontend, "jobs": jobs, "threads": threads},
                ))
    return configs


def mismatch(want: dict[str, object], decisions: dict[str, str]) -> str:
    """Why buildpolicy's decisions differ from the requested combination ('' if they match)."""
    problems = []
    linker = decisions.get("linker")
    if linker != want["linker"]:
        problems.append(f"linker decided {linker!r}, wanted {want['linker']!r}")
    frontend = decisions.get("frontend") or ""
    enabled = frontend.startswith("enabled:")
    if want["frontend"] == "on" and not (enabled and frontend.endswith(f":threads={want['threads']}")):
        problems.append(f"frontend decided {frontend!r}, wanted enabled with {want['threads']} threads")
    if want["frontend"] == "off" and enabled:
        problems.append(f"frontend decided {frontend!r}, wanted off")
    jobs = decisions.get("jobs") or ""
    if jobs != f"override:{want['jobs']}":
        problems.append(f"jobs decided {jobs!r}, wanted override:{want['jobs']}")
    return "; ".join(problems)


def policy_equivalent(decisions: dict[str, str], configs: list[Config]) -> str | None:
    """The combination id matching the policy's own decisions, if there is one."""
    linker = decisions.get("linker", "")
    linker = linker if linker in LINKERS else None
    frontend_status = decisions.get("frontend", "")
    frontend = "on" if frontend_status.startswith("enabled:") else "off"
    threads = re.search(r":threads=(\d+)$", frontend_status)
    match = re.match(r"(?:adaptive|override):(\d+)", decisions.get("jobs", ""))
    if linker is None or match is None:
        return None
    for c in configs:
        if c.is_combo and (c.want["linker"], c.want["frontend"], c.want["jobs"]) == (linker, frontend, int(match[1])):
            if frontend == "off" or (threads and int(threads[1]) == c.want["threads"]):
                return c.id
    return None


# ---------------------------------------------------------------- environment and project


def snapshot_venv(rev: str, root: Path) -> tuple[str, Path]:
    """Install commit ``rev`` of this repository into a virtual environment of its own.

    Returns the full commit hash and the environment's python. Made once per commit under
    ``root`` (a ``.complete`` marker says it finished); the dependencies are pinned to the
    versions installed for this interpreter, so only buildpolicy's own code differs from
    what the test suite ran.
    """
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, timeout=60, check=False)
    resolved = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    if resolved.returncode != 0:
        raise BenchError(f"--tree {rev}: not a commit: {resolved.stderr.decode(errors='replace').strip()}")
    commit = resolved.stdout.decode().strip()
    venv = root / commit[:12]
    python = venv / "bin" / "python"
    if (venv / ".complete").is_file() and python.exists():
        return commit, python
    print(f"build_speed: installing buildpolicy {commit[:12]} into {venv}", file=sys.stderr)
    archive = git("archive", "--format=tar", commit)
    if archive.returncode != 0:
        raise BenchError(f"git archive {commit} failed: {archive.stderr.decode(errors='replace').strip()}")
    shutil.rmtree(venv, ignore_errors=True)
    src = venv / "src"
    src.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(src, filter="data")
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src),
              *pinned_dependencies(src / "pyproject.toml")]]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
        if result.returncode != 0:
            raise BenchError(f"{' '.join(step[:4])}... failed:\n{result.stderr.strip()}")
    (venv / ".complete").touch()
    return commit, python


def pinned_dependencies(pyproject: Path) -> list[str]:
    """``name==version`` for each dependency the project declares that this interpreter has."""
    import tomllib
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for spec in tomllib.loads(pyproject.read_text()).get("project", {}).get("dependencies", []):
        name = re.match(r"[A-Za-z0-9._-]+", spec)[0]
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(spec)
    return pins


def sanitized_environ(sandbox: Path) -> dict[str, str]:
    """This process's environment minus every inherited build setting (see the module doc)."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(DROPPED_PREFIXES) and k not in DROPPED_NAMES
        and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    for sub in ("config", "site", "cache"):
        (sandbox / sub).mkdir(parents=True, exist_ok=True)
    env["XDG_CONFIG_HOME"] = str(sandbox / "config")  # empty: no user layer
    env["BUILDPOLICY_SITE_DIR"] = str(sandbox / "site")  # empty: no site layer
    # buildpolicy's own caches (probe results, linker smoke test) in the bench directory,
    # kept across runs of the benchmark: a warm run is what users get.
    env["XDG_CACHE_HOME"] = str(sandbox / "cache")
    env["CARGO_TERM_COLOR"] = "never"
    return env


@dataclass(frozen=True)
class Project:
    """The benchmarked cargo project: where it is and which binary target to touch."""

    path: Path
    name: str
    version: str
    bin_name: str
    main_source: Path


def load_project(path: Path, env: dict[str, str]) -> Project:
    """Read the package's name, version and first binary target through ``cargo metadata``."""
    if not (path / "Cargo.toml").is_file():
        raise BenchError(f"no Cargo.toml in {path}: run {SETUP_SCRIPT.relative_to(REPO)} first")
    result = subprocess.run(
        ["cargo", "metadata", "--offline", "--no-deps", "--format-version", "1"],
        cwd=path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"cargo metadata failed in {path}:\n{result.stderr.strip()}")
    meta = json.loads(result.stdout)
    root = meta["packages"][0]
    for target in root["targets"]:
        if "bin" in target["kind"]:
            return Project(path, root["name"], root["version"], target["name"], Path(target["src_path"]))
    raise BenchError(f"{root['name']} has no binary target")


def declared_knobs(launcher: tuple[str, ...], project: Path, env: dict[str, str]) -> set[str]:
    """Names of the knobs this buildpolicy declares (``explain --format json``)."""
    result = subprocess.run([*launcher, "explain", "--format", "json", "--", "cargo", "build"],
                            cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise BenchError(f"buildpolicy explain failed ({result.returncode}):\n{result.stderr}")
    return set(json.loads(result.stdout).get("knobs", {}))


def pin_knobs(configs: list[Config], declared: set[str]) -> None:
    """Add ``--set`` for each of PINNED_KNOBS that is declared, to every buildpolicy configuration."""
    pins = tuple(f"{k}={v}" for k, v in PINNED_KNOBS.items() if k in declared)
    for c in configs:
        if c.sets is not None:
            c.sets = (*c.sets, *pins)


def decide(config: Config, project: Project, env: dict[str, str], cargo: list[str]) -> None:
    """Fill ``config.decisions``/``env`` from ``exec --dry-run``; mark it unavailable if need be."""
    if config.sets is None:
        return
    result = subprocess.run(
        [*config.argv(cargo)[:-len(cargo) - 1], "--dry-run", "--", *cargo],
        cwd=project.path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    if result.returncode == 2:  # usage or knob error: typically a knob no plugin declares yet
        config.available = False
        config.why_unavailable = (result.stderr.strip().splitlines() or ["exit 2"])[-1]
        return
    if result.returncode != 0:
        raise BenchError(f"buildpolicy exec --dry-run failed ({result.returncode}):\n{result.stderr}")
    plan = json.loads(result.stdout)
    config.decisions = {name: str(d.get("status")) for name, d in plan["decisions"].items()}
    config.env = dict(plan["env"])
    if config.is_combo:
        why = mismatch(config.want, config.decisions)
        if why:
            config.available, config.why_unavailable = False, why
    for name in ("RUSTC_WRAPPER", "CARGO_BUILD_RUSTC_WRAPPER"):
        if name in config.env and config.is_combo:
            config.available, config.why_unavailable = False, f"{name} set despite sccache=off"


# ---------------------------------------------------------------- measuring


def children_cpu() -> float:
    """User + system CPU seconds of all waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_build(argv: list[str], cwd: Path, env: dict[str, str], log: Path, timeout: float) -> tuple[float, float, str]:
    """Run one build; return (wall seconds, CPU seconds, error or '')."""
    with open(log, "wb") as out:
        cpu0, t0 = children_cpu(), time.perf_counter()
        try:
            result = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return time.perf_counter() - t0, children_cpu() - cpu0, f"timed out after {timeout:.0f}s"
        wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if result.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        return wall, cpu, f"exit {result.returncode}: " + " | ".join(tail)
    return wall, cpu, ""


def touch_source(source: Path, counter: int) -> None:
    """Insert a unique comment line at the top of ``source``.

    New content, so cargo must rebuild the crate; and at the top rather than appended,
    because shifting every line below makes rustc redo that file's code generation (the
    debug info's line numbers changed), as a real edit would. A comment appended at the
    end changes no span, and rustc reuses everything but the link. A shebang line, if
    any, stays first.
    """
    text = source.read_text(encoding="utf-8")
    line = f"{TOUCH_MARK} {counter}\n"
    if text.startswith("#!") and not text.startswith("#!["):
        first, _, rest = text.partition("\n")
        text = f"{first}\n{line}{rest}"
    else:
        text = line + text
    source.write_text(text, encoding="utf-8")


def pristine_source(source: Path) -> bytes:
    """The main source file without comments a killed earlier run may have left in it."""
    lines = source.read_bytes().splitlines(keepends=True)
    return b"".join(l for l in lines if not l.startswith(TOUCH_MARK.encode()))


def restore_source(source: Path, original: bytes) -> None:
    """Put back the pristine main source file."""
    source.write_bytes(original)


@dataclass
class Runner:
    """Runs the rounds: one target directory per configuration, shuffled order per round."""

    project: Project
    env: dict[str, str]
    targets: Path
    logs: Path
    seed: int
    timeout: float
    verbose: bool = True
    _touches: int = 0

    def target_dir(self, config: Config) -> Path:
        return self.targets / config.id

    def cargo_argv(self, scenario: str) -> list[str]:
        """``cargo build`` for a clean build; only the binary crate for a touched rebuild."""
        if scenario == "touched":
            return ["cargo", "build", "--bin", self.project.bin_name]
        return ["cargo", "build"]

    def one(self, config: Config, scenario: str, round_no: int, prepare: bool = False) -> None:
        """One build of ``config`` in ``scenario`` (``prepare``: untimed, brings the target dir up to date)."""
        target = self.target_dir(config)
        env = {**self.env, "CARGO_TARGET_DIR": str(target)}
        if scenario == "clean" and not prepare:
            shutil.rmtree(target, ignore_errors=True)  # what `cargo clean` does, toolchain-independent
        if scenario == "touched" and not prepare:
            self._touches += 1
            touch_source(self.project.main_source, self._touches)
        log = self.logs / f"{config.id}-{scenario}{'-prepare' if prepare else ''}.log"
        wall, cpu, error = run_build(config.argv(self.cargo_argv(scenario)), self.project.path, env, log, self.timeout)
        if prepare:
            if error:
                config.failures[scenario] = f"preparing: {error}"
            return
        if error:
            config.failures[scenario] = error
        else:
            config.times.setdefault(scenario, []).append(wall)
            config.cpu.setdefault(scenario, []).append(cpu)
        if self.verbose:
            state = f"FAILED {error}" if error else f"{wall:7.2f} s wall, {cpu:7.2f} s cpu"
            print(f"  [{scenario} round {round_no}] {config.id:14} {state}", file=sys.stderr, flush=True)

    def rounds(self, configs: list[Config], scenario: str, rounds: int) -> None:
        """``rounds`` rounds of ``scenario``, every available configuration once per round.

        The order is shuffled per round with a seeded generator, so every configuration
        sees early and late slots alike and the run can be repeated exactly.
        """
        active = [c for c in configs if c.available]
        if scenario == "touched":
            # Untimed: bring each target dir up to date (a no-op after the clean rounds),
            # so the first timed rebuild is a real one-file rebuild, not a full build.
            for c in active:
                self.one(c, scenario, 0, prepare=True)
        rng = random.Random(f"{self.seed}-{scenario}")
        for r in range(1, rounds + 1):
            order = active[:]
            rng.shuffle(order)
            for c in order:
                if scenario not in c.failures:
                    self.one(c, scenario, r)


# ---------------------------------------------------------------- report


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def regret(configs: list[Config], scenario: str, equivalent: str | None = None) -> dict[str, object]:
    """The policy's median over the best combination's median, plus two variants.

    - ``regret``: the ``policy`` row (``buildpolicy exec`` with its own decisions) over the
      best combination: what the user gets, noise and all;
    - ``regret_paired``: the same ratio taken round by round (both ran in the same round,
      under the same load), then the median: noise that hit a whole round cancels out;
    - ``regret_choice``: the combination the policy's decisions amount to (``equivalent``)
      over the best combination: did it *choose* well, apart from the run-to-run noise
      between two measurements of the same settings.
    """
    combos = [c for c in configs if c.is_combo and c.times.get(scenario)]
    policy = next((c for c in configs if c.id == "policy" and c.times.get(scenario)), None)
    out: dict[str, object] = {"best": None, "best_median": None, "policy_median": None,
                              "regret": None, "regret_paired": None, "regret_choice": None}
    if not combos:
        return out
    best = min(combos, key=lambda c: median(c.times[scenario]))
    out["best"] = best.id
    out["best_median"] = median(best.times[scenario])
    if policy is not None:
        out["policy_median"] = median(policy.times[scenario])
        out["regret"] = out["policy_median"] / out["best_median"]
        pairs = list(zip(policy.times[scenario], best.times[scenario]))
        out["regret_paired"] = statistics.median(p / b for p, b in pairs) if pairs else None
    chosen = next((c for c in combos if c.id == equivalent), None)
    if chosen is not None:
        out["regret_choice"] = median(chosen.times[scenario]) / out["best_median"]
    return out


def fmt(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def markdown_table(configs: list[Config], scenarios: list[str], regrets: dict[str, dict], equivalent: str | None) -> str:
    """One row per configuration, per scenario: median wall time, its ratio to the best
    combination's, median CPU time (user + system of cargo and everything under it: less
    sensitive to other people's load than wall time, blind to parallelism) and the runs."""
    head = ["configuration"]
    for s in scenarios:
        head += [f"{s} median s", f"{s} × best", f"{s} cpu s", f"{s} runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in configs:
        label = c.label + (" ≡ policy" if c.id == equivalent else "")
        if c.id == "policy" and equivalent:
            label += f" ≡ {equivalent}"
        row = [label]
        if not c.available:
            row += ["unavailable", "—", "—", "0"] * len(scenarios)
            lines.append("| " + " | ".join(row) + " |")
            continue
        for s in scenarios:
            med = median(c.times.get(s, []))
            best = regrets[s]["best_median"]
            ratio = med / best if med is not None and best else None
            mark = " **best**" if c.id == regrets[s]["best"] else ""
            row += [fmt(med) + mark, fmt(ratio), fmt(median(c.cpu.get(s, []))), str(len(c.times.get(s, [])))]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return (out.strip().splitlines() or ["unavailable"])[0]


def machine_info(env: dict[str, str]) -> dict[str, object]:
    """What the numbers depend on: CPU, memory, kernel, toolchains and linkers."""
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    def rustc(tc: str) -> str:
        return tool_version(["env", f"RUSTUP_TOOLCHAIN={tc}", "rustc", "-V"])
    return {
        "cpu": cpu_model, "cpus": len(os.sched_getaffinity(0)), "memory": mem,
        "kernel": platform.release(), "python": platform.python_version(),
        "rustc_stable": rustc("stable"), "rustc_nightly": rustc("nightly"),
        "mold": tool_version(["mold", "--version"]), "ld.lld": tool_version(["ld.lld", "--version"]),
        "clang": tool_version(["clang", "--version"]),
    }


def git_head() -> str:
    return tool_version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--project", type=Path, default=None,
                   help=f"the cargo project (default: {DEFAULT_BENCH_DIR}/project, made by setup_build_project.sh)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="target directories, logs and buildpolicy sandbox (default: <bench dir>/runs)")
    p.add_argument("--rounds", type=int, default=7, help="touched-rebuild rounds (default 7)")
    p.add_argument("--clean-rounds", type=int, default=2, help="clean-build rounds (default 2)")
    p.add_argument("--quick", action="store_true", help="3 touched rounds, 1 clean round")
    p.add_argument("--scenarios", default="clean,touched", help="comma-separated subset of clean,touched")
    p.add_argument("--only", default=None, help="regex: measure only configurations whose id matches (plus policy)")
    p.add_argument("--seed", type=int, default=1, help="seed of the per-round shuffles")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before one build counts as failed")
    p.add_argument("--json", type=Path, default=None, help="write the report here (default: <work dir>/build_speed.json)")
    p.add_argument("--plan", action="store_true",
                   help="print the configurations and buildpolicy's decisions as JSON; build nothing")
    p.add_argument("--from-json", type=Path, default=None, metavar="PATH",
                   help="measure nothing: print the table and regret of a report this script wrote")
    p.add_argument("--setup", action="store_true",
                   help="run setup_build_project.sh first (into the default location, or --project's parent)")
    p.add_argument("--tree", default="HEAD",
                   help="buildpolicy to benchmark: a commit (default HEAD, installed into its own venv) or 'worktree'")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.clean_rounds = min(args.rounds, 3), min(args.clean_rounds, 1)
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    if not args.scenarios or set(args.scenarios) - set(SCENARIOS):
        p.error(f"--scenarios: choose from {', '.join(SCENARIOS)}")
    if args.rounds < 1 or args.clean_rounds < 1:
        p.error("--rounds and --clean-rounds must be at least 1")
    return args


def summary(configs: list[Config], scenarios: list[str], equivalent: str | None) -> tuple[str, dict[str, dict]]:
    """The markdown table and the regret lines, and the regrets themselves."""
    regrets = {s: regret(configs, s, equivalent) for s in scenarios}
    lines = [markdown_table(configs, scenarios, regrets, equivalent), ""]
    for s in scenarios:
        r = regrets[s]
        lines.append(f"- {s}: regret {fmt(r['regret'])} (paired {fmt(r['regret_paired'])}; "
                     f"of the choice {equivalent or '—'}: {fmt(r['regret_choice'])}): "
                     f"policy {fmt(r['policy_median'])} s vs best {r['best']} {fmt(r['best_median'])} s")
    for c in configs:
        for s, why in c.failures.items():
            lines.append(f"- {c.id} {s} failed: {why}")
    return "\n".join(lines), regrets


def configs_from_report(report: dict) -> list[Config]:
    """Configurations with their measurements, back from a JSON report."""
    configs = []
    for row in report["configs"]:
        m = re.fullmatch(r"(\w+)-(on|off)-j(\d+)", row["id"])
        want = {"linker": m[1], "frontend": m[2], "jobs": int(m[3])} if m else {}
        configs.append(Config(
            row["id"], row["label"], None if row["id"] == "plain" else (), want=want,
            available=row["available"], why_unavailable=row["why_unavailable"], decisions=row["decisions"],
            env=row["env"], times=row["times"], cpu=row["cpu"], failures=row["failures"],
        ))
    return configs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        report = json.loads(args.from_json.read_text())
        scenarios = [s for s in SCENARIOS if any(s in row["times"] for row in report["configs"])]
        text, _ = summary(configs_from_report(report), scenarios, report["policy_equivalent"])
        print(text)
        return 0
    if args.setup:
        bench_dir = args.project.parent if args.project else DEFAULT_BENCH_DIR
        subprocess.run(["bash", str(SETUP_SCRIPT), str(bench_dir)], check=True, stdout=subprocess.DEVNULL)
    project_dir = (args.project or DEFAULT_BENCH_DIR / "project").resolve()
    work = (args.work_dir or (DEFAULT_BENCH_DIR / "runs" if args.project is None else project_dir.parent / "runs"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.tree == "worktree":
            launcher, commit = BUILDPOLICY, f"worktree at {git_head()}"
        else:
            commit, python = snapshot_venv(args.tree, work / "buildpolicy-venvs")
            launcher = (str(python), "-m", "buildpolicy")
        env = sanitized_environ(work / "buildpolicy-sandbox")
        project = load_project(project_dir, env)
        configs = build_configs(len(os.sched_getaffinity(0)), launcher)
        if args.only:
            configs = [c for c in configs if c.id == "policy" or re.search(args.only, c.id)]
        pin_knobs(configs, declared_knobs(launcher, project.path, env))
        for c in configs:
            decide(c, project, env, ["cargo", "build"])
    except BenchError as e:
        print(f"build_speed: {e}", file=sys.stderr)
        return 2
    policy = next(c for c in configs if c.id == "policy")
    equivalent = policy_equivalent(policy.decisions, configs)

    if args.plan:
        json.dump({
            "buildpolicy": commit, "project": str(project.path), "bin": project.bin_name, "main_source": str(project.main_source),
            "policy_equivalent": equivalent,
            "configs": [{"id": c.id, "label": c.label, "argv": c.argv(["cargo", "build"]), "available": c.available,
                         "why_unavailable": c.why_unavailable, "decisions": c.decisions, "env": c.env} for c in configs],
        }, sys.stdout, indent=2)
        print()
        return 0

    for c in configs:
        if not c.available:
            print(f"build_speed: {c.id} unavailable: {c.why_unavailable}", file=sys.stderr)
    print(f"build_speed: {project.name} {project.version} in {project.path}; policy decided "
          + ", ".join(f"{k}={policy.decisions.get(k)}" for k in ("linker", "frontend", "jobs", "sccache"))
          + (f" (≡ {equivalent})" if equivalent else ""), file=sys.stderr)

    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    runner = Runner(project, env, work / "targets", logs, args.seed, args.timeout)
    original = pristine_source(project.main_source)
    started, load_start = time.time(), os.getloadavg()
    try:
        # Clean first: its last round leaves every target dir fully built, which is
        # exactly the starting point of the touched rebuilds.
        for scenario in [s for s in SCENARIOS if s in args.scenarios]:
            rounds = args.clean_rounds if scenario == "clean" else args.rounds
            print(f"build_speed: {scenario}: {rounds} round(s) × {sum(c.available for c in configs)} configurations",
                  file=sys.stderr)
            runner.rounds(configs, scenario, rounds)
    finally:
        restore_source(project.main_source, original)
    elapsed = time.time() - started

    scenarios = [s for s in SCENARIOS if s in args.scenarios]
    text, regrets = summary(configs, scenarios, equivalent)
    report = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(env),
        "buildpolicy": commit,
        "project": {"name": project.name, "version": project.version, "path": str(project.path),
                    "bin": project.bin_name, "touched_file": str(project.main_source)},
        "rounds": {"clean": args.clean_rounds, "touched": args.rounds}, "seed": args.seed,
        "elapsed_s": elapsed,
        # Other people's work on the machine shows here: the 1/5/15-minute load averages.
        "loadavg": {"start": load_start, "end": os.getloadavg()},
        "policy_decisions": policy.decisions, "policy_equivalent": equivalent,
        "regret": regrets,
        "configs": [
            {"id": c.id, "label": c.label, "argv": c.argv(["cargo", "build"]), "available": c.available,
             "why_unavailable": c.why_unavailable, "decisions": c.decisions, "env": c.env,
             "times": c.times, "cpu": c.cpu, "failures": c.failures,
             "median": {s: median(c.times.get(s, [])) for s in scenarios}}
            for c in configs
        ],
        "summary_markdown": text,
    }
    json_path = args.json or work / "build_speed.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")

    print(text)
    print(f"\n{report['date']}, {elapsed / 60:.1f} min; JSON: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
