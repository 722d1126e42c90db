"""Many buildpolicy processes at once: no lost update, no torn file, no failure
(issue 10, item 9, and the process-level concurrency of ``set``, ``env`` and ``exec``).

Every process is a real ``python -m buildpolicy`` started together with the others
in one private home; the assertions are about what every one of them printed and
what the files hold afterwards, never about timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path


from buildpolicy.run import actionlog
from tests.statefiles import HANG
from tests.statefiles import env, project  # noqa: F401 - fixtures

# 19 knobs of the built-in plugins with a valid value other than the default.
KNOB_VALUES = {
    "frontend": "off",
    "frontend_threads": "2",
    "gate_note_interval": "10",
    "jobs": "3",
    "linker": "system",
    "low_memory": "off",
    "mib_per_job": "2048",
    "remote_connect_timeout": "4",
    "remote_down_ttl": "100",
    "remote_env": "FOO",
    "remote_fallback": "error",
    "remote_hosts": "build1",
    "remote_recovery_timeout": "0.2",
    "remote_tcp_probe": "off",
    "remote_tcp_timeout": "0.5",
    "sccache": "off",
    "toolchain": "stable",
    "remote_dir": ".cache/elsewhere",
    "gate": "off",
}


def start(env, cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "buildpolicy", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    """Wait for every process; fail the test if one hangs."""
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=HANG * 2)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise AssertionError(f"{proc.args[3:]} hung") from None
        results.append((proc.returncode, out, err))
    return results


def user_knobs(home: Path) -> dict:
    path = home / "config" / "buildpolicy" / "knobs.toml"
    return tomllib.loads(path.read_text()).get("knobs", {}) if path.exists() else {}


def test_concurrent_sets_of_different_knobs_all_land(env, project, home):
    for _round in range(2):
        procs = [start(env, project, "set", "-q", name, value) for name, value in KNOB_VALUES.items()]
        for (code, out, err), name in zip(finish(procs), KNOB_VALUES):
            assert code == 0, (name, err)
            assert out.startswith(f"{name} = "), out
        # Every process said it succeeded: every value must be in the file.
        assert set(user_knobs(home)) == set(KNOB_VALUES)
        procs = [start(env, project, "unset", "-q", name) for name in KNOB_VALUES]
        assert all(code == 0 for code, _out, _err in finish(procs))
        assert user_knobs(home) == {}


def test_set_env_and_exec_at_once(env, project, home):
    # Knobs the STEADY variables (a higher layer) do not set, so the file's values show.
    sets = dict([item for item in KNOB_VALUES.items() if f"BUILDPOLICY_{item[0].upper()}" not in env][:8])
    procs = [start(env, project, "set", "-q", name, value) for name, value in sets.items()]
    procs += [start(env, project, "env", "--", "cargo", "build") for _ in range(6)]
    procs += [start(env, project, "exec", "--facts", "facts.json", "--", "cargo", "build") for _ in range(4)]
    results = finish(procs)
    for code, _out, err in results:
        assert code == 0, err
        assert "Traceback" not in err

    # Every `env` printed a whole environment a shell evaluates (STEADY sets jobs = 4).
    for _code, out, _err in results[len(sets):len(sets) + 6]:
        shell = subprocess.run(["sh", "-c", 'eval "$1" && printf %s "$CARGO_BUILD_JOBS"', "sh", out],
                               capture_output=True, text=True, timeout=30)
        assert shell.returncode == 0 and shell.stdout == "4", (out, shell.stderr)
    # Every set is in the file, every exec ran and was logged once, no log line torn.
    assert set(user_knobs(home)) == set(sets)
    assert Path(env["FAKE_CARGO_LOG"]).read_text().splitlines() == ["build"] * 4
    entries, skipped = actionlog.read_entries(home / "state" / "buildpolicy")
    assert (len(entries), skipped) == (4, 0)
    assert all(entry["argv"] == ["cargo", "build"] for entry in entries)
    # And the state they left behind serves the next run.
    again = subprocess.run([sys.executable, "-m", "buildpolicy", "explain", "--format", "json"], cwd=project,
                           env=env, capture_output=True, text=True, timeout=HANG)
    knobs = json.loads(again.stdout)["knobs"]
    assert {name: knobs[name]["source"].split()[0] for name in sets} == {name: "user" for name in sets}
