#!/usr/bin/env python3
"""Benchmark ``buildpolicy env`` against the budgets of DESIGN §10.

``buildpolicy env`` runs at every shell prompt, so its start-up cost is the product's
main cost. This script measures, in a throwaway sandbox:

1. warm ``env`` (plain, and with a cargo argv), which is replayed, against a bare
   ``python -c pass`` of the same interpreter: budget median(env) / median(pass) <= 2.0,
   and plain ``env`` faster than a bash wrapper's ``--print-setup`` making the same probes
   (``wrapper_print_setup.sh``); a full evaluation with warm caches, and the first prompt
   after an edit of a project policy file: <= 5.0;
2. cold ``env`` (buildpolicy's cache directory empty on every run): budget < 300 ms;
3. warm ``env`` over 1,000 synthetic rules in 50 files against warm ``env`` with only the
   shipped policies: budget ratio < 3.0;
4. peak RSS of warm ``env``: budget < 40 MiB;
5. ``check`` of 10,000 synthetic rules in 50 files, with the compiled-policy cache warm and
   with it empty (issue 10: ``check`` used to compare every pair of rules): budget < 2 s.

It is a report, not a test: it exits 0 whatever the numbers say, unless the tool under
test fails (exit 2); ``--check`` makes a missed budget exit 1. Standard library only.

    python bench/bench_env.py [--runs N] [--cold-runs N] [--quick] [--json] [--check] [--importtime]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# DESIGN §10 budgets.
WARM_RATIO_BUDGET = 2.0  # a replayed env
FULL_RATIO_BUDGET = 5.0  # a full evaluation, caches warm
COLD_MS_BUDGET = 300.0
MANY_RULES_RATIO_BUDGET = 3.0
RSS_MIB_BUDGET = 40.0

SYNTH_FILES = 50
SYNTH_RULES_PER_FILE = 20
CHECK_RULES_PER_FILE = 200  # the `check` scale case: 10,000 rules in 50 files
CHECK_MS_BUDGET = 2000.0

REPO = Path(__file__).resolve().parent.parent
# What `env` replaces at a prompt: a bash wrapper's `--print-setup`, same probes (DESIGN §10).
WRAPPER_ARGV = (shutil.which("bash") or "/bin/bash", str(REPO / "bench" / "wrapper_print_setup.sh"))


def buildpolicy_argv(python: str) -> tuple[str, ...]:
    """How users start buildpolicy with ``python``: the ``buildpolicy`` script pip put next
    to it (run by that interpreter, as its shebang would), else ``python -m buildpolicy``."""
    script = Path(python).parent / "buildpolicy"
    try:
        with open(script, "rb") as handle:
            shebang = handle.readline()
    except OSError:
        return (python, "-m", "buildpolicy")
    if shebang.startswith(b"#!") and b"python" in shebang:
        return (python, str(script))
    return (python, "-m", "buildpolicy")


def use_interpreter(python: str) -> None:
    """Measure with ``python``: its own `python -c pass` is the baseline."""
    global PYTHON, PASS_ARGV, BUILDPOLICY, ENV_ARGV, ENV_CARGO_ARGV, CHECK_ARGV
    PYTHON = python
    PASS_ARGV = (PYTHON, "-c", "pass")
    BUILDPOLICY = buildpolicy_argv(PYTHON)
    ENV_ARGV = (*BUILDPOLICY, "env")
    ENV_CARGO_ARGV = (*ENV_ARGV, "--", "cargo", "build", "--profile", "selfdev")
    CHECK_ARGV = (*BUILDPOLICY, "check")


# Always the interpreter running this script, never whatever `python` is on PATH: a
# pyenv shim is itself a process launch (bash + pyenv) and would swamp the numbers.
use_interpreter(sys.executable)


def make_clean_venv(root: Path) -> str:
    """A new virtualenv with `pip install .` of this checkout (not editable, no system packages).

    A development environment's site-packages can make `python -c pass` itself slow
    (an editable-install finder, `.pth` files of other packages), which flatters the
    ratio; a clean install is what a user gets.
    """
    venv = root / "clean-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(REPO)], check=True)
    return python

# Inherited variables that change buildpolicy's decisions (or undo a previous `env`
# through BUILDPOLICY_ENV_STATE); the sandbox drops them so every run decides the same.
DROPPED_PREFIXES = ("BUILDPOLICY_", "CARGO_BUILD_", "CARGO_PROFILE_", "CARGO_TARGET_", "SCCACHE_")
DROPPED_NAMES = ("CARGO_INCREMENTAL", "RUSTFLAGS", "RUSTC_WRAPPER", "RUSTUP_TOOLCHAIN", "CI")


class BenchError(Exception):
    """The tool under test failed (or the sandbox could not be set up)."""


# ---------------------------------------------------------------- sandbox


@dataclass(frozen=True)
class Sandbox:
    """A temporary home, site dir and four projects: shipped policies only, one small
    policy file of its own (edited before each run), 1,000 rules, 10,000 rules."""

    root: Path
    environ: dict[str, str]
    shipped_project: Path
    edited_project: Path
    many_rules_project: Path
    check_project: Path

    def environ_for(self, project: Path, cold: bool = False) -> dict[str, str]:
        """The environment of one run in ``project``: its own cache, or a new empty one if ``cold``.

        Each project gets its own XDG_CACHE_HOME, so the two projects' caches (compiled
        policies, replay records) are measured as a user with one project has them.
        """
        if cold:
            cache = Path(tempfile.mkdtemp(prefix="cold-cache-", dir=self.root))
        else:
            cache = Path(self.environ["XDG_CACHE_HOME"]) / project.name
        return {**self.environ, "XDG_CACHE_HOME": str(cache)}


CARGO_TOML = """\
[package]
name = "bench-project"
version = "0.1.0"
edition = "2021"

