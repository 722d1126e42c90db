"""The memory governor's parts on their own: rustc command lines, the learned-peaks
file, the wrapper's output forwarding, the FIFO jobserver with real cargo, live memory.

The end-to-end behaviour (real cgroups, real rustc peaks) is in test_governor_e2e.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from buildpolicy.run.governor import peaks
from buildpolicy.run.governor.crates import unit_key, unit_of
from buildpolicy.run.governor.decide import cargo_jobs_arg
from buildpolicy.run.governor.jobserver import FifoJobserver
from buildpolicy.run.governor.livemem import LiveMemory, process_memory
from buildpolicy.run.governor.protocol import decode, encode
from buildpolicy.run.governor.wrapper import Forwarder
from rustup import needs_rustup

REPO = Path(__file__).resolve().parent.parent
MIB = 1 << 20

# Command lines cargo 1.95 gave its RUSTC_WRAPPER (shortened to what matters).
LIB = ["--crate-name", "serde", "--edition=2021", "src/lib.rs", "--error-format=json", "--crate-type", "lib",
       "--emit=dep-info,metadata,link", "-C", "opt-level=3", "-C", "metadata=e6fe0271183678bc", "--out-dir", "t"]
CHECK = ["--crate-name", "app", "src/main.rs", "--crate-type", "bin", "--emit=dep-info,metadata", "-C",
         "metadata=0a1b"]
BUILD_SCRIPT = ["--crate-name", "build_script_build", "build.rs", "--crate-type", "bin",
                "--emit=dep-info,link", "-Cmetadata=77"]
PROC_MACRO = ["--crate-name", "serde_derive", "--crate-type", "proc-macro", "--emit=dep-info,metadata,link"]
TEST = ["--crate-name", "app", "src/lib.rs", "--emit=dep-info,link", "--test", "-C", "metadata=9"]
QUERY = ["-", "--crate-name", "___", "--print=file-names", "--crate-type", "bin", "--crate-type", "rlib"]


@pytest.mark.parametrize(("args", "expected"), [
    (LIB, {"crate": "serde", "kind": "lib", "check": False, "metadata": "e6fe0271183678bc"}),
    (CHECK, {"crate": "app", "kind": "bin", "check": True, "metadata": "0a1b"}),
    (BUILD_SCRIPT, {"crate": "build_script_build", "kind": "build-script", "check": False, "metadata": "77"}),
    (PROC_MACRO, {"crate": "serde_derive", "kind": "proc-macro", "check": False, "metadata": None}),
    (TEST, {"crate": "app", "kind": "test", "check": False, "metadata": "9"}),
])
def test_a_rustc_command_line_names_its_crate_kind_and_mode(args, expected):
    assert unit_of(args) == expected
    assert unit_key(expected) == f"{expected['crate']}:{expected['kind']}"


def test_build_scripts_are_named_by_their_package():
    unit = dict(unit_of(BUILD_SCRIPT), package="openssl-sys")
    assert unit_key(unit) == "openssl-sys:build-script"
    assert unit_key(dict(unit_of(LIB), package="serde")) == "serde:lib"


@pytest.mark.parametrize("args", [QUERY, ["-vV"], [], ["--print", "sysroot"]])
def test_queries_are_not_compilations(args):
    assert unit_of(args) is None


@pytest.mark.parametrize(("argv", "cpus", "expected"), [
    (["cargo", "build", "-j", "3"], 8, 3), (["cargo", "build", "-j3"], 8, 3), (["cargo", "build", "--jobs=5"], 8, 5),
    (["cargo", "build", "--jobs", "-1"], 8, 7), (["cargo", "build", "-j", "default"], 8, None),
    (["cargo", "build"], 8, None), (["cargo", "run", "--", "-j", "4"], 8, None),
])
def test_cargo_own_jobs_flag_is_read_before_the_separator(argv, cpus, expected):
    assert cargo_jobs_arg(argv, cpus) == expected


# -- learned peaks -------------------------------------------------------------------------


def test_peaks_survive_across_builds_and_keep_the_last_five(tmp_path):
    for peak in (100, 300, 120, 110, 105, 104):
        assert peaks.record(tmp_path, "/src/app", {"release": {"big:lib": peak * MIB}})
    table = peaks.load(tmp_path, "/src/app")
    entry = table["release"]["big:lib"]
    assert entry["peaks_mib"] == [300, 120, 110, 105, 104]
    assert entry["builds"] == 6
    assert peaks.estimate_bytes(entry) == int(300 * peaks.MARGIN * MIB)
    assert peaks.load(tmp_path, "/src/other") == {}
    assert [ws for ws, _ in peaks.all_workspaces(tmp_path)] == ["/src/app"]


@pytest.mark.parametrize("damage", ["garbage", "wrong-shape", "foreign", "fifo", "symlink", "huge", "deep"])
def test_a_damaged_peaks_file_is_an_empty_table_and_is_rebuilt(tmp_path, damage):
    path = peaks.peaks_path(tmp_path, "/src/app")
    path.parent.mkdir(parents=True)
    if damage == "garbage":
        path.write_bytes(b"\xff\x00{not json")
    elif damage == "wrong-shape":
        path.write_text(json.dumps({"version": 1, "workspace": "/src/app",
                                    "profiles": {"dev": {"a:lib": {"peaks_mib": ["x"], "builds": 1}, "b:lib": 3}}}))
    elif damage == "foreign":  # another workspace's table under this name: not ours to use
        path.write_text(json.dumps({"version": 1, "workspace": "/elsewhere",
                                    "profiles": {"dev": {"a:lib": {"peaks_mib": [9], "builds": 1}}}}))
    elif damage == "fifo":
        os.mkfifo(path)
    elif damage == "symlink":
        path.symlink_to("/dev/zero")
    elif damage == "huge":
        path.write_bytes(b" " * (40 * MIB))
    else:
        path.write_text("[" * 100_000 + "]" * 100_000)
    assert peaks.load(tmp_path, "/src/app") == {}
    assert peaks.record(tmp_path, "/src/app", {"dev": {"a:lib": 200 * MIB}})
    assert peaks.load(tmp_path, "/src/app")["dev"]["a:lib"]["peaks_mib"] == [200]
    assert path.is_file() and not path.is_symlink()


def test_concurrent_builds_lose_no_learned_peak(tmp_path):
    def learn(index: int) -> None:
        for round_ in range(10):
            peaks.record(tmp_path, "/src/app", {"dev": {f"crate{index}-{round_}:lib": (index + 1) * MIB}})

    threads = [threading.Thread(target=learn, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(peaks.load(tmp_path, "/src/app")["dev"]) == 40


# -- the wrapper's stderr forwarding ---------------------------------------------------------


def test_a_rerun_does_not_repeat_what_the_preempted_attempt_already_printed(tmp_path):
    out = tmp_path / "stderr"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
    forwarder = Forwarder(fd)
    forwarder.feed(b'{"artifact":"libx.rmeta"}\nwarning: unused\nhalf a li')  # killed mid-line
    forwarder.new_attempt()
    forwarder.feed(b'{"artifact":"libx.rmeta"}\nwarning: unused\nhalf a line\n{"artifact":"libx.rlib"}\n')
    forwarder.finish()
    os.close(fd)
    assert out.read_bytes() == (b'{"artifact":"libx.rmeta"}\nwarning: unused\nhalf a line\n'
                                b'{"artifact":"libx.rlib"}\n')


def test_output_that_differs_on_rerun_is_forwarded_in_full(tmp_path):
    out = tmp_path / "stderr"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
    forwarder = Forwarder(fd)
    forwarder.feed(b"a\nb\n")
    forwarder.new_attempt()
    forwarder.feed(b"a\nc\nb\n")
    forwarder.finish()
    os.close(fd)
    assert out.read_bytes() == b"a\nb\nc\nb\n"


# -- the jobserver, with real cargo ------------------------------------------------------


def _workspace(root: Path, crates: int) -> Path:
    members = [f"c{i}" for i in range(crates)]
    root.mkdir(parents=True)
    (root / "Cargo.toml").write_text(f"[workspace]\nmembers = {json.dumps(members)}\nresolver = \"2\"\n")
    for name in members:
        (root / name / "src").mkdir(parents=True)
        (root / name / "Cargo.toml").write_text(f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n')
        (root / name / "src" / "lib.rs").write_text("pub fn f() -> u32 { 7 }\n")
    return root


@needs_rustup
@pytest.mark.parametrize("toolchain", ["stable", "nightly"])
@pytest.mark.parametrize(("tokens", "expected"), [(0, 1), (1, 2)])
def test_cargo_takes_its_parallelism_from_the_fifo_jobserver(tmp_path, toolchain, tokens, expected):
    """Both toolchains accept the FIFO form; cargo's -j4 is ignored in favour of the tokens."""
    ws = _workspace(tmp_path / "ws", 4)
    log = tmp_path / "starts"
    probe = tmp_path / "probe.sh"
    # A RUSTC_WRAPPER that records how many compilations overlap: each holds for a moment.
    probe.write_text('#!/bin/sh\ncase " $* " in *" --crate-name c"*) '
                     f'echo start >> {log}; n=$(grep -c start {log}); e=$(grep -c end {log} || true); '
                     f'echo "running $((n - e))" >> {log}; sleep 1; echo end >> {log};; esac\nexec "$@"\n')
    probe.chmod(0o755)
    server = FifoJobserver(tmp_path)
    server.grant(tokens)
    env = dict(os.environ, CARGO_MAKEFLAGS=server.makeflags(), RUSTC_WRAPPER=str(probe),
               CARGO_TARGET_DIR=str(tmp_path / "target"), CARGO_NET_OFFLINE="true")
    try:
        result = subprocess.run(["cargo", f"+{toolchain}", "build", "-q", "-j4"], cwd=ws, env=env,
                                capture_output=True, text=True, timeout=600)
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    overlap = max(int(line.split()[1]) for line in log.read_text().splitlines() if line.startswith("running"))
    assert overlap == expected


