"""Generated cargo workspaces whose crates have a known rustc peak memory.

Each lib crate holds one large static array literal, ``pub static DATA: [u32; N]``. rustc's
memory grows linearly with N (it keeps an expression node per element in its intermediate
representations until const evaluation folds the array into bytes), and does not depend on
the profile: optimisation has nothing to do on a static, so dev and release peak alike.
The element values cycle through 1000 small numbers: distinct values would each be
interned as a symbol (measured: ~0.08 KiB more per element, files 2.3x larger) without
making the crate any more realistic.

Calibration (CALIBRATION below): peak RSS of the rustc process, measured through a
RUSTC_WRAPPER that reads ``os.wait4``'s ``ru_maxrss`` (``cargo build -j1``, one crate at a
time, nothing else building), fitted by least squares to ``peak = base + slope * N``.
Recalibrate with ``python bench/memkit/workspaces.py --calibrate``; time the scenarios with
``--scenarios``.

Measured 2026-11-30, rustc 1.95.0 (59807616e 2026-04-14), x86_64, 2 vCPUs, load ~1 (others' tests):

| elements  | dev peak MiB | release peak MiB | fit MiB | dev rustc s | release rustc s |
|----------:|-------------:|-----------------:|--------:|------------:|----------------:|
|         0 |           70 |               67 |      67 |        0.02 |            0.03 |
|   100,000 |          109 |              107 |     113 |        0.33 |            0.17 |
|   250,000 |          189 |              186 |     182 |        0.67 |            0.48 |
|   400,000 |          254 |              251 |     252 |        0.80 |            0.79 |
| 1,500,000 |          755 |              755 |     759 |        3.52 |            3.72 |
| 3,000,000 |        1,447 |            1,454 |   1,450 |        8.26 |            7.22 |
| 4,500,000 |        2,143 |            2,143 |   2,142 |       13.07 |           12.36 |

Fit: peak MiB = 67.1 + 4.6107e-4 x elements (0.472 KiB per element); within 5 % of every
measured row from 100,000 elements up (a repeat run agreed within 1 %). rustc's RSS is
what is fitted. A cgroup around the build is charged rustc's own memory plus the page
cache of what it writes (the rlib: ~4 bytes per element), but not the rustc binary's
shared pages when something outside read them first: measured, one light crate at a time
peaked at 142 MiB of cgroup usage for 167 MiB rustc RSS, one heavy crate at 2104 for 2086.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

# (elements, profile, peak MiB, rustc seconds) as measured; see the module docstring.
CALIBRATION: tuple[tuple[int, str, float, float], ...] = (
    (0, 'dev', 70.3, 0.022),
    (100000, 'dev', 108.5, 0.325),
    (250000, 'dev', 189.3, 0.674),
    (400000, 'dev', 253.9, 0.797),
    (1500000, 'dev', 755.3, 3.518),
    (3000000, 'dev', 1447.4, 8.263),
    (4500000, 'dev', 2142.7, 13.072),
    (0, 'release', 67.3, 0.028),
    (100000, 'release', 106.8, 0.172),
    (250000, 'release', 186.0, 0.479),
    (400000, 'release', 251.4, 0.789),
    (1500000, 'release', 755.1, 3.716),
    (3000000, 'release', 1453.7, 7.221),
    (4500000, 'release', 2142.6, 12.362),
)
# peak MiB = BASE_MIB + MIB_PER_ELEMENT * elements, fitted over CALIBRATION (both profiles).
BASE_MIB = 67.1
MIB_PER_ELEMENT = 4.6107e-04  # 0.472 KiB per element

SPIN_PER_SECOND = 280_000  # const-evaluation iterations per CPU second; see spin_for_seconds

CRATE_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_CYCLE = 1000  # distinct element values; see the module docstring
_PER_LINE = 20  # divides _CYCLE, so full lines repeat (crate_source relies on it)


def fit(rows) -> tuple[float, float]:
    """Least-squares ``(base_mib, mib_per_element)`` over ``(elements, _, peak_mib, ...)`` rows."""
    xs = [float(row[0]) for row in rows]
    ys = [float(row[2]) for row in rows]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
    return mean_y - slope * mean_x, slope


def expected_peak_mib(elements: int) -> float:
    """The calibrated rustc peak RSS, in MiB, of a crate with ``elements`` array elements."""
    return BASE_MIB + MIB_PER_ELEMENT * elements


def elements_for_mib(target_mib: float) -> int:
    """How many array elements make a crate whose rustc peaks at about ``target_mib`` MiB.

    Targets below rustc's fixed base (an empty crate's peak) cannot be reached and are an
    error rather than a silently bigger crate.
    """
    if target_mib <= BASE_MIB:
        raise ValueError(f"{target_mib} MiB is below rustc's base peak of {BASE_MIB:.0f} MiB")
    return max(1, round((target_mib - BASE_MIB) / MIB_PER_ELEMENT))


def spin_for_seconds(seconds: float) -> int:
    """Const-evaluation iterations that cost rustc about ``seconds`` of CPU time (on this machine's CPU).

    Measured 2026-11-30 (rustc 1.95.0, this 2-vCPU machine): ~280,000 iterations per CPU
    second, plus ~0.4 s to start the evaluator. Memory: ~16 MiB over rustc's base for a
    crate of spin alone, and at most ~35 MiB over the array's calibrated peak when both are
    in one crate. A faster CPU spins faster; time it where it matters.
    """
    return max(1, round(seconds * SPIN_PER_SECOND))


def heavy_pair() -> dict[str, int]:
    """Two independent crates whose rustc peaks at about 2.2 GB (2098 MiB) each.

    Both at once need ~4.2 GB: measured, ``cargo build --release -j2`` in a 3.9 GiB cgroup
    is OOM-killed (one kill, exit 101); ``-j1`` builds, peaking at 2104 MiB of cgroup usage.
    Release build here (2 vCPUs, others' tests loading the machine to ~2): 12-15 s of
    rustc per crate alone, 35 s for ``-j1``, 33 s for ``-j2`` without a limit.
    """
    elements = elements_for_mib(2.2e9 / 2**20)
    return {"heavy_a": elements, "heavy_b": elements}


def light_six() -> dict[str, int]:
    """Six independent crates whose rustc peaks at about 180 MB (172 MiB; measured 167) each.

    Release build here: ~0.4 s of rustc per crate, 2.8 s for ``-j1``, 3.3 s for ``-j2`` (on
    a machine others kept busy): too short for parallelism to show. For a benchmark of
    jobs, lengthen each compile with ``spin`` (``write_workspace``): with
    ``spin_for_seconds(2)`` each crate takes ~2.3 s of rustc alone and 171 MiB.
    """
    elements = elements_for_mib(180e6 / 2**20)
    return {f"light_{index}": elements for index in range(1, 7)}


def crate_source(name: str, elements: int, spin: int = 0) -> str:
    """The lib.rs of crate ``name``: one static array of ``elements`` u32, the same bytes every time.

    ``spin`` > 0 adds a constant that rustc computes by interpreting a loop of ``spin``
    iterations: compile time without memory (see ``spin_for_seconds``).
    """
    # The start of the cycle depends on the name, so two crates of one size differ (as a
    # compiler cache would see real crates) yet each is reproducible.
    start = zlib.crc32(name.encode())
    values = [str(value) for value in range(_CYCLE)]

    def line(first: int, count: int) -> str:
        return ", ".join(values[(start + first + offset) % _CYCLE] for offset in range(count)) + ","

    # Full lines repeat every _CYCLE elements: build each once (millions of elements in ~0.1 s).
    full = [line(first, _PER_LINE) for first in range(0, _CYCLE, _PER_LINE)]
    lines = [full[(first % _CYCLE) // _PER_LINE] for first in range(0, elements - elements % _PER_LINE, _PER_LINE)]
    if elements % _PER_LINE:
        lines.append(line(elements - elements % _PER_LINE, elements % _PER_LINE))
    body = "\n".join(lines)
    source = (f"//! Generated by bench/memkit/workspaces.py: a crate whose rustc peak memory is known.\n\n"
              f"pub static DATA: [u32; {elements}] = [\n{body}\n];\n")
    if spin:
        source = source.replace("\n\n", f"\n{_SPIN_ALLOW}\n\n", 1) + _SPIN.format(iterations=spin)
    return source


# rustc's const evaluator interprets this loop: CPU time at constant memory. Past a few
# seconds rustc warns (and older ones deny) that the evaluation runs long, hence the allow.
_SPIN_ALLOW = "#![allow(long_running_const_eval)]"
_SPIN = """
pub const SPIN: u64 = {{
    let mut i: u64 = 0;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while i < {iterations} {{
        x = (x ^ (x >> 7)).wrapping_mul(0x2545_f491_4f6c_dd1d).wrapping_add(i);
        i += 1;
    }}
    x
}};
pub static SPUN: u64 = SPIN;
"""


def _write_if_changed(path: Path, text: str) -> None:
    # Rewriting identical bytes would still bump the mtime and make cargo rebuild.
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_workspace(root: Path, crates: dict[str, int], *, deps: dict[str, list[str]] | None = None,
                    bin_name: str | None = None, spin: dict[str, int] | None = None) -> Path:
    """Write a cargo workspace at ``root`` with one lib crate per ``crates`` entry; return ``root``.

    ``crates`` maps a crate name (lowercase identifier) to its array's element count (see
    ``elements_for_mib``). Crates are independent, so cargo compiles them in parallel,
    unless ``deps`` maps a crate to the crates it depends on. ``bin_name`` adds a small
    binary crate that depends on every lib and prints their total element count (a final
    link step, as real projects have); none by default, since it adds a link step (and its
    memory) to every build, which the scenarios do not want to measure. ``spin`` maps a
    crate to const-evaluation iterations that lengthen its compile without memory (see
    ``spin_for_seconds``): small crates that take long enough for parallelism to matter.
    The workspace lives in ``root/crates/<name>``, its target dir is cargo's default
    ``root/target``. Rewriting the same workspace leaves files (and their mtimes) alone.
    """
    deps, spin = deps or {}, spin or {}
    names = list(crates) + ([bin_name] if bin_name else [])
    for name in names:
        if not CRATE_NAME.match(name):
            raise ValueError(f"crate name {name!r}: use a lowercase identifier ([a-z][a-z0-9_]*)")
    if len(set(names)) != len(names):
        raise ValueError(f"bin_name {bin_name!r} is also a lib crate's name")
    for name, wanted in deps.items():
        unknown = [dep for dep in [name, *wanted] if dep not in crates]
        if unknown:
            raise ValueError(f"deps of {name!r}: unknown crates {unknown}")
    if set(spin) - set(crates):
        raise ValueError(f"spin: unknown crates {sorted(set(spin) - set(crates))}")
    root = Path(root)
    members = ", ".join(f'"crates/{name}"' for name in names)
    # The profiles pin what matters for memory to cargo's defaults, so a future default
    # cannot shift the calibration; release differs from dev only where a static array
    # does not care (optimisation, debug info).
    _write_if_changed(root / "Cargo.toml", (
        f"[workspace]\nresolver = \"2\"\nmembers = [{members}]\n\n"
        "[profile.dev]\nopt-level = 0\ndebug = true\ncodegen-units = 256\n\n"
        "[profile.release]\nopt-level = 3\ndebug = false\nlto = false\ncodegen-units = 16\nincremental = false\n"))
    for name, elements in crates.items():
        crate = root / "crates" / name
        dependencies = "".join(f'{dep} = {{ path = "../{dep}" }}\n' for dep in deps.get(name, []))
        _write_if_changed(crate / "Cargo.toml", _package(name) + dependencies)
        _write_if_changed(crate / "src" / "lib.rs", crate_source(name, elements, spin.get(name, 0)))
    if bin_name:
        crate = root / "crates" / bin_name
        dependencies = "".join(f'{dep} = {{ path = "../{dep}" }}\n' for dep in crates)
        total = " + ".join(f"{dep}::DATA.len()" for dep in crates) or "0usize"
        _write_if_changed(crate / "Cargo.toml", _package(bin_name) + dependencies)
        _write_if_changed(crate / "src" / "main.rs", f'fn main() {{\n    println!("{{}}", {total});\n}}\n')
    return root


def _package(name: str) -> str:
    return f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\npublish = false\n\n[dependencies]\n'


# --- measuring rustc's peak memory ------------------------------------------------------

@dataclass(frozen=True)
class RustcRun:
    """One rustc invocation seen by the peak-recording wrapper."""

    crate: str
    crate_types: str  # rustc's --crate-type values, comma-joined ("lib", "bin", "proc-macro"…)
    peak_bytes: int  # ru_maxrss of rustc and any child it waited for (the linker, for a bin)
    seconds: float
    returncode: int  # negative: killed by that signal (-9: SIGKILL, the OOM killer's)


_WRAPPER = '''\
import json, os, sys, time
# RUSTC_WRAPPER: run rustc, then append its peak RSS to the log. Only the rustc (and the
# linker it waits for) is measured: wait4 reports that child's own rusage.
argv = sys.argv[1:]
start = time.monotonic()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.monotonic() - start
code = os.waitstatus_to_exitcode(status)
def value(flag):
    values = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]
    return ",".join(values)
crate = value("--crate-name")
if crate and crate != "___":  # "___" is cargo probing the target, not a compilation
    record = {"crate": crate, "crate_types": value("--crate-type"), "peak_bytes": usage.ru_maxrss * 1024,
              "seconds": round(seconds, 3), "returncode": code}
    with open(LOG, "a") as log:
        log.write(json.dumps(record) + "\\n")
if code < 0:
    os.kill(os.getpid(), -code)  # die the same way, so cargo sees what rustc did
sys.exit(code)
'''


def write_peak_wrapper(directory: Path, log: Path) -> Path:
    """Write a RUSTC_WRAPPER executable into ``directory`` that appends each rustc's peak to ``log``.

    Read the log with ``read_peak_log``. The wrapper runs this interpreter (stdlib only).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "peak_wrapper.py"
    script.write_text(f"LOG = {str(log)!r}\n" + _WRAPPER)
    # A shell trampoline rather than a shebang: the interpreter's path may contain spaces.
    launcher = directory / "rustc-peak-wrapper"
    launcher.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(script))} \"$@\"\n")
    launcher.chmod(0o755)
    return launcher