[profile.selfdev]
inherits = "dev"
incremental = true

[profile.release-lto]
inherits = "release"
lto = "fat"
"""

PROFILE_TOML = """\
#:schema ../schema/profile.schema.json
# A small project profile, as `buildpolicy init` would leave it.
policies = ["policies"]
default_profile = "dev"

[feature_profiles]
minimal = ["--no-default-features"]
"""


# The project policy file of the "first prompt after an edit" measurement.
TEAM_POLICY = """\
#:schema ../schema/policy.schema.json
[[rule]]
id = "team-frame-pointers"
description = "Profilers need frame pointers in dev builds"
when = "cargo.profile in ['dev', 'selfdev']"
rustflags = ["-Cforce-frame-pointers=yes"]
"""


def sandbox_environ(root: Path) -> dict[str, str]:
    """This process's environment with buildpolicy's file locations moved into ``root``.

    The user's own config, caches and site files must not interfere, but the machine's
    toolchains must stay visible: rustup and cargo default to ``~/.rustup`` and
    ``~/.cargo``, so their real homes are pinned before HOME moves.
    """
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(DROPPED_PREFIXES) and name not in DROPPED_NAMES
    }
    real_home = Path.home()
    for name, default in (("RUSTUP_HOME", real_home / ".rustup"), ("CARGO_HOME", real_home / ".cargo")):
        if name not in environ and default.is_dir():
            environ[name] = str(default)
    home = root / "home"
    environ.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        BUILDPOLICY_SITE_DIR=str(root / "site"),
    )
    for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "BUILDPOLICY_SITE_DIR"):
        Path(environ[var]).mkdir(parents=True, exist_ok=True)
    return environ


def write_project(directory: Path, policies: dict[str, str]) -> Path:
    """Create a cargo project with a ``buildpolicy.toml`` and the given policy files."""
    (directory / "src").mkdir(parents=True)
    (directory / "src" / "main.rs").write_text("fn main() {}\n")
    (directory / "Cargo.toml").write_text(CARGO_TOML)
    (directory / "buildpolicy.toml").write_text(PROFILE_TOML)
    (directory / "policies").mkdir()
    for name, text in policies.items():
        (directory / "policies" / name).write_text(text)
    return directory


def make_sandbox(root: Path) -> Sandbox:
    """Lay out the sandbox under ``root``."""
    return Sandbox(
        root=root,
        environ=sandbox_environ(root),
        shipped_project=write_project(root / "shipped", {}),
        edited_project=write_project(root / "edited", {"team.toml": TEAM_POLICY}),
        many_rules_project=write_project(root / "many-rules", synthetic_policies()),
        check_project=write_project(root / "check-10k", synthetic_policies(per_file=CHECK_RULES_PER_FILE)),
    )


# ------------------------------------------------------- synthetic policies

# Conditions over facts that are cheap to probe (no toolchain subprocesses), with the
# kinds of thresholds real wrappers use. Mixed so that some rules match on any machine
# and some never do, and every operator of the grammar is exercised.
CONDITIONS = (
    "os == 'linux'",
    "os in ['linux', 'freebsd']",
    "os != 'windows'",
    "arch == 'x86_64'",
    "arch in ['x86_64', 'aarch64']",
    "cpu.count >= {cpus}",
    "cpu.count < {cpus}",
    "memory.total < {gib}GiB",
    "memory.total >= {gib}GiB",
    "memory.available < {half_gib}GiB",
    "memory.available > 1536MiB",
    "swap.total == 0",
    "swap.total > 2GiB",
    "cgroup.memory_limit == null",
    "cargo.profile == 'release'",
    "cargo.profile in ['dev', 'selfdev', 'test']",
    "cargo.profile != 'release-lto'",
    "cargo.incremental",
    "not cargo.incremental",
    "ci",
    "not ci",
    "fs.tmp_is_memory",
    "env.BENCH_TEAM_{k} == '1'",
    "env.HOME != null",
)

RUSTFLAG_FRAGMENTS = ("-Cforce-frame-pointers=yes", "-Csymbol-mangling-version=v0", "-Cdebug-assertions=on")


def synthetic_when(index: int) -> str:
    """A deterministic ``when`` of one to four conditions, sometimes with ``or``/``not``."""
    count = 1 + index % 4
    parts = []
    for step in range(count):
        template = CONDITIONS[(index * 7 + step * 11) % len(CONDITIONS)]
        parts.append(
            template.format(cpus=2 ** (index % 4), gib=4 * (1 + index % 8), half_gib=2 * (1 + index % 8), k=index % 13)
        )
    if count >= 3 and index % 5 == 0:
        return f"{parts[0]} and ({' or '.join(parts[1:])})"
    if count == 2 and index % 3 == 0:
        return f"not ({parts[0]}) or {parts[1]}"
    return " and ".join(parts)


def synthetic_rule(file_no: int, rule_no: int, per_file: int = SYNTH_RULES_PER_FILE) -> str:
    """One ``[[rule]]`` table; its variables are its own, so matches never conflict."""
    index = file_no * per_file + rule_no
    tag = f"F{file_no:02d}_R{rule_no:0{len(str(per_file - 1))}d}"
    env = {
        f"CARGO_PROFILE_${{cargo.profile_env}}_BENCH_{tag}": "${cargo.profile}-" + str(index),
        f"CARGO_BENCH_{tag}_JOBS": str(1 + index % 16),
    }
    if index % 3 == 0:
        env[f"CARGO_BENCH_{tag}_TMP"] = "$${TMPDIR}/bench-" + str(index)
    lines = [
        "[[rule]]",
        f'id = "synthetic-{file_no:02d}-{rule_no:0{len(str(per_file - 1))}d}"',
        f'description = "Synthetic rule {index} of the 1,000-rule benchmark"',
        f"when = {json.dumps(synthetic_when(index))}",
        "env = { " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in env.items()) + " }",
    ]
    if index % 10 == 0:
        # A unique --cfg keeps composed rustflags free of duplicates whatever the engine does with them.
        lines.append(f'rustflags = ["{RUSTFLAG_FRAGMENTS[index % 3]}", "--cfg=bench_{tag.lower()}"]')
    if index % 7 == 0:
        lines.append(f"priority = {1 + index % 3}")
    if index % 11 == 0:
        lines.append("force = true")
    return "\n".join(lines) + "\n"


def synthetic_policies(per_file: int = SYNTH_RULES_PER_FILE) -> dict[str, str]:
    """50 policy files of ``per_file`` rules each (20: the 1,000-rule case), keyed by file name."""
    header = "#:schema ../schema/policy.schema.json\n# Generated by bench/bench_env.py.\n\n"
    return {
        f"synth-{file_no:02d}.toml": header
        + "\n".join(synthetic_rule(file_no, rule_no, per_file) for rule_no in range(per_file))
        for file_no in range(SYNTH_FILES)
    }


# ------------------------------------------------------------ running


@dataclass(frozen=True)
class Command:
    """A child process to time; ``cold`` gives every run an empty buildpolicy cache."""

    label: str
    argv: tuple[str, ...]
    cwd: Path
    cold: bool = False
    extra_env: tuple[tuple[str, str], ...] = ()  # e.g. BUILDPOLICY_REPLAY=off
    edit: Path | None = None  # a file edited (a comment line added) before every run, untimed


@dataclass
class Samples:
    """Wall time (ms) and peak RSS (MiB; left empty without os.wait4) of each timed run."""

    wall_ms: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)


def maxrss_mib(ru_maxrss: int) -> float:
    """``ru_maxrss`` in MiB: Linux reports KiB, macOS bytes."""
    return ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def run_once(command: Command, sandbox: Sandbox) -> tuple[float, float | None]:
    """Run ``command`` once; return its wall time in ms and its peak RSS in MiB.

    Popen + os.wait4 instead of subprocess.run: wait4 hands back the rusage of exactly
    this child (RUSAGE_CHILDREN would mix every child so far), at no extra cost.
    """
    environ = {**sandbox.environ_for(command.cwd, command.cold), **dict(command.extra_env)}
    if command.edit is not None:
        with open(command.edit, "a", encoding="utf-8") as handle:
            handle.write("# edited by the benchmark\n")
    start = time.perf_counter_ns()
    proc = subprocess.Popen(
        command.argv, cwd=command.cwd, env=environ,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    if hasattr(os, "wait4"):
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        rss = maxrss_mib(usage.ru_maxrss)
    else:
        proc.wait()
        rss = None
    wall_ms = (time.perf_counter_ns() - start) / 1e6
    if proc.returncode != 0:
        ensure_ok(command, sandbox)  # re-run with output captured, to report why
        raise BenchError(f"{command.label}: exited {proc.returncode} during a timed run")
    return wall_ms, rss


# Runs the measured program in this process and reports the peak RSS of its own
# memory map (VmHWM). ru_maxrss cannot tell: a child created by fork from this
# benchmark starts as a copy of it, and Linux keeps that high-water mark across exec.
_RSS_WRAPPER = """\
import atexit, os, runpy, sys
def report():
    with open("/proc/self/status") as status:
        hwm = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    os.write(2, f"\\nbench-vmhwm-kib {hwm}\\n".encode())
