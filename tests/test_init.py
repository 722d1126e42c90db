"""`buildpolicy init`: a profile, policies and test cases that `check` and `test` accept; nothing overwritten."""

from __future__ import annotations

import json
from pathlib import Path

from buildpolicy.data import schema_dir

REPO = Path(__file__).resolve().parent.parent
CREATED = [
    "buildpolicy.toml",
    "policies/project.toml",
    "policies/tests/example.toml",
    ".buildpolicy/schema/profile.schema.json",
    ".buildpolicy/schema/policy.schema.json",
    ".buildpolicy/schema/tests.schema.json",
]


def test_init_scaffolds_a_project_that_check_and_test_accept(cli, tmp_path):
    root = tmp_path / "new"
    proc = cli("init", str(root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in CREATED:
        assert (root / name).is_file(), name
        assert f"created new/{name}" in proc.stdout
    assert not (root / ".envrc").exists()
    check = cli("check", cwd=root)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("ok: ")
    test = cli("test", cwd=root)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "2 case(s): 2 passed, 0 failed" in test.stdout
    # And the project is usable at once: no trust needed for its example rule.
    env = cli("env", cwd=root, env={"CI": "true"}, check=True)
    assert "export CARGO_TERM_PROGRESS_WHEN='never'" in env.stdout.splitlines()


def test_schema_lines_point_at_the_vendored_copies(cli, tmp_path):
    cli("init", cwd=tmp_path, check=True)
    for name, kind in (("buildpolicy.toml", "profile"), ("policies/project.toml", "policy"),
                       ("policies/tests/example.toml", "tests")):
        path = tmp_path / name
        first = path.read_text().splitlines()[0]
        assert first.startswith("#:schema ")
        target = (path.parent / first.split(" ", 1)[1]).resolve()
        assert target == (tmp_path / ".buildpolicy" / "schema" / f"{kind}.schema.json").resolve()
        assert json.loads(target.read_text()) == json.loads((schema_dir() / f"{kind}.schema.json").read_text())


def test_example_rule_is_commented_and_the_second_example_is_off(cli, tmp_path):
    cli("init", cwd=tmp_path, check=True)
    text = (tmp_path / "policies" / "project.toml").read_text()
    assert text.count("\n[[rule]]\n") == 1 and "# [[rule]]\n" in text
    explain = json.loads(cli("explain", "--format", "json", cwd=tmp_path, check=True).stdout)
    assert [r["id"] for r in explain["rules"] if r["layer"] == "project"] == ["ci-no-progress-bars"]


def test_init_never_overwrites(cli, tmp_path):
    (tmp_path / "buildpolicy.toml").write_text("# mine\n")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "project.toml").write_text("# also mine\n")
    proc = cli("init", "--direnv", cwd=tmp_path, check=True)
    assert "kept    buildpolicy.toml" in proc.stdout and "kept    policies/project.toml" in proc.stdout
    assert "created policies/tests/example.toml" in proc.stdout and "created .envrc" in proc.stdout
    assert (tmp_path / "buildpolicy.toml").read_text() == "# mine\n"
    assert (tmp_path / "policies" / "project.toml").read_text() == "# also mine\n"
    again = cli("init", "--direnv", cwd=tmp_path, check=True)
    assert "created" not in again.stdout


def test_envrc_is_the_documented_example(cli, tmp_path):
    cli("init", "--direnv", "-q", cwd=tmp_path, check=True)
    assert (tmp_path / ".envrc").read_text() == (REPO / "examples" / "direnv" / ".envrc").read_text()


def test_init_into_a_file_is_an_error(cli, tmp_path):
    (tmp_path / "afile").write_text("")
    proc = cli("init", "afile", cwd=tmp_path)
    assert proc.returncode == 2 and "not a directory" in proc.stderr and proc.stdout == ""
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "policies").write_text("")  # a file where the directory goes
    proc = cli("init", "p", cwd=tmp_path)
    assert proc.returncode == 2 and "cannot create" in proc.stderr and "Traceback" not in proc.stderr
