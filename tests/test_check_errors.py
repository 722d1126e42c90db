"""`check` reports every problem of a run at the right place (DESIGN §4, §7).

- schema errors in a file do not hide the expression errors of its other rules;
- positions inside TOML strings with escapes point at the source characters;
- `check DIR` of a project directory checks that project, never its Cargo.toml.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from buildpolicy.errors import BuildpolicyError
from buildpolicy.facts import fact_type, known_fact_names
from buildpolicy.policy.loader import _compile


def compile_errors(path: Path) -> list:
    """The diagnostics of compiling one policy file of the project layer."""
    with pytest.raises(BuildpolicyError) as info:
        _compile(None, [("project", path)], fact_type, known_fact_names())
    return info.value.messages


def where(diagnostic) -> str:
    return f"{Path(diagnostic.file).name}:{diagnostic.line}:{diagnostic.col}"


def column_of(text: str, line: int, needle: str) -> int:
    return text.splitlines()[line - 1].index(needle) + 1


# --- 2a: schema errors and expression errors together ---


def test_schema_error_in_one_rule_does_not_hide_expression_errors_of_the_others(tmp_path):
    path = tmp_path / "mixed.toml"
    path.write_text(
        '[[rule]]\nid = "schema-bad"\npriority = "5"\n'
        '[[rule]]\nid = "expr-bad"\nwhen = "memory.availabel < 4GiB"\n'
        '[[rule]]\nid = "template-bad"\nenv = { X = "${no.such.fact}" }\n'
    )
    messages = compile_errors(path)
    found = {where(m): m.message for m in messages}
    assert "mixed.toml:3:12" in found and "priority" in found["mixed.toml:3:12"]
    assert "mixed.toml:6:9" in found and "memory.available" in found["mixed.toml:6:9"]
    assert "mixed.toml:9:16" in found and "no.such.fact" in found["mixed.toml:9:16"]
    assert len(messages) == 3


def test_a_rule_with_a_schema_error_is_not_compiled(tmp_path):
    path = tmp_path / "one.toml"
    path.write_text('[[rule]]\nid = "x"\nwhen = "memory.availabel < 4GiB"\nforce = "yes"\n')
    messages = compile_errors(path)
    assert [where(m) for m in messages] == ["one.toml:4:9"]


@pytest.mark.parametrize(
    "text",
    [
        'rule = 5\n[[knobs.jobs.values]]\n',
        'rule = [5, "x", {id = 3}]\nknobs = 5\n',
        '[knobs]\nBad-Name = 1\njobs = { type = 5, values = "x" }\n[linker]\nskip = 1\n',
        '[[rule]]\nid = "a"\nenv = 5\nunset = "X"\nrustflags = 3\ndecide = []\n',
        'linker = 5\n[[rule]]\nid = "ok"\nwhen = "nope.fact"\n',
    ],
)
def test_a_partially_invalid_document_never_crashes_the_compiler(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert compile_errors(path)


def test_partially_invalid_profile_is_reported_without_a_crash(cli, tmp_path):
    root = tmp_path / "proj"
    (root / "policies").mkdir(parents=True)
    (root / "buildpolicy.toml").write_text(
        'policies = [1, "policies"]\nextends = "x"\nplugin_paths = [2]\nfeature_profiles = { a = "b" }\n'
        'default_profile = 3\n[[rule]]\nid = "r"\nwhen = "memory.availabel < 1"\n'
    )
    (root / "policies" / "p.toml").write_text('[[rule]]\nid = "p"\nwhen = "cpu.cont > 2"\n')
    proc = cli("check", cwd=root)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "buildpolicy.toml:1:" in proc.stderr
    assert "buildpolicy.toml:8:9" in proc.stderr and "memory.available" in proc.stderr
    assert "p.toml:3:9" in proc.stderr and "cpu.count" in proc.stderr


def test_check_reports_schema_and_expression_errors_of_one_file_together(cli, tmp_path):
    root = tmp_path / "proj"
    (root / "policies").mkdir(parents=True)
    (root / "buildpolicy.toml").write_text('policies = ["policies"]\n')
    (root / "policies" / "a.toml").write_text(
        '[[rule]]\nid = "a"\nwhne = "ci"\n[[rule]]\nid = "b"\nwhen = "memory.availabel < 4GiB"\n'
    )
    proc = cli("check", cwd=root)
    assert proc.returncode == 1
    assert "a.toml:3:1" in proc.stderr and "whne" in proc.stderr
    assert "a.toml:6:9" in proc.stderr and "memory.available" in proc.stderr
    assert "2 problem(s)" in proc.stderr


# --- 5: positions inside strings with escapes ---


def test_expression_error_after_an_escaped_newline_in_a_basic_string(tmp_path):
    path = tmp_path / "esc.toml"
    path.write_text('[[rule]]\nid = "a"\nwhen = "os == \'linux\' and\\nmemory.availabel < 4GiB"\n')
    [diag] = compile_errors(path)
    assert where(diag) == "esc.toml:3:28"  # the `m` of memory.availabel in the file


def test_expression_error_after_escaped_quotes(tmp_path):
    text = '[[rule]]\nid = "a"\nwhen = "env.X == \\"a\\\\b\\" and memory.availabel < 1"\n'
    path = tmp_path / "q.toml"
    path.write_text(text)
    [diag] = compile_errors(path)
    assert where(diag) == f"q.toml:3:{column_of(text, 3, 'memory.availabel')}"


def test_template_error_after_unicode_and_tab_escapes(tmp_path):
    text = '[[rule]]\nid = "a"\nenv = { X = "\\u00e9\\U0001F600\\t${no.such.fact}" }\n'
    path = tmp_path / "u.toml"
    path.write_text(text)
    [diag] = compile_errors(path)
    assert where(diag) == f"u.toml:3:{column_of(text, 3, 'no.such.fact')}"


def test_template_error_in_a_quoted_key_with_escapes(tmp_path):
    text = '[[rule]]\nid = "a"\nenv = { "A\\u0042_${no.such}" = "1" }\n'
    path = tmp_path / "k.toml"
    path.write_text(text)
    [diag] = compile_errors(path)
    assert where(diag) == f"k.toml:3:{column_of(text, 3, 'no.such')}"


def test_expression_error_after_a_line_ending_backslash(tmp_path):
    text = '[[rule]]\nid = "a"\nwhen = """os == \'linux\' and \\\n      memory.availabel < 4GiB"""\n'
    path = tmp_path / "ml.toml"
    path.write_text(text)
    [diag] = compile_errors(path)
    assert where(diag) == f"ml.toml:4:{column_of(text, 4, 'memory.availabel')}"


