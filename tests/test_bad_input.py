"""Bad input gives exit 2 with a position, never a traceback or a hang (issue 10, item 12).

Through the real CLI: `when` expressions nested or chained far beyond reason, TOML
nested 10,000 deep (in a policy file and in the profile file), and ``--facts``
files with numbers no fact can hold, deep nesting, or no end at all.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.statefiles import bp
from tests.statefiles import env, project  # noqa: F401 - fixtures

POSITION = re.compile(r"buildpolicy: error: (?P<file>/[^:\n]+):(?P<line>\d+):(?P<col>\d+): ")


def assert_positioned_usage_error(proc, file: Path, line: int | None = None, col: int | None = None) -> re.Match:
    """Exit 2, nothing on stdout, no traceback, and an error at ``file:line:col``."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr
    match = POSITION.search(proc.stderr)
    assert match, proc.stderr[:2000]
    assert match["file"] == str(file)
    if line is not None:
        assert int(match["line"]) == line
    if col is not None:
        assert int(match["col"]) == col
    return match


WHEN_PREFIX = '[[rule]]\nid = "odd"\nenv = { CARGO_ODD = "1" }\nwhen = "'


@pytest.mark.parametrize("expression, message", [
    ("(" * 5000 + "ci" + ")" * 5000, "nested too deeply"),
    ("not " * 20_000 + "ci", "nested too deeply"),
    (" and ".join(["ci"] * 100_000), "expression too long"),
])
def test_absurd_when_expressions_are_positioned_errors(expression, message, env, project):
    policy = project / "policies" / "odd.toml"
    policy.write_text(WHEN_PREFIX + expression + '"\n')
    for command in ("check", "env"):
        proc = bp(env, project, command)
        if command == "check":
            assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
            assert re.search(rf"{re.escape(str(policy))}:4:\d+: .*{message}", proc.stdout + proc.stderr)
        else:
            match = assert_positioned_usage_error(proc, policy, line=4)
            assert message in proc.stderr
            assert int(match["col"]) > len('when = "')
    # Long but reasonable: 500 terms compile and evaluate (the chain is balanced, not 500 deep).
    policy.write_text(WHEN_PREFIX + " and ".join(["os == 'linux'"] * 500) + '"\n')
    proc = bp(env, project, "explain", "--format", "json")
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_toml_nested_ten_thousand_deep_is_a_positioned_error(env, project):
    policy = project / "policies" / "deep.toml"
    policy.write_text('[[rule]]\nid = "deep"\n\nvalue = ' + "[" * 10_000 + "]" * 10_000 + "\n")
    # [[rule]] and its table are 2 levels, so the 31st '[' is the 33rd: one too many.
    assert_positioned_usage_error(bp(env, project, "env"), policy, line=4, col=len("value = ") + 31)
    policy.unlink()
    profile = project / "buildpolicy.toml"
    profile.write_text('policies = ["policies"]\nx = ' + "[" * 10_000 + "]" * 10_000 + "\n")
    assert_positioned_usage_error(bp(env, project, "env"), profile, line=2)
    # Dotted keys and headers nest too.
    profile.write_text('policies = ["policies"]\n[' + ".".join(["a"] * 20_000) + "]\n")
    assert_positioned_usage_error(bp(env, project, "env"), profile, line=2, col=1)


@pytest.mark.parametrize("name, text, line, col", [
    ("f.json", '{"os": "linux",\n "memory.total": 1e400}', 2, 18),
    ("f.json", '{"cpu.count": NaN}', 1, 15),
    ("f.json", '{"cpu.count": 1' + "0" * 5000 + "}", 1, 15),
    ("f.json", '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}", 1, None),
    ("f.json", '{"env": ' + '{"a": ' * 900 + "1" + "}" * 900 + "}", 1, None),
    ("f.toml", 'os = "linux"\n"memory.total" = inf\n', 2, 18),
    ("f.toml", "x = " + "[" * 10_000 + "]" * 10_000 + "\n", 1, None),
    ("f.toml", "[" + ".".join(["tool"] * 20_000) + "]\n", 1, 1),
])
def test_bad_facts_files_are_positioned_errors(name, text, line, col, env, project):
    path = project / name
    path.write_text(text)
    for command in ("env", "explain"):
        assert_positioned_usage_error(bp(env, project, command, "--facts", str(path)), path, line, col)


def test_a_facts_file_that_never_ends_or_never_arrives_is_refused(env, project):
    for endless in ("/dev/zero", "/dev/urandom"):
        proc = bp(env, project, "env", "--facts", endless)
        assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
        assert f"{endless}: cannot read facts file: not a regular file" in proc.stderr
    fifo = project / "facts.fifo"
    os.mkfifo(fifo)  # nobody writes to it: read as empty, not waited on
    proc = bp(env, project, "env", "--facts", str(fifo))
    assert proc.returncode == 0 and "CARGO_BUILD_JOBS=" in proc.stdout
    # A pipe is how `--facts <(…)` arrives: read like a file.
    shell = '"$0" -m buildpolicy explain --format json --facts <(printf "cpu.count = 3\\n") -- cargo build'
    adaptive = {k: v for k, v in env.items() if k != "BUILDPOLICY_JOBS"}
    adaptive["BUILDPOLICY_GOVERNOR"] = "off"  # under the memory governor `jobs` is its maximum, not adaptive
    proc = subprocess.run(["bash", "-c", shell, sys.executable], cwd=project, env=adaptive, capture_output=True,
                          text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["decisions"]["jobs"]["status"].startswith("adaptive:3 ")


def test_a_fifo_as_the_knob_file_fails_set_instead_of_hanging(env, project, home):
    knobs = home / "config" / "buildpolicy" / "knobs.toml"
    knobs.parent.mkdir(parents=True)
    os.mkfifo(knobs)
    proc = bp(env, project, "set", "jobs", "3")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert str(knobs) in proc.stderr and "not a regular file" in proc.stderr