def read_peak_log(log: Path) -> list[RustcRun]:
    """The rustc runs a peak wrapper recorded in ``log``, oldest first (empty if none yet)."""
    try:
        lines = Path(log).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [RustcRun(**json.loads(line)) for line in lines if line.strip()]


@dataclass(frozen=True)
class Build:
    """A measured cargo build: its exit status, wall time, output and every rustc run."""

    returncode: int
    seconds: float
    stderr: str
    runs: list[RustcRun]

    def peaks(self) -> dict[str, int]:
        """Peak bytes per crate name (the largest, if a crate was compiled more than once)."""
        peaks: dict[str, int] = {}
        for run in self.runs:
            peaks[run.crate] = max(peaks.get(run.crate, 0), run.peak_bytes)
        return peaks


# Inherited settings that would change what rustc does or where it writes.
_BUILD_SETTINGS = ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "RUSTDOCFLAGS", "CARGO_TARGET_DIR", "CARGO_INCREMENTAL",
                   "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "RUSTUP_TOOLCHAIN", "CARGO_BUILD_JOBS")


def cargo_environ(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) ready for reproducible measured builds.

    Drops inherited build settings (RUSTFLAGS, target dir, wrappers, toolchain override,
    ``CARGO_BUILD_*``, ``CARGO_PROFILE_*``) and puts rustup's proxies (``$CARGO_HOME/bin``)
    first on PATH, so the machine's default toolchain builds what the calibration measured.
    """
    env = dict(os.environ if base is None else base)
    for name in list(env):
        if name in _BUILD_SETTINGS or name.startswith(("CARGO_BUILD_", "CARGO_PROFILE_")):
            del env[name]
    proxies = str(Path(env.get("CARGO_HOME") or Path.home() / ".cargo") / "bin")
    path = [entry for entry in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if entry != proxies]
    env["PATH"] = os.pathsep.join([proxies, *path])
    env["CARGO_TERM_COLOR"] = "never"
    return env


def cargo_build(root: Path, *, profile: str = "dev", jobs: int = 1, env: dict[str, str] | None = None,
                argv_prefix: list[str] | None = None, timeout: float = 1800) -> Build:
    """Run ``cargo build`` in ``root`` with the peak wrapper and return what it measured.

    ``profile`` is a cargo profile name ("dev", "release"…); ``env`` replaces the inherited
    environment, default ``cargo_environ()`` (RUSTC_WRAPPER is always the peak wrapper); ``argv_prefix`` runs
    cargo through a launcher, e.g. ``MemoryCgroup.wrap``. Never raises for a failed build:
    check ``returncode``.
    """
    with tempfile.TemporaryDirectory(prefix="memkit-peaks-") as scratch:
        log = Path(scratch) / "peaks.jsonl"
        full_env = cargo_environ() if env is None else dict(env)
        full_env["RUSTC_WRAPPER"] = str(write_peak_wrapper(Path(scratch), log))
        full_env.pop("CARGO_BUILD_RUSTC_WRAPPER", None)
        argv = [*(argv_prefix or []), "cargo", "build", "--profile", profile, "-j", str(jobs)]
        start = time.monotonic()
        proc = subprocess.run(argv, cwd=root, env=full_env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        return Build(proc.returncode, time.monotonic() - start, proc.stderr, read_peak_log(log))


# --- calibration ------------------------------------------------------------------------

CALIBRATION_SIZES = (0, 100_000, 400_000, 1_500_000, 4_000_000)


def calibrate(workdir: Path, sizes=CALIBRATION_SIZES, profiles=("dev", "release")) -> list[tuple[int, str, float, float]]:
    """Measure rustc's peak for crates of ``sizes`` elements in each profile, one rustc at a time.

    Returns ``(elements, profile, peak MiB, rustc seconds)`` rows, the shape of CALIBRATION.
    """
    crates = {f"size_{elements}": elements for elements in sizes}
    write_workspace(workdir, crates)
    rows = []
    for profile in profiles:
        build = cargo_build(workdir, profile=profile, jobs=1)
        if build.returncode != 0:
            raise RuntimeError(f"calibration build ({profile}) failed:\n{build.stderr}")
        runs = {run.crate: run for run in build.runs}
        for name, elements in crates.items():
            rows.append((elements, profile, round(runs[name].peak_bytes / 2**20, 1), runs[name].seconds))
    return rows


def scenario_times(workdir: Path, jobs_list=(1, 2), profile: str = "release") -> list[dict]:
    """Clean-build wall time of ``heavy_pair`` and ``light_six`` at each ``-j``, with rustc peaks.

    Builds are not memory-limited here: a cgroup is the caller's choice (see cgroups.py).
    """
    rows = []
    for name, crates in (("heavy_pair", heavy_pair()), ("light_six", light_six())):
        root = write_workspace(workdir / name, crates)
        for jobs in jobs_list:
            subprocess.run(["cargo", "clean"], cwd=root, env=cargo_environ(), capture_output=True, check=False)
            build = cargo_build(root, profile=profile, jobs=jobs)
            rows.append({"scenario": name, "profile": profile, "jobs": jobs, "returncode": build.returncode,
                         "wall_s": round(build.seconds, 1),
                         "peak_mib": [round(run.peak_bytes / 2**20) for run in build.runs],
                         "rustc_s": [round(run.seconds, 1) for run in build.runs]})
    return rows


def _rustc_version() -> str:
    return subprocess.run(["rustc", "-V"], capture_output=True, text=True, env=cargo_environ(), check=False).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    """``--calibrate``: measure and print CALIBRATION rows and the fit; ``--scenarios``: time the scenarios."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--calibrate", action="store_true")
    mode.add_argument("--scenarios", action="store_true")
    parser.add_argument("--sizes", default=",".join(map(str, CALIBRATION_SIZES)))
    args = parser.parse_args(argv)
    print(f"# {time.strftime('%Y-%m-%d')}, {_rustc_version()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="memkit-") as workdir:
        if args.scenarios:
            for row in scenario_times(Path(workdir)):
                print(json.dumps(row))
            return 0
        rows = calibrate(Path(workdir), tuple(int(size) for size in args.sizes.split(",")))
    base, slope = fit(rows)
    print("CALIBRATION = (")
    for row in rows:
        print(f"    {row!r},")
    print(")")
    print(f"BASE_MIB = {base:.1f}\nMIB_PER_ELEMENT = {slope:.4e}  # {slope * 1024:.3f} KiB per element")
    print("\n| elements | profile | peak MiB | fit MiB | rustc s |\n|---:|---|---:|---:|---:|")
    for elements, profile, peak, seconds in rows:
        print(f"| {elements:,} | {profile} | {peak:.0f} | {base + slope * elements:.0f} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
