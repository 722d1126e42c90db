"""``check`` agrees with ``env`` (issue 10, item 14).

Every file problem ``env`` refuses to run with, ``check`` reports too (exit 1
where ``env`` exits 2), at the same ``file:line:col``: a NUL in a value, an
invalid name to unset, an untrusted item (which ``check`` says needs ``allow``),
alias collisions, ``decide`` values, duplicate rule ids, knob values out of
range, bad defaults and unknown knobs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "repo"
    write(root / "buildpolicy.toml", 'policies = ["policies"]\n')
    (root / "policies").mkdir()
    return root


def column(text: str, line: int, needle: str) -> int:
    """1-based column of ``needle`` on 1-based ``line`` of ``text``."""
    return text.splitlines()[line - 1].index(needle) + 1


# (file under the project, its text, line, what the column points at, a fragment of the message)
CASES = {
    "escaped-nul": ("policies/nul.toml", '[[rule]]\nid = "nul"\nenv = { CARGO_X = "ab\\u0000c" }\n', 3, "\\u0000",
                    "rule 'nul': the value of CARGO_X contains a NUL character"),
    "unset-name": ("policies/unset.toml", '[[rule]]\nid = "u"\nunset = ["CARGO_OK", "CARGO X"]\n', 3, '"CARGO X"',
                   "rule[0].unset[1]: invalid value 'CARGO X': an environment variable name contains only letters"),
    "alias-collision": ("buildpolicy.toml", 'policies = ["policies"]\n[knobs.linker]\naliases = ["BUILDPOLICY_SCCACHE"]\n',
                        3, '"BUILDPOLICY_SCCACHE"', "environment variable BUILDPOLICY_SCCACHE would set both knob"),
    "decide-value": ("policies/decide.toml", '[[rule]]\nid = "d"\nwhen = "os == \'plan9\'"\ndecide = { sccache = "of" }\n',
                     4, '"of"', "rule d: decide.sccache = 'of' is not allowed; allowed: one of auto, on, off"),
    "duplicate-id": ("policies/dup.toml", '[[rule]]\nid = "same"\n[[rule]]\nid = "same"\n', 4, '"same"',
                     "rule id 'same' is defined twice in the project layer"),
    "knob-range": ("policies/knobs.toml", '[knobs]\nmib_per_job = 5\n', 2, "5", "knob 'mib_per_job': bad value 5"),
    "knob-default": ("policies/knobs.toml", '[knobs.jobs]\ndefault = "many"\n', 2, '"many"', "knob 'jobs': bad default 'many'"),
    "unknown-knob": ("policies/knobs.toml", '[knobs]\njbos = 4\n', 2, "jbos", "unknown knob 'jbos' (did you mean 'jobs'?)"),
    "untrusted": ("policies/path.toml", '[[rule]]\nid = "p"\nenv = { PATH = "/repo/bin" }\n', 3, "PATH",
                  "rule 'p' sets PATH, which is not a build variable"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_and_env_report_the_same_problem_at_the_same_place(cli, project, case):
    name, text, line, needle, message = CASES[case]
    path = write(project / name, text)
    where = f"{path}:{line}:{column(text, line, needle)}: {message}"
    checked = cli("check", cwd=project)
    assert checked.returncode == 1, checked.stderr
    assert where in checked.stderr, checked.stderr
    env = cli("env", cwd=project)
    assert env.returncode == 2 and env.stdout == ""
    assert where in env.stderr, env.stderr
    assert "Traceback" not in checked.stderr + env.stderr


def test_check_says_an_untrusted_item_needs_allow_and_passes_once_allowed(cli, project):
    write(project / "policies" / "path.toml", '[[rule]]\nid = "p"\nenv = { PATH = "/repo/bin" }\n')
    checked = cli("check", cwd=project)
    assert checked.returncode == 1
    assert "`env` and `exec` refuse it: the project's policy files are not trusted" in checked.stderr
    assert "run `buildpolicy allow`" in checked.stderr
    cli("allow", "-q", cwd=project, check=True)
    assert cli("check", cwd=project, check=True).stdout.startswith("ok:")


def test_check_reports_untrusted_items_with_the_other_problems(cli, project):
    write(project / "policies" / "two.toml",
          '[[rule]]\nid = "p"\nenv = { LD_PRELOAD = "/x.so" }\n[knobs]\nmib_per_job = 5\n')
    checked = cli("check", cwd=project)
    assert checked.returncode == 1
    assert "sets LD_PRELOAD" in checked.stderr and "bad value 5" in checked.stderr


def test_a_loose_policy_file_is_checked_with_a_warning_for_what_would_need_allow(cli, tmp_path):
    loose = write(tmp_path / "shared" / "team.toml", '[[rule]]\nid = "p"\nenv = { LD_PRELOAD = "/x.so" }\n')
    proc = cli("check", str(loose), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("ok: 1 file(s), 1 rule(s), 1 warning(s)")
    assert (f"warning: {loose}:3:9: rule 'p' sets LD_PRELOAD, which is not a build variable (in a project, `env` and "
            "`exec` refuse it until `buildpolicy allow`)") in proc.stderr
