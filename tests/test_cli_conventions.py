"""The command-line conventions Rust developers expect (issue 13, item 4): --version,
did-you-mean for mistyped flags, one error prefix, a command without `--`, usage
lines that show the command, and -C DIR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from buildpolicy import __version__
from buildpolicy.cli import COMMAND_ARGV_USAGE, VALUED_OPTIONS, build_parser


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    (root / "policies").mkdir(parents=True)
    (root / "Cargo.toml").write_text('[package]\nname = "demo"\nversion = "0.1.0"\n')
    (root / "buildpolicy.toml").write_text('policies = ["policies"]\n')
    return root


def test_version(cli, tmp_path):
    proc = cli("--version", cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"buildpolicy {__version__}\n", "")


@pytest.mark.parametrize("args, hint", [
    (["env", "--profle", "x"], "did you mean --profile?"),
    (["exec", "--dry-rn", "--", "true"], "did you mean --dry-run?"),
    (["explain", "--formt=json"], "did you mean --format?"),
    (["exple"], "did you mean explain?"),
])
def test_mistyped_flags_and_commands_get_a_suggestion_and_one_prefix(cli, project, args, hint):
    proc = cli(*args, cwd=project)
    assert proc.returncode == 2 and proc.stdout == ""
    assert hint in proc.stderr
    assert proc.stderr.startswith("buildpolicy: error: ") and proc.stderr.count("buildpolicy:") == 1


def test_exec_without_double_dash_leaves_the_commands_flags_to_it(cli, project):
    plan = json.loads(cli("exec", "--dry-run", "cargo", "build", "-q", "--profile", "dev", cwd=project, check=True).stdout)
    assert plan["argv"][:5] == ["cargo", "build", "-q", "--profile", "dev"]
    # buildpolicy's own -q before the command is still its own.
    plan = json.loads(cli("exec", "-q", "--dry-run", "cargo", "check", cwd=project, check=True).stdout)
    assert plan["argv"][:2] == ["cargo", "check"] and "-q" not in plan["argv"]


def test_explain_and_env_take_a_cargo_command_without_double_dash(cli, project):
    explained = json.loads(cli("explain", "--format", "json", "cargo", "build", "--release", cwd=project, check=True).stdout)
    assert explained["profile"] == "release" and explained["cargo_args"] == ["cargo", "build", "--release"]
    with_dash = cli("env", "--format", "json", "--", "cargo", "build", "--release", cwd=project, check=True).stdout
    assert cli("env", "--format", "json", "cargo", "build", "--release", cwd=project, check=True).stdout == with_dash
    # explain NAME is still a name.
    assert cli("explain", "jobs", cwd=project).returncode == 0


@pytest.mark.parametrize("command", sorted(COMMAND_ARGV_USAGE))
def test_usage_lines_show_the_command_line(cli, tmp_path, command):
    proc = cli(command, "--help", cwd=tmp_path)
    assert proc.returncode == 0
    assert " ".join(proc.stdout.split("\n\n")[0].split()).endswith(COMMAND_ARGV_USAGE[command])


def test_valued_options_are_known_to_the_command_line_splitter():
    parser = build_parser()
    subcommands = next(action for action in parser._actions if hasattr(action, "_name_parser_map")).choices
    for name in COMMAND_ARGV_USAGE:
        for action in subcommands[name]._actions:
            if action.option_strings and action.nargs != 0:
                assert set(action.option_strings) & VALUED_OPTIONS, (name, action.option_strings)


def test_dash_c_runs_as_if_started_in_dir(cli, project, tmp_path):
    there = cli("env", "--format", "json", cwd=project, check=True).stdout
    assert cli("-C", str(project), "env", "--format", "json", cwd=tmp_path, check=True).stdout == there
    assert cli(f"-C{project}", "explain", "--format", "json", cwd=tmp_path, check=True).returncode == 0
    missing = cli("-C", str(tmp_path / "nope"), "env", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stdout == "" and "nope: No such file or directory" in missing.stderr
