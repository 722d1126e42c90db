"""A table named after no plugin is an error with a did-you-mean (issue 10, item 15).

Tables other than ``[[rule]]`` and ``[knobs]`` hold plugin options; one no
plugin reads (a typo such as ``[linkr]``, or ``[buildpolicy]`` holding what
belongs at the top level) used to be ignored without a word.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import write


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "repo"
    write(root / "buildpolicy.toml", 'policies = ["policies"]\n')
    (root / "policies").mkdir()
    return root


def test_a_misspelt_plugin_table_is_an_error_with_a_did_you_mean(cli, project):
    policy = write(project / "policies" / "linker.toml", '# the team\'s linker settings\n[linkr]\nskip_profiles = ["dev"]\n')
    for command, code in (("env", 2), ("check", 1)):
        proc = cli(command, cwd=project)
        assert proc.returncode == code and proc.stdout == "", proc.stderr
        assert f"{policy}:2:2: [linkr] is not the table of any plugin (did you mean [linker]?)" in proc.stderr
        assert "here are: actionlog, features, frontend, gate, git_meta, governor, jobs, linker," in proc.stderr  # what tables may be named


def test_buildpolicy_settings_in_a_table_say_where_they_belong(cli, project):
    profile = write(project / "buildpolicy.toml", 'policies = ["policies"]\n\n[buildpolicy]\ndefault_profile = "release"\n')
    proc = cli("check", cwd=project)
    assert proc.returncode == 1
    assert (f"{profile}:3:2: [buildpolicy] is not the table of any plugin (`default_profile` is a top-level key of "
            "buildpolicy.toml: write it above the first table") in proc.stderr


def test_tables_of_plugins_and_decisions_are_fine(cli, project, tmp_path):
    # A team plugin reading the table named after its decision, a disabled plugin's table, a built-in's.
    write(project / "tools" / "teamplug.py",
          "from buildpolicy import hookimpl\nfrom buildpolicy.model import Decision\n"
          "@hookimpl\ndef buildpolicy_decide(ctx):\n"
          "    return Decision('team', 1, 'ok', 'from a file', set_env={'CARGO_TEAM': ctx.option('team', 'greeting')})\n")
    write(project / "buildpolicy.toml",
          'policies = ["policies"]\nplugin_paths = ["tools/teamplug.py"]\ndisable_plugins = ["tmpdir"]\n'
          '[team]\ngreeting = "hi"\n[tmpdir]\nunused = 1\n[linker]\nskip_profiles = ["release-lto"]\n')
    # Untrusted, the team plugin is not loaded: its table is not reported as a typo.
    explain = cli("explain", "--format", "json", cwd=project, check=True)
    assert not any("[team]" in warning for warning in json.loads(explain.stdout)["warnings"])
    cli("allow", "-q", cwd=project, check=True)
    assert "export CARGO_TEAM='hi'" in cli("env", cwd=project, check=True).stdout.splitlines()
    assert cli("check", cwd=project, check=True).stdout.startswith("ok:")