atexit.register(report)
target = sys.argv[1:]
if target[:1] == ["-c"]:
    sys.argv = ["-c", *target[2:]]
    exec(compile(target[1], "<string>", "exec"), {"__name__": "__main__"})
elif target[:1] == ["-m"]:
    sys.argv = [target[1], *target[2:]]
    runpy.run_module(target[1], run_name="__main__", alter_sys=True)
else:
    sys.argv = target
    runpy.run_path(target[0], run_name="__main__")
"""
RSS_RUNS = 5


def rss_samples(command: Command, sandbox: Sandbox, fallback: list[float]) -> list[float]:
    """Peak RSS (MiB) of ``command`` over RSS_RUNS runs, from the program's own memory
    map (Linux); elsewhere ``fallback`` (ru_maxrss of the timed runs, an upper bound)."""
    if not os.path.exists("/proc/self/status") or command.argv[0] != PYTHON:
        return fallback
    environ = {**sandbox.environ_for(command.cwd, command.cold), **dict(command.extra_env)}
    values = []
    for _ in range(RSS_RUNS):
        result = subprocess.run((PYTHON, "-c", _RSS_WRAPPER, *command.argv[1:]), cwd=command.cwd, env=environ,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, check=False)
        marks = [line.split()[1] for line in result.stderr.splitlines() if line.startswith("bench-vmhwm-kib ")]
        if result.returncode != 0 or not marks:
            raise BenchError(f"{command.label}: the RSS run exited {result.returncode}:\n{result.stderr}")
        values.append(int(marks[-1]) / 1024)
    return values


def ensure_ok(command: Command, sandbox: Sandbox) -> None:
    """Run ``command`` with its output captured; raise BenchError showing it on failure."""
    environ = {**sandbox.environ_for(command.cwd, command.cold), **dict(command.extra_env)}
    result = subprocess.run(command.argv, cwd=command.cwd, env=environ, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchError(
            f"{command.label}: `{' '.join(command.argv)}` in {command.cwd} exited {result.returncode}\n"
            f"{textwrap.indent(result.stderr.strip() or result.stdout.strip(), '    ')}"
        )


def interleaved(commands: list[Command], sandbox: Sandbox, runs: int, warmup: int) -> dict[str, Samples]:
    """Time ``commands`` in ``runs`` rounds, each round running every command once.

    Interleaving makes each round a paired comparison under the same machine state, and
    reversing the order every other round gives each command the same average position,
    so drift (thermal, page cache, other load) and "runs right after X" effects cancel
    out instead of biasing whichever command is measured later.
    """
    for command in commands:
        ensure_ok(command, sandbox)
        for _ in range(warmup):  # fill buildpolicy's caches and the OS page cache
            run_once(command, sandbox)
    samples = {command.label: Samples() for command in commands}
    for round_no in range(runs):
        order = commands if round_no % 2 == 0 else commands[::-1]
        for command in order:
            wall_ms, rss = run_once(command, sandbox)
            samples[command.label].wall_ms.append(wall_ms)
            if rss is not None:
                samples[command.label].rss_mib.append(rss)
    return samples


# ------------------------------------------------------------ results


@dataclass
class Measurement:
    """One row of the report."""

    id: str
    label: str
    unit: str
    runs: int
    median: float
    p90: float
    max: float
    ratio: float | None = None  # median / the baseline's median
    baseline: str | None = None  # what the ratio is to, e.g. "pass"
    budget: str | None = None
    passed: bool | None = None  # None: informational row


def percentile(values: list[float], fraction: float) -> float:
    """Linear-interpolated percentile (``fraction`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(mid: str, label: str, values: list[float], unit: str = "ms") -> Measurement:
    """Median, p90 and max of ``values``."""
    return Measurement(
        id=mid, label=label, unit=unit, runs=len(values),
        median=statistics.median(values), p90=percentile(values, 0.9), max=max(values),
    )


def with_ratio(row: Measurement, baseline: Measurement, name: str, limit: float | None = None,
               strict: bool = False) -> Measurement:
    """Set ``row``'s ratio to ``baseline`` (called ``name``), and judge it against ``limit`` when given."""
    row.ratio = row.median / baseline.median
    row.baseline = name
    if limit is not None:
        row.budget = f"ratio {'<' if strict else '≤'} {limit:g}"
        row.passed = row.ratio < limit if strict else row.ratio <= limit
    return row


def measure_warm(sandbox: Sandbox, runs: int, warmup: int) -> list[Measurement]:
    """§10 warm budget: env and env-with-cargo-argv against `python -c pass` and the bash
    wrapper, and the full evaluations, interleaved."""
    cwd = sandbox.shipped_project
    edited = sandbox.edited_project
    commands = [
        Command("pass", PASS_ARGV, cwd),
        Command("wrapper", WRAPPER_ARGV, cwd),
        Command("env", ENV_ARGV, cwd),
        Command("env-cargo", ENV_CARGO_ARGV, cwd),
        Command("env-full", ENV_ARGV, cwd, extra_env=(("BUILDPOLICY_REPLAY", "off"),)),
        Command("env-edited", ENV_ARGV, edited, edit=edited / "policies" / "team.toml"),
    ]
    samples = interleaved(commands, sandbox, runs, warmup)
    base = summarize("pass", "python -c pass (baseline)", samples["pass"].wall_ms)
    wrapper = with_ratio(summarize("wrapper_print_setup", "bash wrapper --print-setup, same probes",
                                   samples["wrapper"].wall_ms), base, "pass")
    env = with_ratio(summarize("env_warm", "env, warm, shipped policies (replayed)", samples["env"].wall_ms),
                     base, "pass", WARM_RATIO_BUDGET)
    # And faster than the wrapper it replaces, in the same rounds.
    env.budget += " and < wrapper"
    env.passed = env.passed and env.median < wrapper.median
    cargo = summarize("env_cargo_warm", "env -- cargo build --profile selfdev, warm", samples["env-cargo"].wall_ms)
    # What a warm run costs when it cannot be replayed (a plugin that is not replayable):
    # every policy and plugin evaluated, the compiled policies taken from their cache.
    full = summarize("env_warm_full", "env, warm caches, full evaluation (BUILDPOLICY_REPLAY=off)",
                     samples["env-full"].wall_ms)
    # The first prompt after an edit of a project policy file: that file compiled again.
    edited_row = summarize("env_edited", "env, first prompt after a policy file edit", samples["env-edited"].wall_ms)
    rows = [base, wrapper, env, with_ratio(cargo, base, "pass", WARM_RATIO_BUDGET),
            with_ratio(full, base, "pass", FULL_RATIO_BUDGET), with_ratio(edited_row, base, "pass", FULL_RATIO_BUDGET)]
    rows += measure_rss(commands, samples, sandbox)
    return rows


def measure_rss(commands: list[Command], samples: dict[str, Samples], sandbox: Sandbox) -> list[Measurement]:
    """§10 memory budget: peak RSS of warm `env` (replayed, and a full evaluation)."""
    by_label = {command.label: command for command in commands}
    base = rss_samples(by_label["pass"], sandbox, samples["pass"].rss_mib)
    rows = []
    for label, mid, title in (("env", "rss_env_warm", "peak RSS, env, warm (replayed)"),
                              ("env-full", "rss_env_warm_full", "peak RSS, env, full evaluation")):
        values = rss_samples(by_label[label], sandbox, samples[label].rss_mib)
        if not values:
            continue
        row = summarize(mid, title, values, unit="MiB")
        row.budget = f"max < {RSS_MIB_BUDGET:g} MiB"
        row.passed = row.max < RSS_MIB_BUDGET
        if base:
            row.ratio = row.median / statistics.median(base)
            row.baseline = "pass"
        rows.append(row)
    return rows


def measure_cold(sandbox: Sandbox, runs: int) -> list[Measurement]:
    """§10 cold budget: env with an empty cache directory every run, paired with pass."""
    cwd = sandbox.shipped_project
    commands = [Command("pass", PASS_ARGV, cwd), Command("env-cold", ENV_ARGV, cwd, cold=True)]
    # One warm-up only warms the interpreter's own files; the cold runs still get empty caches.
    samples = interleaved(commands, sandbox, runs, warmup=1)
    base = summarize("pass_cold_group", "python -c pass (cold group)", samples["pass"].wall_ms)
    row = with_ratio(summarize("env_cold", "env, cold (empty cache)", samples["env-cold"].wall_ms), base, "pass")
    row.budget = f"< {COLD_MS_BUDGET:g} ms"
    row.passed = row.median < COLD_MS_BUDGET
    return [row]


def measure_many_rules(sandbox: Sandbox, runs: int, warmup: int) -> list[Measurement]:
    """§10 scale budget: 1,000 rules in 50 files against the shipped policies, interleaved."""
    ensure_ok(Command("check 1,000 rules", CHECK_ARGV, sandbox.many_rules_project), sandbox)
    commands = [
        Command("shipped", ENV_ARGV, sandbox.shipped_project),
        Command("many", ENV_ARGV, sandbox.many_rules_project),
        Command("shipped-full", ENV_ARGV, sandbox.shipped_project, extra_env=(("BUILDPOLICY_REPLAY", "off"),)),
        Command("many-full", ENV_ARGV, sandbox.many_rules_project, extra_env=(("BUILDPOLICY_REPLAY", "off"),)),
    ]
    samples = interleaved(commands, sandbox, runs, warmup)
    base = summarize("env_warm_shipped_group", "env, warm, shipped (1,000-rule group)", samples["shipped"].wall_ms)
    many = summarize("env_warm_1000_rules", "env, warm, 1,000 rules / 50 files", samples["many"].wall_ms)
    rows = [base, with_ratio(many, base, "shipped", MANY_RULES_RATIO_BUDGET, strict=True)]
    # The same budget without the replay: evaluating 1,000 rules against evaluating the shipped ones.
    base_full = summarize("env_warm_shipped_full", "env, shipped, full evaluation", samples["shipped-full"].wall_ms)
    many_full = summarize("env_warm_1000_rules_full", "env, 1,000 rules, full evaluation", samples["many-full"].wall_ms)
    rows += [base_full, with_ratio(many_full, base_full, "shipped full", MANY_RULES_RATIO_BUDGET, strict=True)]
    many_rss = rss_samples(commands[3], sandbox, samples["many-full"].rss_mib)  # the full evaluation
    if many_rss:
        rss = summarize("rss_env_1000_rules", "peak RSS, env, 1,000 rules, full evaluation", many_rss, unit="MiB")
        rss.budget = f"max < {RSS_MIB_BUDGET:g} MiB"
        rss.passed = rss.max < RSS_MIB_BUDGET
        rows.append(rss)
    return rows


def measure_check(sandbox: Sandbox, runs: int) -> list[Measurement]:
    """``check`` of 10,000 rules in 50 files, interleaved: compiled-policy cache warm (nothing
    changed), after editing one file (the cache recompiles only that file), and empty
    (the first check ever: every file is compiled)."""
    cwd = sandbox.check_project
    edited = sorted((cwd / "policies").glob("*.toml"))[0]
    commands = [Command("check", CHECK_ARGV, cwd), Command("check-edit", CHECK_ARGV, cwd, edit=edited),
                Command("check-cold", CHECK_ARGV, cwd, cold=True)]
    samples = interleaved(commands, sandbox, runs, warmup=1)
    rows = []
    for label, mid, title in (("check", "check_10000_rules", "check, 10,000 rules / 50 files, warm cache"),
                              ("check-edit", "check_10000_rules_edit", "check, 10,000 rules / 50 files, one file edited"),
                              ("check-cold", "check_10000_rules_cold", "check, 10,000 rules / 50 files, empty cache")):
        row = summarize(mid, title, samples[label].wall_ms)
        row.budget = f"< {CHECK_MS_BUDGET:g} ms"
        row.passed = row.median < CHECK_MS_BUDGET
        rows.append(row)
    return rows


def matched_synthetic_rules(sandbox: Sandbox) -> int:
    """How many synthetic rules match on this machine (so the report shows the load is real)."""
    argv = (*BUILDPOLICY, "explain", "--format", "json")
    result = subprocess.run(argv, cwd=sandbox.many_rules_project, env=sandbox.environ_for(sandbox.many_rules_project),
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchError(f"explain on the 1,000 rules exited {result.returncode}:\n{result.stderr}")
    rules = json.loads(result.stdout)["rules"]
    return sum(1 for rule in rules if rule["id"].startswith("synthetic-") and rule["matched"])


def import_times(sandbox: Sandbox, top: int = 10) -> list[dict]:
    """The ``top`` imports by cumulative time of one warm `env` run (``python -X importtime``)."""
    argv = (PYTHON, "-X", "importtime", *ENV_ARGV[1:])
    result = subprocess.run(argv, cwd=sandbox.shipped_project, env=sandbox.environ_for(sandbox.shipped_project),
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchError(f"importtime run exited {result.returncode}:\n{result.stderr}")
    rows = []
    for line in result.stderr.splitlines():
        # "import time:       123 |       4567 |   package.module"; the header row has no digits.
        if not line.startswith("import time:"):
            continue
        fields = line[len("import time:"):].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue
        rows.append({
            "module": fields[2].strip(),
            "self_ms": int(fields[0]) / 1000,
            "cumulative_ms": int(fields[1]) / 1000,
        })
    rows.sort(key=lambda row: row["cumulative_ms"], reverse=True)
    return rows[:top]


# ------------------------------------------------------------ report


def environment_summary(args: argparse.Namespace, matched: int) -> dict:
    """What the numbers were measured on."""
    return {
        "python": PYTHON,
        "command": " ".join(ENV_ARGV),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "cold_runs": args.cold_runs,
        "warmup": args.warmup,
        "synthetic_rules": SYNTH_FILES * SYNTH_RULES_PER_FILE,
        "synthetic_files": SYNTH_FILES,
        "synthetic_matched": matched,
    }


def format_table(rows: list[Measurement]) -> str:
    """The final table: measurement, median, p90, ratio, budget, verdict."""
    header = ("measurement", "median", "p90", "ratio", "budget", "result")
    body = []
    for row in rows:
        body.append((
            row.label,
            f"{row.median:.1f} {row.unit}",
            f"{row.p90:.1f} {row.unit}",
            "" if row.ratio is None else f"{row.ratio:.2f}x {row.baseline}",
            row.budget or "",
            {True: "PASS", False: "FAIL", None: "-"}[row.passed],
        ))
    widths = [max(len(line[col]) for line in (header, *body)) for col in range(len(header))]
    right = {1, 2}  # numbers right-aligned

    def fmt(line):
        cells = (cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths)))
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *map(fmt, body)])


def format_imports(imports: list[dict]) -> str:
    """The import-time listing."""
    lines = [f"{'cumulative':>11}  {'self':>8}  module"]
    lines += [f"{row['cumulative_ms']:>8.1f} ms  {row['self_ms']:>5.1f} ms  {row['module']}" for row in imports]
    return "\n".join(lines)


def print_text_report(summary: dict, rows: list[Measurement], imports: list[dict] | None) -> None:
    """Human-readable report on stdout."""
    print("buildpolicy env benchmark (DESIGN §10)")
    print(f"  interpreter: {summary['python']} (Python {summary['python_version']})")
    print(f"  command:     {summary['command']}")
    print(f"  machine:     {summary['platform']}, {summary['cpus']} CPUs")
    print(f"  runs:        {summary['runs']} warm rounds, {summary['cold_runs']} cold rounds, "
          f"{summary['warmup']} warm-up runs per command; rounds interleaved, order alternating")
    print(f"  synthetic:   {summary['synthetic_rules']} rules in {summary['synthetic_files']} files, "
          f"{summary['synthetic_matched']} of them matching here")
    print()
    print(format_table(rows))
    if imports is not None:
        print()
        print("top imports of one warm `env` run (python -X importtime):")
        print(format_imports(imports))
    failed = [row.label for row in rows if row.passed is False]
    print()
    print("all budgets met" if not failed else f"budgets missed: {', '.join(failed)}")


# ------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options, with --quick's small run counts filled in."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, help="warm rounds per measurement (default 40; 3 with --quick)")
    parser.add_argument("--cold-runs", type=int, help="cold rounds (default 15; 3 with --quick)")
    parser.add_argument("--warmup", type=int, help="untimed runs per command first (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny run counts: checks the script, not the product")
    parser.add_argument("--json", action="store_true", help="print machine-readable results instead of the report")
    parser.add_argument("--check", action="store_true", help="exit 1 when a budget is missed")
    parser.add_argument("--importtime", action="store_true", help="also list the top-10 cumulative imports of `env`")
    parser.add_argument("--python", help="measure with this interpreter (buildpolicy must be installed in it)")
    parser.add_argument("--clean-venv", action="store_true",
                        help="measure in a new virtualenv with `pip install .` (needs the package index)")
    args = parser.parse_args(argv)
    defaults = (3, 3, 1) if args.quick else (40, 15, 3)
    args.runs = args.runs or defaults[0]
    args.cold_runs = args.cold_runs or defaults[1]
    args.warmup = defaults[2] if args.warmup is None else args.warmup
    if min(args.runs, args.cold_runs) < 1 or args.warmup < 0:
        parser.error("run counts must be positive")
    return args


def run_benchmarks(args: argparse.Namespace, sandbox: Sandbox) -> tuple[list[Measurement], int, list[dict] | None]:
    """Every measurement, the synthetic rules matching here, and the import times if asked for."""
    rows = measure_warm(sandbox, args.runs, args.warmup)
    rows += measure_cold(sandbox, args.cold_runs)
    rows += measure_many_rules(sandbox, args.runs, args.warmup)
    rows += measure_check(sandbox, args.cold_runs)
    matched = matched_synthetic_rules(sandbox)
    imports = import_times(sandbox) if args.importtime else None
    return rows, matched, imports


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="buildpolicy-bench-"))
    try:
        if args.clean_venv:
            use_interpreter(make_clean_venv(root))
        elif args.python:
            use_interpreter(args.python)
        sandbox = make_sandbox(root)
        rows, matched, imports = run_benchmarks(args, sandbox)
    except BenchError as error:
        print(f"bench_env: the tool under test failed: {error}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(root, ignore_errors=True)
    summary = environment_summary(args, matched)
    if args.json:
        result = {**summary, "measurements": [asdict(row) for row in rows],
                  "all_passed": all(row.passed is not False for row in rows)}
        if imports is not None:
            result["importtime"] = imports
        print(json.dumps(result, indent=2))
    else:
        print_text_report(summary, rows, imports)
    return 1 if args.check and any(row.passed is False for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