def test_the_jobserver_grants_and_takes_back_tokens(tmp_path):
    server = FifoJobserver(tmp_path)
    try:
        server.grant(3)
        assert (server.circulating, server.idle(), server.held()) == (3, 3, 0)
        reader = os.open(server.path, os.O_RDWR)  # a job taking a token, as cargo does
        assert os.read(reader, 1) == b"+"
        assert server.held() == 1
        assert server.withdraw(5) == 2  # only idle tokens come back
        assert (server.circulating, server.idle(), server.held()) == (1, 0, 1)
        os.write(reader, b"+")  # the job ends and returns it
        assert server.withdraw(1) == 1 and server.circulating == 0
        os.close(reader)
    finally:
        server.close()
    assert not server.path.exists()


# -- live memory ---------------------------------------------------------------------------


def test_live_memory_reads_this_machine_and_this_process():
    memory = LiveMemory()
    sample = memory.sample()
    assert sample is not None
    assert 0 < sample.available <= sample.limit
    assert 0.0 <= sample.stall_fraction <= 1.0
    ballast = bytearray(64 * MIB)  # RSS of this process grows by what it touches
    ballast[::4096] = b"x" * len(ballast[::4096])
    rss, peak = process_memory(os.getpid())
    assert rss >= 64 * MIB and peak >= rss
    assert process_memory(2 ** 22 + 12345) is None


