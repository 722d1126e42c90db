"""`env`'s own argument parsing agrees with argparse, and hands everything unusual to it."""

from __future__ import annotations

import pytest

from buildpolicy.cli import build_parser, fast_env_args

SAME = [
    ["env"],
    ["env", "-q"],
    ["env", "--shell", "fish"],
    ["env", "--shell=zsh", "--format", "json"],
    ["env", "--profile", "selfdev", "--set", "jobs=2", "--set=linker=mold"],
    ["env", "--facts", "m.toml", "--quiet", "--format=github"],
]


@pytest.mark.parametrize("own", SAME, ids=" ".join)
def test_fast_parse_equals_argparse(own):
    fast = vars(fast_env_args(own))
    slow = vars(build_parser().parse_args(own))
    assert fast == {key: slow[key] for key in fast}
    assert set(slow) == set(fast)


@pytest.mark.parametrize("own", [["env", "--help"], ["env", "--bogus"], ["env", "--shell"], ["env", "--sh", "fish"],
                                 ["explain"], ["env", "extra"]])
def test_unusual_command_lines_go_to_argparse(own):
    assert fast_env_args(own) is None


def test_cli_still_reports_argparse_errors(cli, tmp_path):
    proc = cli("env", "--bogus", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == "" and "--bogus" in proc.stderr
    assert cli("env", "--help", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("own, expected", [
    (["-q", "exec"], ["exec", "-q"]),
    (["--profile", "selfdev", "env", "--shell", "fish"], ["env", "--profile", "selfdev", "--shell", "fish"]),
    (["--set=jobs=2", "--facts", "f.json", "explain", "jobs"], ["explain", "--set=jobs=2", "--facts", "f.json", "jobs"]),
    (["env", "-q"], ["env", "-q"]),
    (["--bogus", "env"], ["--bogus", "env"]),  # argparse reports it
    (["-q"], ["-q"]),
])
def test_common_flags_may_precede_the_command(own, expected):
    from buildpolicy.cli import common_flags_after_command

    assert common_flags_after_command(own) == expected


def test_cli_accepts_common_flags_before_the_command(cli, tmp_path):
    proc = cli("-q", "--set", "jobs=3", "exec", "--", "sh", "-c", 'printf %s "$CARGO_BUILD_JOBS"', cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == "3"
