"""The memory governor attacked: interrupted builds, signals, misbehaving connections,
other users, cargo's own settings. Real cargo, real rustc, real ``buildpolicy exec``.

Each test reproduces a way the governor could hang a build, leave rustc running after
it, change what cargo would have done, or trust what it should not:

- Ctrl-C (or cargo killed) while a compilation waits for admission: no rustc may start
  after the build is over;
- Ctrl-Z and a SIGKILL to the build's process group reach rustc as they would without
  the governor (no rustc keeps running stopped-build or orphaned);
- cargo's ``-j`` in every spelling cargo accepts is the governor's maximum;
- a rustc wrapper from cargo's configuration still runs;
- connections that never speak (by the thousand, past the descriptor limit), flood it
  without reading, send a line without end or garbage cannot hang the build;
- nobody else can reach the governor, and a shared directory is never its home;
- a nested ``exec`` shares the outer governor; another user's rustc is never preempted.

Waits are bounded only as a safety net: assertions are on order and presence.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bench.memkit import workspaces
from buildpolicy.run.governor import peaks
from buildpolicy.run.governor.decide import cargo_jobs_arg
from buildpolicy.run.governor.procs import ServerRustcFinder
from rustup import needs_rustup

REPO = Path(__file__).resolve().parent.parent
MIB = 1 << 20
TIMEOUT = 300
NOBODY = 65534


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture
def short_tmp():
    """A directory with a short path (the governor's socket must fit in sun_path)."""
    path = Path(tempfile.mkdtemp(prefix="bpga-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def build_env(base_env, short_tmp):
    """The test's isolated home with the machine's toolchains; sccache and the gate off,
    no network; the governor's directory in ``short_tmp`` and a trace of its ticks."""
    env = workspaces.cargo_environ(dict(base_env))
    env.setdefault("RUSTUP_HOME", str(Path.home() / ".rustup"))
    env.setdefault("CARGO_HOME", str(Path.home() / ".cargo"))
    env.update(CARGO_NET_OFFLINE="true", BUILDPOLICY_SCCACHE="off", BUILDPOLICY_GATE="off",
               TMPDIR=str(short_tmp), BUILDPOLICY_GOVERNOR_TRACE=str(short_tmp / "trace"))
    env.pop("XDG_RUNTIME_DIR", None)
    return env


def state_dir(env) -> Path:
    return Path(env["XDG_STATE_HOME"]) / "buildpolicy"


def last_log_entry(env) -> dict:
    return json.loads((state_dir(env) / "actions.jsonl").read_text().splitlines()[-1])


def exec_argv(*cargo_args: str) -> list[str]:
    return [sys.executable, "-m", "buildpolicy", "exec", "--", "cargo", *cargo_args]


def start_build(ws: Path, env, tmp: Path, *cargo_args: str) -> subprocess.Popen:
    """``buildpolicy exec -- cargo …`` as a terminal job: its own process group, this session."""
    return subprocess.Popen(exec_argv(*cargo_args), cwd=ws, env=env, process_group=0,
                            stdout=open(tmp / "stdout", "wb"), stderr=open(tmp / "stderr", "wb"))


def wait_until(condition, what: str, timeout: float = TIMEOUT):
    """Poll ``condition`` until it gives something true; fail (never hang) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def governor_states(trace: Path) -> dict[str, tuple[str, int | None]]:
    """``{crate: (state letter, rustc pid)}`` from the governor's last complete trace line."""
    try:
        text = trace.read_text()
    except OSError:
        return {}
    lines = text[: text.rfind("\n")].splitlines()
    if not lines:
        return {}
    words = lines[-1].split()
    start = next((i for i, word in enumerate(words) if word.startswith("tokens=")), len(words))
    states = {}
    for word in words[start + 1:]:
        crate, state, pid, _memory = word.split(":")
        states[crate] = (state, int(pid) if pid.isdigit() else None)
    return states


def processes(*needles: str) -> dict[int, tuple[str, str]]:
    """Live processes whose command line holds every needle: ``{pid: (comm, state)}``."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if cmdline and all(needle in cmdline for needle in needles) and state != "Z":
            found[int(entry)] = (comm, state)
    return found


def kill_all(*needles: str) -> None:
    for pid in processes(*needles):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        found += [int(word) for word in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


def spin_workspace(root: Path, names: list[str]) -> Path:
    """Crates that keep rustc busy (far longer than any test waits) at little memory."""
    spin = workspaces.spin_for_seconds(300)
    return workspaces.write_workspace(root, {name: 1000 for name in names}, spin={name: spin for name in names})


def lib_crate(root: Path, name: str, build_rs: str | None = None) -> Path:
    (root / "src").mkdir(parents=True)
    manifest = f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n'
    if build_rs is not None:
        manifest += 'build = "build.rs"\n'
        (root / "build.rs").write_text(build_rs)
    (root / "Cargo.toml").write_text(manifest)
    (root / "src" / "lib.rs").write_text("pub fn f() -> u32 { 7 }\n")
    return root


# -- interrupted builds -----------------------------------------------------------------


@needs_rustup
@pytest.mark.parametrize("how", ["ctrl-c", "cargo-killed"])
def test_an_interrupted_build_starts_no_rustc_afterwards(tmp_path, short_tmp, build_env, how):
    """One compilation runs, the other waits for admission (its crate is known to need
    more than the machine has). Ctrl-C at the terminal (SIGINT to the job's process group),
    or cargo killed on its own: the waiting wrapper must not run its rustc once the
    governor is gone. It used to: the end of the governor read as "run ungoverned"."""
    ws = spin_workspace(tmp_path / "ws", ["one", "two"])
    assert peaks.record(state_dir(build_env), str(ws), {"dev": {"one:lib": 100 * MIB, "two:lib": (1 << 20) * MIB}})
    build = start_build(ws, build_env, tmp_path, "build", "-j2")
    try:
        states = wait_until(lambda: (s := governor_states(short_tmp / "trace"))
                            and sorted(state for state, _ in s.values()) == ["r", "w"] and s,
                            "one compilation running and one waiting")
        waiting = next(crate for crate, (state, _) in states.items() if state == "w")
        if how == "ctrl-c":
            os.killpg(build.pid, signal.SIGINT)
        else:
            cargo = next(pid for pid in children(build.pid) if Path(f"/proc/{pid}/comm").read_text() == "cargo\n")
            os.kill(cargo, signal.SIGKILL)
        assert build.wait(timeout=TIMEOUT) == (130 if how == "ctrl-c" else 137)
        assert not [name for name in os.listdir(short_tmp) if name.startswith("buildpolicy-governor-")]
        started = []

        def waiter_gone() -> bool:
            ours = processes(f"--crate-name {waiting} ", str(ws))
            started.extend(pid for pid, (comm, _) in ours.items() if comm == "rustc")
            return not ours

        wait_until(waiter_gone, f"the wrapper of {waiting} to end")
        assert started == [], f"rustc for {waiting} started after the build was over"
    finally:
        kill_all(str(ws))
        build.wait(timeout=TIMEOUT)


def rustc_state(pid: int) -> str | None:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None
    return None if state in ("Z", "X") else state


@needs_rustup
def test_stop_continue_and_kill_of_the_build_reach_rustc(tmp_path, short_tmp, build_env):
    """rustc stays in the build's process group: Ctrl-Z stops it, fg continues it, and a
    SIGKILL to the group (``timeout -s KILL``, a CI runner cancelling) leaves no rustc
    running. It used to run in a group of its own, which none of them reached."""
    ws = spin_workspace(tmp_path / "ws", ["solo"])
    build = start_build(ws, build_env, tmp_path, "build")
    try:
        _, rustc = wait_until(lambda: (s := governor_states(short_tmp / "trace")).get("solo", ("", None))[0] == "r"
                              and s["solo"], "rustc running")
        assert rustc_state(rustc) in ("R", "S", "D")
        os.killpg(build.pid, signal.SIGTSTP)
        wait_until(lambda: rustc_state(rustc) == "T", "rustc stopped by Ctrl-Z", timeout=60)
        os.killpg(build.pid, signal.SIGCONT)
        wait_until(lambda: rustc_state(rustc) not in ("T", None), "rustc continued", timeout=60)
        os.killpg(build.pid, signal.SIGKILL)
        assert build.wait(timeout=TIMEOUT) == -signal.SIGKILL
        wait_until(lambda: rustc_state(rustc) is None, "rustc killed with its build", timeout=60)
    finally:
        kill_all(str(ws))
        build.wait(timeout=TIMEOUT)


# -- what cargo would have done ---------------------------------------------------------


@needs_rustup
@pytest.mark.parametrize("spelling", [["-j=1"], ["-qj1"], ["-qj", "1"], ["-vj=1"], ["--jobs=1"],
                                      ["--config", "build.jobs=1"]])
def test_every_spelling_of_cargo_jobs_is_the_governor_maximum(tmp_path, build_env, spelling):
    """cargo takes ``-j`` in all these forms (and ``--config build.jobs``), and ignores it
    under an inherited jobserver: the governor must apply it. ``-j=1``, ``-qj1`` and
    ``--config build.jobs=1`` used to be missed (max = CPUs)."""
    ws = lib_crate(tmp_path / "ws", "tiny")
    plain = subprocess.run(["cargo", "build", *spelling], cwd=ws, env=build_env, capture_output=True, text=True,
                           timeout=TIMEOUT)
    assert plain.returncode == 0, plain.stderr  # cargo's own grammar accepts it
    assert cargo_jobs_arg(["cargo", "build", *spelling], 8) == 1
    explained = subprocess.run([sys.executable, "-m", "buildpolicy", "explain", "--format", "json", "--", "cargo",
                                "build", *spelling], cwd=ws, env=build_env, capture_output=True, text=True,
                               timeout=TIMEOUT)
    assert explained.returncode == 0, explained.stderr
    assert json.loads(explained.stdout)["decisions"]["governor"]["status"] == "on:jobserver:max=1"


LOGGING_WRAPPER = '#!/bin/sh\necho "$@" >> "{log}"\nexec "$@"\n'


@needs_rustup
@pytest.mark.parametrize("where", ["cargo-config", "CARGO_BUILD_RUSTC_WRAPPER", "--config"])
def test_a_rustc_wrapper_from_cargo_configuration_still_runs(tmp_path, build_env, where):
    """The governor sets RUSTC_WRAPPER, which hides ``build.rustc-wrapper`` from cargo
    (configuration files, the variable, ``--config``): a team's sccache in
    ``.cargo/config.toml`` silently stopped running. It must run inside
    the governor's wrapper, as cargo would have run it (a relative path in a config file
    is from the directory holding ``.cargo``)."""
    ws = lib_crate(tmp_path / "ws", "wrapped")
    log = tmp_path / "wrapper.log"
    (ws / "tools").mkdir()
    wrapper = ws / "tools" / "log-rustc.sh"
    wrapper.write_text(LOGGING_WRAPPER.format(log=log))
    wrapper.chmod(0o755)
    env, cargo_args = dict(build_env), ["build"]
    if where == "cargo-config":
        (ws / ".cargo").mkdir()
        (ws / ".cargo" / "config.toml").write_text('[build]\nrustc-wrapper = "tools/log-rustc.sh"\n')
    elif where == "--config":
        cargo_args = ["--config", 'build.rustc-wrapper="tools/log-rustc.sh"', "build"]
    else:
        env["CARGO_BUILD_RUSTC_WRAPPER"] = str(wrapper)
    done = subprocess.run(exec_argv(*cargo_args), cwd=ws, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert last_log_entry(env)["decisions"]["governor"].startswith("on:")
    assert "--crate-name wrapped" in log.read_text()


# -- connections that misbehave ---------------------------------------------------------

# Started by the crate's build script (as any build script could): it connects to the
# governor, misbehaves, leaves a daemon holding its connections, and lets the build go on.
ATTACKER = r'''
import os, resource, socket, sys
mode, report = sys.argv[1], sys.argv[2]
path = os.environ["BUILDPOLICY_GOVERNOR_SOCKET"]
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
ready_r, ready_w = os.pipe()
if os.fork():
    os.close(ready_w)
    sys.exit(0 if os.read(ready_r, 1) == b"+" else 1)
os.close(ready_r)
os.setsid()
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)  # never hold cargo's pipes to the build script
with open(report + ".pid", "w") as handle:
    handle.write(str(os.getpid()))
held = []

def connect():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    held.append(sock)
    return sock

outcome = "kept"
if mode == "silent-thousands":
    for _ in range(1000):
        connect()
elif mode == "flood":  # asks again and again, never reads the answers
    sock = connect()
    try:
        while True:
            sock.sendall(b"admit crate=flood kind=lib check=0 metadata= via_server=0 pid=1 attempt=0\n" * 64)
    except OSError:
        outcome = "hung-up"
elif mode == "endless-line":
    sock = connect()
    try:
        sock.sendall(b"admit crate=" + b"x" * (8 << 20))
        outcome = "hung-up" if sock.recv(1) == b"" else "answered"
    except OSError:
        outcome = "hung-up"
elif mode == "garbage":
    sock = connect()
    sock.sendall(b"\xff\xfe\x00\n\n=\nadmit\nadmit crate= kind=\nexit status=0 peak_kib=99999999\n"
                 b"started rustc_pid=1\ngo\npreempt\nadmit crate=a kind=nonsense\nexit status=0 peak_kib=7\n"
                 b"admit pid=x attempt=y crate=\n")
with open(report, "w") as handle:
    handle.write(outcome)
os.write(ready_w, b"+")
os.close(ready_w)
import time
time.sleep(3600)
'''

ATTACKING_BUILD_RS = '''
fn main() {
    let status = std::process::Command::new(std::env::var("ATTACK_PYTHON").unwrap())
        .arg(std::env::var("ATTACK_SCRIPT").unwrap())
        .arg(std::env::var("ATTACK_MODE").unwrap())
        .arg(std::env::var("ATTACK_REPORT").unwrap())
        .status()
        .unwrap();
    assert!(status.success());
}
'''


def _few_descriptors():
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # a desktop's default is 1024


@needs_rustup
@pytest.mark.parametrize(("mode", "outcome"), [
    ("silent-thousands", "kept"),  # past the descriptor limit: accept() failed for ever, every wrapper waited
    ("flood", "hung-up"),  # the loop blocked writing answers nobody read, every wrapper waited
    ("endless-line", "hung-up"),  # buffered without bound, re-split at every read
    ("garbage", "kept"),  # an exit without an admission was learned as a crate peak
])
def test_a_misbehaving_connection_never_hangs_the_build(tmp_path, build_env, mode, outcome):
    ws = lib_crate(tmp_path / "ws", "target_crate", build_rs=ATTACKING_BUILD_RS)
    report = tmp_path / "report"
    (tmp_path / "attacker.py").write_text(ATTACKER)
    env = dict(build_env, ATTACK_PYTHON=sys.executable, ATTACK_SCRIPT=str(tmp_path / "attacker.py"),
               ATTACK_MODE=mode, ATTACK_REPORT=str(report))
    try:
        done = subprocess.run(exec_argv("build"), cwd=ws, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT, preexec_fn=_few_descriptors)
    finally:
        if Path(f"{report}.pid").exists():
            try:
                os.kill(int(Path(f"{report}.pid").read_text()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
    assert done.returncode == 0, done.stderr
    assert report.read_text() == outcome
    entry = last_log_entry(env)
    assert entry["decisions"]["governor"].startswith("on:") and entry["governor"]["failure"] is None
    learned = {key for crates in peaks.load(state_dir(env), str(ws)).values() for key in crates}
    assert learned <= {"target_crate:lib", "target_crate:build-script"}, learned  # build scripts by package


# -- who can reach it, where it lives ---------------------------------------------------

SESSION_SCRIPT = '''
import json, os, sys
from pathlib import Path
from buildpolicy.run.governor.session import GovernorSession
session = GovernorSession(state_dir=Path(sys.argv[1]), workspace="/src/app", profile="dev", check=False,
                          max_jobs=2, prior_mib=512, note=print)
env = session.open(dict(os.environ))
print(json.dumps({"dir": str(session.directory), "socket": env["BUILDPOLICY_GOVERNOR_SOCKET"]}), flush=True)
sys.stdin.read()
session.close()
'''
CONNECT = "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect(sys.argv[1]); print('connected')\nexcept OSError as e:\n    print(e.errno)\n"


def _open_session(tmp_path, env, python: str = sys.executable) -> tuple[subprocess.Popen, dict]:
    session = subprocess.Popen([python, "-c", SESSION_SCRIPT, str(tmp_path / "state")], env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    return session, json.loads(session.stdout.readline())


def test_no_other_user_can_reach_the_governor(tmp_path, base_env, short_tmp):
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None or shutil.which("setpriv") is None:
        pytest.skip("needs /usr/bin/python3 and setpriv to act as another user")
    env = dict(base_env, TMPDIR=str(short_tmp))
    env.pop("XDG_RUNTIME_DIR", None)
    session, opened = _open_session(tmp_path, env)
    try:
        assert Path(opened["dir"]).stat().st_mode & 0o777 == 0o700
        foreign = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", python,
                                  "-c", CONNECT, opened["socket"]], capture_output=True, text=True, timeout=60)
        own = subprocess.run([sys.executable, "-c", CONNECT, opened["socket"]], capture_output=True, text=True,
                             timeout=60)
    finally:
        session.communicate("", timeout=60)
    assert own.stdout.strip() == "connected"
    assert foreign.stdout.strip() == "13", foreign  # EACCES: the directory is ours alone
    assert not Path(opened["dir"]).exists()


def test_a_shared_temporary_directory_is_never_the_governors_home(tmp_path, base_env, short_tmp):
    """TMPDIR is a build variable a repository's policy may set: one that others can write
    to without the sticky bit would let them swap the directory cargo runs the launcher from."""
    shared = short_tmp / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    env = dict(base_env, TMPDIR=str(shared))
    env.pop("XDG_RUNTIME_DIR", None)
    session, opened = _open_session(tmp_path, env)
    session.communicate("", timeout=60)
    assert not opened["dir"].startswith(str(shared)) and os.listdir(shared) == []
    sticky = short_tmp / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)  # as /tmp
    session, opened = _open_session(tmp_path, dict(env, TMPDIR=str(sticky)))
    session.communicate("", timeout=60)
    assert opened["dir"].startswith(str(sticky) + "/")


def test_the_launcher_quotes_every_path_it_hands_to_sh(tmp_path, base_env, short_tmp):
    """A Python whose path has a space cannot go on a shebang line: the launcher is then a
    sh script. The directory it lives in comes from TMPDIR, which a repository's policy may
    set: a name with ``$(…)`` in it was expanded by sh (double quotes), running a command."""
    import sysconfig

    (short_tmp / "py env").mkdir()
    python = short_tmp / "py env" / "python"
    python.symlink_to(sys.executable)
    tmpdir = short_tmp / "$(touch ran)"
    tmpdir.mkdir()
    env = dict(base_env, TMPDIR=str(tmpdir), PYTHONPATH=os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"]]))
    env.pop("XDG_RUNTIME_DIR", None)
    session, opened = _open_session(tmp_path, env, python=str(python))
    try:
        launcher = Path(opened["dir"]) / "rustc-wrapper"
        assert launcher.read_text().startswith("#!/bin/sh\n")
        query = subprocess.run([str(launcher), "sh", "-c", "echo ran as rustc"], cwd=short_tmp, env=base_env,
                               capture_output=True, text=True, timeout=60)
    finally:
        session.communicate("", timeout=60)
    assert (query.returncode, query.stdout) == (0, "ran as rustc\n"), query.stderr
    assert not (short_tmp / "ran").exists()


def test_another_users_rustc_is_never_taken_for_ours(tmp_path):
    """Under sccache the governor finds (and may preempt) the server's rustc by its command
    line: a process of another user with the same one is not ours to kill."""
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to act as another user")
    bin_dir = Path(tempfile.mkdtemp(prefix="bpga-bin-"))
    try:
        bin_dir.chmod(0o755)
        fake = bin_dir / "rustc"  # comm "rustc", command line of a compilation
        shutil.copy("/bin/sh", fake)
        argv = [str(fake), "-c", "sleep 600; :", "rustc", "--crate-name", "victim", "-Cmetadata=feedc0de"]
        theirs = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv])
        try:
            wait_until(lambda: processes("metadata=feedc0de"), "the other user's process")
            assert ServerRustcFinder().find("victim", "feedc0de") is None
            ours = subprocess.Popen(argv)
            try:
                wait_until(lambda: ServerRustcFinder().find("victim", "feedc0de") == ours.pid, "our own found")
            finally:
                ours.kill()
                ours.wait()
        finally:
            theirs.kill()
            theirs.wait()
    finally:
        shutil.rmtree(bin_dir, ignore_errors=True)


# -- nested ---------------------------------------------------------------------------------

NESTED_BUILD_RS = '''
fn main() {
    let out = std::env::var("OUT_DIR").unwrap();
    let status = std::process::Command::new(std::env::var("NESTED_PYTHON").unwrap())
        .args(["-m", "buildpolicy", "exec", "--", "cargo", "build", "--manifest-path"])
        .arg(std::env::var("NESTED_MANIFEST").unwrap())
        .arg("--target-dir")
        .arg(format!("{}/inner-target", out))
        .status()
        .unwrap();
    assert!(status.success());
}
'''


@needs_rustup
def test_a_nested_exec_shares_the_outer_governor(tmp_path, build_env):
    """A build script running ``buildpolicy exec -- cargo build``: the inner exec governs
    nothing of its own (``not-applicable:nested``), and the inner rustc is admitted by the
    outer governor (which learns its peak), through the wrapper and jobserver it inherits."""
    inner = lib_crate(tmp_path / "inner", "inner_crate")
    outer = lib_crate(tmp_path / "outer", "outer_crate", build_rs=NESTED_BUILD_RS)
    env = dict(build_env, NESTED_PYTHON=sys.executable, NESTED_MANIFEST=str(inner / "Cargo.toml"))
    done = subprocess.run(exec_argv("build"), cwd=outer, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in (state_dir(env) / "actions.jsonl").read_text().splitlines()]
    assert [e["decisions"]["governor"] for e in entries] == ["not-applicable:nested", "on:jobserver:max=" +
                                                             entries[-1]["decisions"]["governor"].rpartition("=")[2]]
    assert "governor" not in entries[0]
    learned = peaks.load(state_dir(env), str(outer))["dev"]
    assert {"inner_crate:lib", "outer_crate:lib"} <= set(learned)
    assert peaks.load(state_dir(env), str(inner)) == {}


# -- the prompt -------------------------------------------------------------------------


@pytest.mark.parametrize("replay", ["off", "on"])
def test_env_at_the_prompt_never_imports_the_governor(tmp_path, base_env, replay):
    """``env`` (full or replayed) in a cargo workspace with learned peaks: no governor code,
    no peaks file read, the same output with or without them."""
    ws = lib_crate(tmp_path / "ws", "prompt")
    env = dict(base_env, BUILDPOLICY_REPLAY=replay)
    argv = [sys.executable, "-X", "importtime", "-m", "buildpolicy", "env"]
    before = subprocess.run(argv, cwd=ws, env=env, capture_output=True, text=True, timeout=60)
    assert peaks.record(state_dir(env), str(ws), {"dev": {"prompt:lib": 3000 * MIB}})
    runs = [subprocess.run(argv, cwd=ws, env=env, capture_output=True, text=True, timeout=60) for _ in range(2)]
    for run in [before, *runs]:
        assert run.returncode == 0, run.stderr
        imported = [line.rpartition("|")[2].strip() for line in run.stderr.splitlines() if line.startswith("import time:")]
        assert imported and not [name for name in imported if name.startswith("buildpolicy.run.governor")]
        assert run.stdout == before.stdout


def test_a_peaks_file_another_user_planted_is_ignored_and_replaced(tmp_path):
    """Learned peaks decide who waits: a file someone else owns (a shared or planted state
    dir) is never believed, and the next build's peaks replace it."""
    path = peaks.peaks_path(tmp_path, "/src/app")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, "workspace": "/src/app",
                                "profiles": {"dev": {"app:lib": {"peaks_mib": [900000], "builds": 9}}}}))
    os.chown(path, NOBODY, NOBODY)
    assert peaks.load(tmp_path, "/src/app") == {}
    assert peaks.record(tmp_path, "/src/app", {"dev": {"app:lib": 300 * MIB}})
    assert path.stat().st_uid == os.getuid()
    assert peaks.load(tmp_path, "/src/app")["dev"]["app:lib"]["peaks_mib"] == [300]