def test_the_wrapper_runs_a_query_without_a_governor_and_exits_as_rustc_does(tmp_path):
    """No socket: the wrapper becomes the command; its exit status and output are rustc's."""
    launcher = [sys.executable, "-I", "-S", "-c",
                f"import sys; sys.path.insert(0, {str(REPO)!r}); "
                "from buildpolicy.run.governor.wrapper import main; sys.exit(main())"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILDPOLICY_")}
    ok = subprocess.run([*launcher, "sh", "-c", "echo out; echo err >&2; exit 3", "--crate-name", "x"],
                        env=env, capture_output=True, text=True, timeout=60)
    assert (ok.returncode, ok.stdout, ok.stderr) == (3, "out\n", "err\n")
    env["BUILDPOLICY_GOVERNOR_SOCKET"] = str(tmp_path / "nobody-listens.sock")  # the governor is gone
    gone = subprocess.run([*launcher, "sh", "-c", "exit 0", "--crate-name", "x"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert gone.returncode == 0, gone.stderr
    killed = subprocess.run([*launcher, "sh", "-c", "kill -9 $$", "--crate-name", "x"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert killed.returncode == -9  # died of the same signal, so cargo reports it the same way
    # RUSTC="" makes cargo pass an empty program name: an error message, not a traceback.
    empty = subprocess.run([*launcher, "", "--crate-name", "x", "--crate-type", "lib", "x.rs"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert empty.returncode == 126 and "Traceback" not in empty.stderr
    assert "buildpolicy rustc wrapper: ''" in empty.stderr


def test_a_preempted_compilation_is_rerun_and_cargo_sees_one_run(tmp_path):
    """A governor (a plain socket here) preempts the first attempt: the wrapper kills the
    command's process group, asks again, reruns it, and prints its lines once."""
    sock_path = tmp_path / "g.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock_path))
    listener.listen(1)
    marker = tmp_path / "attempts"
    script = (f'echo attempt >> {marker}; echo "line one" >&2; '
              f'if [ $(grep -c attempt {marker}) -eq 1 ]; then sleep 30; fi; echo "line two" >&2')
    launcher = [sys.executable, "-I", "-S", "-c",
                f"import sys; sys.path.insert(0, {str(REPO)!r}); "
                "from buildpolicy.run.governor.wrapper import main; sys.exit(main())"]
    env = dict(os.environ, BUILDPOLICY_GOVERNOR_SOCKET=str(sock_path))
    proc = subprocess.Popen([*launcher, "sh", "-c", script, "--crate-name", "x", "--crate-type", "lib"],
                            env=env, stderr=subprocess.PIPE)
    conn, _ = listener.accept()
    messages = conn.makefile("rb")

    def expect(op: str) -> dict:
        message = decode(messages.readline())
        assert message is not None and message["op"] == op, message
        return message

    admit = expect("admit")
    assert (admit["crate"], admit["kind"], admit["attempt"]) == ("x", "lib", 0)
    conn.sendall(encode("go"))
    started = expect("started")
    while "attempt" not in (marker.read_text() if marker.exists() else ""):
        pass
    conn.sendall(encode("preempt"))
    first = expect("exit")
    assert first["preempted"] is True
    with pytest.raises(ProcessLookupError):
        os.kill(started["rustc_pid"], 0)  # killed, and reaped by the wrapper
    assert expect("admit")["attempt"] == 1
    conn.sendall(encode("go"))
    expect("started")
    last = expect("exit")
    assert (last["preempted"], last["status"]) == (False, 0)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert err == b"line one\nline two\n"
    assert marker.read_text() == "attempt\nattempt\n"
    conn.close()
    listener.close()
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_protocol_lines_round_trip_with_types():
    line = encode("admit", crate="serde_derive", kind="proc-macro", check=False, metadata=None, via_server=True,
                  pid=42, attempt=1)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line) == {"op": "admit", "crate": "serde_derive", "kind": "proc-macro", "check": False,
                            "metadata": None, "via_server": True, "pid": 42, "attempt": 1}
    assert decode(encode("exit", status=-9, peak_kib=123, preempted=True, cpu_s=0.25)) == {
        "op": "exit", "status": -9, "peak_kib": 123, "preempted": True, "cpu_s": 0.25}
    assert decode(encode("admit", crate="a b=c")) == {"op": "admit", "crate": "a?b?c"}
    assert decode(b"admit pid=notanumber stray\n") == {"op": "admit", "pid": None}
    assert decode(b"\xff\xfe") is None and decode(b"   ") is None


def test_a_governor_that_fails_lets_the_build_go_on_ungoverned(tmp_path):
    """An internal error in the loop (here: memory that stops being readable with an error)
    closes the socket: a waiting wrapper runs its command ungoverned instead of hanging."""
    from buildpolicy.run.governor.governor import Governor

    class FailingMemory:
        calls = 0

        def sample(self):
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("memory probe exploded")
            return LiveMemory().sample()

    server = FifoJobserver(tmp_path)
    notes = []
    governor = Governor(directory=tmp_path, max_jobs=2, jobserver=server, memory=FailingMemory(), learned={},
                        prior=1 << 40, profile="dev", note=notes.append)  # a prior nothing fits: it would wait
    governor.start()
    launcher = [sys.executable, "-I", "-S", "-c",
                f"import sys; sys.path.insert(0, {str(REPO)!r}); "
                "from buildpolicy.run.governor.wrapper import main; sys.exit(main())"]
    env = dict(os.environ, BUILDPOLICY_GOVERNOR_SOCKET=str(governor.socket_path))
    try:
        done = subprocess.run([*launcher, "sh", "-c", "echo ran >&2", "--crate-name", "x"], env=env,
                              capture_output=True, text=True, timeout=120)
    finally:
        summary = governor.stop()
        server.close()
    assert done.returncode == 0 and done.stderr == "ran\n"
    assert summary["failure"] == "RuntimeError: memory probe exploded"
    assert any("ungoverned" in note for note in notes)


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_live_memory_counts_page_cache_as_free_and_reads_stalls_per_cgroup(tmp_path, version):
    """Available = limit − (usage − file pages), capped by MemAvailable; stalls from the
    cgroup's own memory.pressure on v2, the machine's on v1 (which has none per cgroup).
    A tree under a fake root: this machine's memory controller is on v1 only."""
    if version == "v2":
        base = "sys/fs/cgroup/build.slice/"
        _tree(tmp_path, {"proc/self/cgroup": "0::/build.slice\n", "sys/fs/cgroup/cgroup.controllers": "memory\n",
                         base + "memory.max": f"{1024 * MIB}\n", base + "memory.current": f"{600 * MIB}\n",
                         base + "memory.stat": f"anon 1\ninactive_file {100 * MIB}\nactive_file {50 * MIB}\n",
                         base + "memory.pressure": "some avg10=0 total=0\nfull avg10=0.00 avg60=0 avg300=0 total=1000\n"})
        pressure = tmp_path / base / "memory.pressure"
    else:
        base = "sys/fs/cgroup/memory/build/"
        _tree(tmp_path, {"proc/self/cgroup": "4:memory:/build\n",
                         "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
                         base + "memory.limit_in_bytes": f"{1024 * MIB}\n", base + "memory.usage_in_bytes": f"{600 * MIB}\n",
                         base + "memory.stat": f"inactive_file 7\nactive_file 9\n"  # this level only: not the ones to read
                                                f"total_inactive_file {100 * MIB}\ntotal_active_file {50 * MIB}\n",
                         "proc/pressure/memory": "some avg10=0 total=0\nfull avg10=0.00 avg60=0 avg300=0 total=1000\n"})
        pressure = tmp_path / "proc/pressure/memory"
    _tree(tmp_path, {"proc/meminfo": f"MemTotal: {16 << 20} kB\nMemAvailable: {8 << 20} kB\n"})
    memory = LiveMemory(tmp_path)
    first = memory.sample()
    assert (first.available, first.limit, first.stall_fraction) == ((1024 - 450) * MIB, 1024 * MIB, 0.0)
    assert memory.psi_path == pressure
    # 50 ms of full stall over the next interval, and the machine itself nearly out of memory.
    pressure.write_text(pressure.read_text().replace("total=1000\n", "total=51000\n"))
    _tree(tmp_path, {"proc/meminfo": f"MemTotal: {16 << 20} kB\nMemAvailable: {300 << 10} kB\n"})
    second = memory.sample()
    assert second.available == 300 * MIB  # the tighter of the two
    assert 0.0 < second.stall_fraction <= 1.0


class ScriptedMemory:
    """Samples from a list, as ``LiveMemory.sample`` returns them."""

    def __init__(self, limit: int, available: list[int]):
        from buildpolicy.run.governor.livemem import Sample
        self.samples = [Sample(avail, limit, 0.0, at * 0.2) for at, avail in enumerate(available)]

    def sample(self):
        return self.samples.pop(0) if len(self.samples) > 1 else self.samples[0]


@pytest.mark.parametrize("available_mib, expected", [
    # 16 GiB: the margin is 819 MiB.
    ([8000, 8000, 8000], "calm"),          # far from the margin: the slowest cadence
    ([2200, 2200, 2200], "calm"),
    ([1200, 1200, 1200], "between"),       # closer: as long as the fastest fall needs to the margin
    ([850, 850, 850], "alert"),            # within a fast fall of it: ten times a second
    ([3000, 2600, 2200], "between"),       # as far as the second case, but falling at 2 GiB/s
    ([700, 700, 700], "alert"),            # under the margin: pressure
])
def test_the_governor_samples_less_often_far_from_the_margin(tmp_path, available_mib, expected):
    """The tick cadence follows how soon memory could reach the safety margin."""
    from buildpolicy.run.governor import governor as gov
    memory = ScriptedMemory(1024 * MIB * 16, [m * MIB for m in available_mib])
    server = FifoJobserver(tmp_path)
    governor = gov.Governor(directory=tmp_path, max_jobs=2, jobserver=server, memory=memory, learned={},
                            prior=256 * MIB, profile="dev", note=lambda message: None)
    try:
        for _ in available_mib:
            governor.tick()
    finally:
        server.close()
    interval = governor.interval
    if expected == "calm":
        assert interval == gov.CALM_TICK_SECONDS
    elif expected == "alert":
        assert interval == gov.TICK_SECONDS
    else:
        assert gov.TICK_SECONDS < interval < gov.CALM_TICK_SECONDS