def test_expression_error_in_a_multiline_string_starting_with_a_newline(tmp_path):
    text = "[[rule]]\nid = \"a\"\nwhen = '''\nos == 'linux' and\n  memory.availabel < 4GiB'''\n"
    path = tmp_path / "lit.toml"
    path.write_text(text)
    [diag] = compile_errors(path)
    assert where(diag) == "lit.toml:5:3"


def test_literal_strings_map_one_to_one(tmp_path):
    text = "[[rule]]\nid = \"a\"\nwhen = 'env.X == \"a\\\\n\" and memory.availabel < 1'\n"
    path = tmp_path / "l.toml"
    path.write_text(text)
    [diag] = compile_errors(path)
    assert where(diag) == f"l.toml:3:{column_of(text, 3, 'memory.availabel')}"


def test_error_at_the_end_of_an_escaped_string_points_at_its_closing_quote(tmp_path):
    text = '[[rule]]\nid = "a"\nwhen = "os == \\"linux\\" and"\n'
    path = tmp_path / "end.toml"
    path.write_text(text)
    [diag] = compile_errors(path)
    assert where(diag) == f"end.toml:3:{len(text.splitlines()[2])}"


def test_check_cli_shows_the_source_position_of_an_escaped_string(cli, tmp_path):
    root = tmp_path / "proj"
    (root / "policies").mkdir(parents=True)
    (root / "buildpolicy.toml").write_text('policies = ["policies"]\n')
    (root / "policies" / "esc.toml").write_text('[[rule]]\nid = "a"\nwhen = "os == \'linux\' and\\nmemory.availabel < 4GiB"\n')
    proc = cli("check", cwd=root)
    assert proc.returncode == 1
    assert "esc.toml:3:28:" in proc.stderr


# --- 3: `check DIR` ---


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    (root / "team-policies").mkdir(parents=True)
    (root / "Cargo.toml").write_text('[package]\nname = "demo"\nversion = "0.1.0"\n')
    (root / "Cargo.lock").write_text("version = 3\n")
    (root / "rust-toolchain.toml").write_text('[toolchain]\nchannel = "stable"\n')
    (root / "buildpolicy.toml").write_text('policies = ["team-policies"]\n[feature_profiles]\nmini = ["--no-default-features"]\n')
    (root / "team-policies" / "a.toml").write_text('[[rule]]\nid = "team-a"\nwhen = "ci"\nenv = { CARGO_TERM_COLOR = "never" }\n')
    return root


def test_check_dir_of_a_project_checks_that_project(cli, project, tmp_path):
    proc = cli("check", str(project), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Cargo.toml" not in proc.stderr and "rust-toolchain" not in proc.stderr
    inside = cli("check", cwd=project)
    assert proc.stdout == inside.stdout  # exactly like `check` run inside it


def test_check_dir_of_a_project_finds_errors_in_its_policy_paths(cli, project, tmp_path):
    (project / "team-policies" / "b.toml").write_text('[[rule]]\nid = "b"\nwhen = "cpu.cont > 2"\n')
    proc = cli("check", str(project), cwd=tmp_path)
    assert proc.returncode == 1
    assert "team-policies/b.toml:3:9" in proc.stderr and "cpu.count" in proc.stderr
    assert "Cargo.toml" not in proc.stderr


def test_check_dir_of_a_project_uses_its_extends(cli, project, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "s.toml").write_text('[[rule]]\nid = "s"\nwhen = "memory.availabel < 1"\n')
    (project / "buildpolicy.toml").write_text(f'policies = ["team-policies"]\nextends = ["{shared}"]\n')
    proc = cli("check", str(project), cwd=tmp_path)
    assert proc.returncode == 1
    assert "shared/s.toml:3:9" in proc.stderr


def test_check_plain_dir_skips_non_policy_toml_files(cli, tmp_path):
    crate = tmp_path / "loose"
    crate.mkdir()
    (crate / "rust-toolchain.toml").write_text('[toolchain]\nchannel = "stable"\n')
    (crate / "rustfmt.toml").write_text("max_width = 100\n")
    (crate / "mine.toml").write_text('[[rule]]\nid = "m"\nwhen = "ci"\n')
    proc = cli("check", str(crate), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: 1 file(s), 1 rule(s)")


def test_check_several_paths_reports_all_problems_together(cli, project, tmp_path):
    (project / "team-policies" / "b.toml").write_text('[[rule]]\nid = "b"\nwhen = "cpu.cont > 2"\n')
    loose = tmp_path / "loose.toml"
    loose.write_text('[[rule]]\nid = "l"\nwhen = "os =="\n')
    proc = cli("check", str(project), str(loose), cwd=tmp_path)
    assert proc.returncode == 1
    assert "b.toml:3:9" in proc.stderr and "loose.toml:3:" in proc.stderr
    assert "2 problem(s)" in proc.stderr
