"""The real command line in subprocesses: outputs, exit codes, stdout hygiene."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LOW_MEMORY_LAPTOP

SELFDEV = ["--", "cargo", "build", "--profile", "selfdev"]


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    (root / "policies").mkdir(parents=True)
    (root / "Cargo.toml").write_text('[package]\nname = "demo"\nversion = "0.1.0"\n\n[profile.selfdev]\ninherits = "dev"\n')
    (root / "buildpolicy.toml").write_text('policies = ["policies"]\n')
    return root


@pytest.fixture
def facts_file(tmp_path) -> Path:
    path = tmp_path / "laptop.json"
    path.write_text(json.dumps(LOW_MEMORY_LAPTOP))
    return path


def test_env_prints_exports_that_bash_can_eval(cli, project, facts_file):
    proc = cli("env", "--facts", str(facts_file), *SELFDEV, cwd=project, check=True)
    assert "export CARGO_PROFILE_SELFDEV_CODEGEN_UNITS='256'" in proc.stdout.splitlines()
    shell = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", 'eval "$1"; printf %s "$CARGO_BUILD_JOBS"', "_", proc.stdout],
        capture_output=True, text=True, check=True,
    )
    assert shell.stdout == "3"


def test_env_json_and_fish(cli, project, facts_file):
    data = json.loads(cli("env", "--format", "json", "--facts", str(facts_file), *SELFDEV, cwd=project, check=True).stdout)
    assert data["set"]["CARGO_INCREMENTAL"] == "1" and isinstance(data["unset"], list)
    fish = cli("env", "--shell", "fish", "--facts", str(facts_file), *SELFDEV, cwd=project, check=True).stdout
    assert "set -gx CARGO_INCREMENTAL '1';" in fish.splitlines()


def test_errors_leave_stdout_empty_and_exit_2(cli, project, facts_file):
    (project / "policies" / "bad.toml").write_text('[[rule]]\nid = "x"\nwhen = "memory.availabel < 4GiB"\n')
    proc = cli("env", "--facts", str(facts_file), cwd=project)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "bad.toml:3:9" in proc.stderr and "did you mean 'memory.available'" in proc.stderr
    assert "^" in proc.stderr and "Traceback" not in proc.stderr
    (project / "policies" / "bad.toml").unlink()
    bad_knob = cli("env", cwd=project, env={"BUILDPOLICY_SCCACHE": "sometimes"})
    assert bad_knob.returncode == 2 and bad_knob.stdout == ""
    assert "BUILDPOLICY_SCCACHE" in bad_knob.stderr and "auto, on, off" in bad_knob.stderr


def test_malformed_toml_and_schema_errors_reported_together(cli, project):
    (project / "policies" / "a.toml").write_text('[[rule]]\nid = "a"\nwhne = "os == \'linux\'"\npriority = "5"\n')
    (project / "policies" / "b.toml").write_text('[[rule]\nid = "b"\n')
    proc = cli("check", cwd=project)
    assert proc.returncode == 1
    assert "a.toml:3:1" in proc.stderr and "whne" in proc.stderr
    assert "a.toml:4:" in proc.stderr and "priority" in proc.stderr
    assert "b.toml:1:" in proc.stderr
    env = cli("env", cwd=project)
    assert env.returncode == 2 and env.stdout == ""


def test_check_ok_and_warns_about_possible_conflicts(cli, project):
    (project / "policies" / "a.toml").write_text(
        '[[rule]]\nid = "a"\nwhen = "os == \'linux\'"\nenv = { CARGO_TERM_COLOR = "always" }\n'
        '[[rule]]\nid = "b"\nwhen = "ci"\nenv = { CARGO_TERM_COLOR = "never" }\n'
        '[[rule]]\nid = "c"\nwhen = "os == \'macos\'"\nenv = { CARGO_TERM_COLOR = "never" }\n'
    )
    proc = cli("check", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok:")
    assert "'a'" in proc.stderr and "'b'" in proc.stderr
    assert "'c'" not in proc.stderr  # os == linux and os == macos never match together


def test_exec_runs_the_command_as_its_child_and_is_transparent(cli, project, facts_file):
    # exec waits for the command (to log its exit status and hold the build gate)
    # instead of replacing itself; what it guarantees in exchange is checked here.
    proc = cli("exec", "--facts", str(facts_file), "--", "sh", "-c", 'printf %s "$CARGO_BUILD_JOBS"; exit 7', cwd=project)
    assert proc.returncode == 7  # the command's exit status
    assert proc.stdout == "3"
    env = dict(cli.env)
    # stdin, stdout and stderr are the caller's own, and buildpolicy is the direct parent.
    # With -q nothing of buildpolicy's own reaches stderr; without it, one summary line first.
    for quiet in (["-q"], []):
        child = subprocess.Popen(
            [sys.executable, "-m", "buildpolicy", "exec", *quiet, "--", "sh", "-c", 'echo "$PPID"; cat; echo to-stderr >&2'],
            cwd=project, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        out, err = child.communicate("from stdin\n", timeout=60)
        assert out.splitlines() == [str(child.pid), "from stdin"]
        if quiet:
            assert err == "to-stderr\n"
        else:
            summary, rest = err.split("\n", 1)
            assert summary.startswith("buildpolicy: dev · ") and rest == "to-stderr\n"
    # SIGTERM and SIGINT sent to buildpolicy reach the command, which decides how to exit.
    for signum, code in ((signal.SIGTERM, 42), (signal.SIGINT, 43)):
        name = signal.Signals(signum).name.removeprefix("SIG")
        child = subprocess.Popen(
            [sys.executable, "-m", "buildpolicy", "exec", "--", "sh", "-c",
             f'trap "exit {code}" {name}; echo ready; while :; do sleep 0.05; done'],
            cwd=project, env=env, stdout=subprocess.PIPE, text=True,
        )
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signum)
        assert child.wait(timeout=30) == code
    # A command killed by a signal: 128 + the signal number, as a shell reports it.
    killed = cli("exec", "--", "sh", "-c", "kill -KILL $$", cwd=project)
    assert killed.returncode == 128 + signal.SIGKILL
    missing = cli("exec", "--", "no-such-command-xyz", cwd=project)
    assert missing.returncode == 127 and "not found" in missing.stderr


def test_exec_replaces_itself_when_nothing_needs_it_to_wait(cli, project, home):
    """With the action log off and no gate to hold (not a cargo build), exec becomes the command."""
    env = dict(cli.env, BUILDPOLICY_ACTION_LOG="off")
    child = subprocess.Popen(
        [sys.executable, "-m", "buildpolicy", "exec", "--", "sh", "-c", 'echo "$$"; exit 5'],
        cwd=project, env=env, stdout=subprocess.PIPE, text=True,
    )
    out, _ = child.communicate(timeout=60)
    assert int(out) == child.pid  # the same process: buildpolicy replaced itself
    assert child.returncode == 5
    missing = cli("exec", "--", "no-such-command-xyz", cwd=project, env={"BUILDPOLICY_ACTION_LOG": "off"})
    assert missing.returncode == 127 and "not found" in missing.stderr
    assert not (home / "state" / "buildpolicy" / "actions.jsonl").exists()


def test_exec_dry_run_plan(cli, project, facts_file):
    (project / "buildpolicy.toml").write_text('[feature_profiles]\nminimal = ["--no-default-features"]\n')
    proc = cli("exec", "--dry-run", "--facts", str(facts_file), *SELFDEV, cwd=project, check=True)
    plan = json.loads(proc.stdout)
    assert plan["argv"] == ["cargo", "build", "--profile", "selfdev"]
    assert plan["execution"]["mode"] == "local"
    for key in ("profile", "env", "unset", "cargo_args", "decisions", "provenance", "knobs", "rules", "warnings"):
        assert key in plan
    assert plan["profile"] == "selfdev"
    # A compile-heavy cargo command under exec is governed: jobs is the governor's maximum (the CPUs).
    assert plan["decisions"]["governor"]["status"] == "on:jobserver:max=8"
    assert plan["decisions"]["jobs"]["status"] == "governor-max:8 (cpus=8)"
    assert set(plan["decisions"]["jobs"]) == {"value", "status", "reason", "source"}
    static = json.loads(cli("exec", "--dry-run", "--facts", str(facts_file), "--set", "governor=off", *SELFDEV,
                            cwd=project, check=True).stdout)
    assert static["decisions"]["governor"]["status"] == "disabled-by-knob"
    assert static["decisions"]["jobs"]["status"].startswith("adaptive:3")
    assert set(plan["provenance"]["CARGO_PROFILE_SELFDEV_CODEGEN_UNITS"]) == {"layer", "file", "line", "source"}


def test_explain_text_is_grouped_and_names_sources(cli, project, facts_file):
    facts = json.loads(facts_file.read_text())
    facts["memory.available"] = None  # given as unknown
    facts_file.write_text(json.dumps(facts))
    text = cli("explain", "--facts", str(facts_file), *SELFDEV, cwd=project, check=True).stdout
    for heading in ("Decisions", "Environment", "Knobs", "Rules", "Unknown facts", "Files read"):
        assert f"\n{heading}" in text
    assert "cargo-default" in text and "memory.available" in text
    one = cli("explain", "jobs", "--facts", str(facts_file), cwd=project, check=True).stdout
    assert "jobs" in one and "Rules" not in one
    missing = cli("explain", "nothing-like-this", cwd=project)
    assert missing.returncode == 2 and missing.stdout == ""


def test_facts_command(cli, project):
    data = json.loads(cli("facts", "--format", "json", cwd=project, check=True).stdout)
    assert data["os"] == "linux" and isinstance(data["cpu.count"], int) and data["cpu.count"] >= 1
    text = cli("facts", "memory.total", "os", cwd=project, check=True).stdout
    assert text.startswith("memory.total") and "GiB" in text
    assert cli("facts", "memory.totl", cwd=project).returncode == 2


def test_facts_file_toml_nested_and_sizes(cli, project, tmp_path):
    facts = tmp_path / "m.toml"
    facts.write_text('os = "linux"\n[memory]\ntotal = "16GiB"\navailable = "512MiB"\n[swap]\ntotal = 0\n')
    data = json.loads(cli("facts", "memory.total", "memory.available", "--facts", str(facts), "--format", "json", cwd=project, check=True).stdout)
    assert data == {"memory.total": 16 << 30, "memory.available": 512 << 20}


def test_python_dash_m_and_usage_errors(cli, project):
    assert cli(cwd=project).returncode == 2
    assert cli("env", "--shell", "tcsh", cwd=project).returncode == 2
    assert cli("env", "--bogus", cwd=project).returncode == 2


def test_installed_package_finds_policies_and_schemas(tmp_path, base_env):
    """`pip install .` into a new venv, run from an unrelated directory.

    Independent of the caller's Python environment (an activated venv, a venv made from a
    venv, whatever `python3` is on PATH): the wheel is built by the interpreter running the
    tests, whose test extras bring setuptools and wheel, and the new venv reaches the
    runtime dependencies through a .pth file naming that interpreter's site directories
    (`--system-site-packages` would name the *base* interpreter's, which may have neither).
    """
    repo = Path(__file__).resolve().parent.parent
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-w", str(wheels), str(repo)],
        check=True, capture_output=True, cwd=tmp_path,
    )
    [wheel] = wheels.glob("buildpolicy-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    ours = list(dict.fromkeys(p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")
                              and os.path.isdir(p)))
    (Path(purelib) / "buildpolicy_test_deps.pth").write_text("".join(f"{p}\n" for p in ours))
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--disable-pip-version-check",
                    str(wheel)], check=True, capture_output=True, cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(base_env)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([venv / "bin" / "buildpolicy", "explain", "--format", "json"], cwd=elsewhere, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert any(rule["id"] == "low-memory-incremental" for rule in report["rules"])
    rule_file = next(r["file"] for r in report["rules"] if r["id"] == "low-memory-incremental")
    assert str(venv) in rule_file  # the installed copy, not the source tree
    schema = subprocess.run([venv / "bin" / "python", "-c", "from buildpolicy.data import schema_dir; print(schema_dir())"],
                            cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert (Path(schema) / "policy.schema.json").is_file() and str(venv) in schema
    assert set(report["decisions"]) >= {"jobs", "sccache", "tmpdir", "low_memory"}


NASTY = {
    "CARGO_NASTY_QUOTES": "it's \"quoted\" \\ back\\slash",
    "CARGO_NASTY_SUBST": "$(touch /tmp/pwned) `id` ${HOME} $$ !!",
    "CARGO_NASTY_LINES": "line one\nline two\n\ttabbed\n",
    "CARGO_NASTY_UNICODE": "gr\u00fc\u00dfe \U0001F980 e\u0301",
}


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "dash"])
def test_env_output_evaluated_by_real_shells_reproduces_values(cli, project, shell, tmp_path):
    import shutil
    import tomlkit

    if shutil.which(shell) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{shell} is missing: scripts/install-system-deps.sh installs it")
        pytest.skip(f"{shell} is not installed (scripts/install-system-deps.sh installs it)")
    doc = tomlkit.document()
    rule = tomlkit.table()
    rule["id"] = "nasty"
    rule["env"] = {name: value.replace("$", "$$") for name, value in NASTY.items()}  # $$ is a literal $
    rule["force"] = True
    rules = tomlkit.aot()
    rules.append(rule)
    doc["rule"] = rules
    (project / "policies" / "nasty.toml").write_text(tomlkit.dumps(doc))
    flavour = "fish" if shell == "fish" else "posix"
    out = cli("env", "--shell", flavour, cwd=project, check=True).stdout
    script = tmp_path / "env.out"
    script.write_text(out)
    names = sorted(NASTY)
    if shell == "fish":
        body = f"source {script}; " + "; ".join(f'printf "%s\\0" "${n}"' for n in names)
        argv = ["fish", "--no-config", "-c", body]
    else:
        body = f'eval "$(cat {script})"; ' + "; ".join(f'printf "%s\\0" "${n}"' for n in names)
        argv = [shell, "-c", body] if shell != "bash" else ["bash", "--norc", "--noprofile", "-c", body]
    got = subprocess.run(argv, capture_output=True, check=True, env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": str(tmp_path)}).stdout
    assert got.split(b"\0")[:-1] == [NASTY[n].encode() for n in names]
    assert not os.path.exists("/tmp/pwned")


@pytest.mark.parametrize("apply", ["eval (buildpolicy env --shell fish)", "buildpolicy env --shell fish | source"])
def test_fish_applies_env_by_eval_and_by_source(cli, project, tmp_path, apply):
    # `eval (...)` joins the output's lines into one command: without statement ends
    # BUILDPOLICY_ENV_STATE became a 13-element list and CARGO_BUILD_JOBS was never set.
    import shutil

    if shutil.which("fish") is None:
        pytest.skip("fish comes from scripts/install-system-deps.sh")
    (project / "policies" / "lines.toml").write_text(
        '[[rule]]\nid = "lines"\nenv = { CARGO_LINES = "one\\ntwo\\n", CARGO_QUOTE = "it\'s" }\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "buildpolicy").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m buildpolicy "$@"\n')
    (bin_dir / "buildpolicy").chmod(0o755)
    expected = json.loads(cli("env", "--format", "json", "--set", "jobs=3", cwd=project, check=True).stdout)["set"]
    posix = cli("env", "--set", "jobs=3", cwd=project, check=True).stdout
    state = next(line for line in posix.splitlines() if line.startswith("export BUILDPOLICY_ENV_STATE="))
    expected["BUILDPOLICY_ENV_STATE"] = state.partition("=")[2].strip("'")  # JSON: no quotes inside
    names = ["BUILDPOLICY_ENV_STATE", "CARGO_BUILD_JOBS", "CARGO_LINES", "CARGO_QUOTE"]
    body = (apply.replace("env ", "env --set jobs=3 ") + "; or exit 3; count $BUILDPOLICY_ENV_STATE; "
            + "; ".join(f'printf "%s\\0" "${name}"' for name in names))
    env = dict(cli.env, PATH=f"{bin_dir}:{cli.env['PATH']}")
    proc = subprocess.run(["fish", "--no-config", "-c", body], cwd=project, env=env, capture_output=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (0, b"")
    count, _, values = proc.stdout.partition(b"\n")
    assert count == b"1"  # one value, not a list of fragments
    assert values.split(b"\0")[:-1] == [expected[name].encode() for name in names]
    assert expected["CARGO_BUILD_JOBS"] == "3" and expected["CARGO_LINES"] == "one\ntwo\n"


def test_env_to_a_full_or_closed_stdout_is_an_error_not_a_traceback(cli, project):
    full = subprocess.run([sys.executable, "-m", "buildpolicy", "env"], cwd=project, env=cli.env,
                          stdout=open("/dev/full", "wb"), stderr=subprocess.PIPE, text=True, timeout=60)
    assert full.returncode == 74 and "No space left" in full.stderr and "Traceback" not in full.stderr
    closed = subprocess.run(["bash", "-c", f'"{sys.executable}" -m buildpolicy env >&-'], cwd=project, env=cli.env,
                            stderr=subprocess.PIPE, text=True, timeout=60)
    assert closed.returncode == 74 and "closed" in closed.stderr and "Traceback" not in closed.stderr


def test_a_broken_profile_file_is_an_error_not_skipped(cli, tmp_path):
    project = tmp_path / "broken"
    project.mkdir()
    (project / "buildpolicy.toml").symlink_to(tmp_path / "missing.toml")
    proc = cli("env", cwd=project)
    assert proc.returncode == 2 and proc.stdout == "" and "broken symbolic link" in proc.stderr


def test_env_reports_a_render_plugin_that_failed_before_another_rendered(cli, project):
    tools = project / "tools"
    tools.mkdir()
    (tools / "aa_good.py").write_text(
        "from buildpolicy import hookimpl\n@hookimpl\ndef buildpolicy_render_env(set_env, unset, shell, fmt):\n"
        "    return f'{len(set_env)} variables\\n' if fmt == 'count' else None\n")
    (tools / "zz_boom.py").write_text(
        "from buildpolicy import hookimpl\n@hookimpl\ndef buildpolicy_render_env(set_env, unset, shell, fmt):\n"
        "    raise RuntimeError('render went wrong')\n")
    (project / "buildpolicy.toml").write_text('plugin_paths = ["tools/aa_good.py", "tools/zz_boom.py"]\n')
    cli("allow", cwd=project, check=True)
    proc = cli("env", "--format", "count", cwd=project, check=True)
    assert proc.stdout.endswith(" variables\n")
    assert "'zz_boom'" in proc.stderr and "render went wrong" in proc.stderr