@needs_rustup
def test_a_noexec_temporary_directory_does_not_fail_the_build(tmp_path, build_env, short_tmp):
    """Hardened machines mount /tmp ``noexec``: cargo could not run the launcher made there
    and every governed compilation failed ("Permission denied", exit 101). The governor
    makes its directory where programs may run (or stays off, saying why)."""
    noexec = short_tmp / "nx"
    noexec.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec,size=4m,mode=1777", "tmpfs", str(noexec)],
                             capture_output=True, text=True, timeout=60)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a noexec tmpfs here: {mounted.stderr.strip()}")
    try:
        ws = lib_crate(tmp_path / "ws", "hardened")
        env = dict(build_env, TMPDIR=str(noexec))
        done = subprocess.run(exec_argv("build"), cwd=ws, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr
        assert last_log_entry(env)["decisions"]["governor"].startswith("on:")
        assert os.listdir(noexec) == []
    finally:
        subprocess.run(["umount", str(noexec)], timeout=60)


def test_a_preemption_kills_rustc_and_everything_it_started():
    """rustc no longer has a process group of its own to kill: a preemption stops and
    kills the whole tree (rustc, the cc it runs, the ld cc runs), none left linking."""
    from buildpolicy.run.governor import wrapper

    tree = subprocess.Popen(["sh", "-c", "sh -c 'sleep 600 & sleep 600; :' & sleep 600; :"])
    descendants: list[int] = []
    try:
        descendants = wait_until(lambda: len(found := _descendants(tree.pid)) == 4 and found, "the process tree")
        assert sorted(wrapper.children_of(tree.pid)) == sorted(wrapper._children_by_scan(tree.pid))
        wrapper._kill_tree(tree.pid)
        assert tree.wait(timeout=60) == -signal.SIGKILL
        wait_until(lambda: all(rustc_state(pid) is None for pid in descendants), "every descendant killed", timeout=60)
    finally:
        for pid in [tree.pid, *descendants]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        tree.wait(timeout=60)


def _descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        for child in children(queue.pop()):
            found.append(child)
            queue.append(child)
    return found


@needs_rustup
def test_rustc_killed_from_outside_fails_the_build_as_without_the_governor(tmp_path, build_env):
    """The OOM killer (or anyone) SIGKILLs rustc: cargo must report the compiler's death by
    SIGKILL, as without the governor. The wrapper tried to reset SIGKILL's handler, raised,
    printed a Python traceback into the build output and exited 1 instead."""
    ws = spin_workspace(tmp_path / "ws", ["victim"])
    outputs = {}
    for governor in ("off", "on"):
        shutil.rmtree(ws / "target", ignore_errors=True)
        build = subprocess.Popen([sys.executable, "-m", "buildpolicy", "exec", "--set", f"governor={governor}", "--",
                                  "cargo", "build"], cwd=ws, env=build_env, stdout=subprocess.DEVNULL,
                                 stderr=open(tmp_path / f"stderr-{governor}", "wb"))
        try:
            rustc = wait_until(lambda: [pid for pid, (comm, _) in processes("--crate-name victim ", str(ws)).items()
                                        if comm == "rustc"], "rustc running")
            os.kill(rustc[0], signal.SIGKILL)
            outputs[governor] = (build.wait(timeout=TIMEOUT), (tmp_path / f"stderr-{governor}").read_text())
        finally:
            kill_all(str(ws))
            build.wait(timeout=TIMEOUT)
    for governor, (status, stderr) in outputs.items():
        assert status == 101, (governor, stderr)
        assert "(signal: 9, SIGKILL: kill)" in stderr and "Traceback" not in stderr, (governor, stderr)
    assert last_log_entry(build_env)["decisions"]["governor"].startswith("on:")
