"""TOML positions (buildpolicy.policy.tomlpos) and schema validation with file:line:col
(buildpolicy.policy.validate)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from buildpolicy.errors import BuildpolicyError, Diagnostic
from buildpolicy.policy.tomlpos import TomlDocument, TomlSyntaxError, parse_toml
from buildpolicy.policy.validate import toml_path, validate_document

FIXTURES = Path(__file__).parent / "fixtures" / "validate"


def doc(text: str, path: str = "t.toml") -> TomlDocument:
    return parse_toml(path, textwrap.dedent(text).lstrip("\n"))


def where(text: str, needle: str, nth: int = 0, offset: int = 0) -> tuple[int, int]:
    """(line, col) of the nth occurrence of needle in text (dedented like doc())."""
    text = textwrap.dedent(text).lstrip("\n")
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    index += offset
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def leaf_paths(value, prefix=()):
    """Every key path of a tomllib value, tables and arrays included."""
    if isinstance(value, dict):
        for key, sub in value.items():
            yield prefix + (key,)
            yield from leaf_paths(sub, prefix + (key,))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield prefix + (index,)
            yield from leaf_paths(sub, prefix + (index,))


def assert_every_path_recorded(d: TomlDocument) -> None:
    d.key_pos(())  # run the scanner
    missing = [p for p in leaf_paths(d.data) if p not in d._keys or p not in d._values]
    assert missing == []


# --------------------------------------------------------------------------- parse_toml


def test_parse_returns_data_and_path(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('a = 1\n[b]\nc = "x"\n', encoding="utf-8")
    d = parse_toml(f)
    assert d.data == {"a": 1, "b": {"c": "x"}}
    assert d.path == str(f)
    assert d.key_pos(("b", "c")) == (3, 1)
    assert d.value_pos(("b", "c")) == (3, 5)


def test_text_argument_wins_over_the_file(tmp_path):
    d = parse_toml(tmp_path / "absent.toml", "x = 1\n")
    assert d.data == {"x": 1}
    assert d.path == str(tmp_path / "absent.toml")


def test_malformed_toml_fixture_is_located():
    path = FIXTURES / "malformed.toml"
    with pytest.raises(TomlSyntaxError) as info:
        parse_toml(path)
    diag = info.value.diagnostic
    assert (diag.file, diag.line, diag.col) == (str(path), 4, 6)
    assert str(diag).startswith(f"{path}:4:6: invalid TOML: ")
    assert "=" in diag.message
    # A user's mistake: printed without a traceback, exit code 2.
    assert isinstance(info.value, BuildpolicyError)
    assert info.value.exit_code == 2
    assert info.value.diagnostics == [diag]


@pytest.mark.parametrize(
    "text, line, col",
    [
        ('a = 1\na = 2\n', 2, 6),  # duplicate key
        ('[t]\nx = "unterminated\n', 2, 18),
        ("x = [1, 2\n", 2, 1),  # at end of document
        ('x = """never closed\n\n', 3, 1),
        ("  [t\n", 1, 5),
    ],
)
def test_malformed_toml_positions(text, line, col):
    with pytest.raises(TomlSyntaxError) as info:
        parse_toml("bad.toml", text)
    d = info.value.diagnostic
    assert (d.file, d.line, d.col) == ("bad.toml", line, col)
    assert d.message.startswith("invalid TOML: ")


def test_byte_order_mark_is_tolerated(tmp_path):
    f = tmp_path / "bom.toml"
    f.write_bytes(b"\xef\xbb\xbfa = 1\nb = 2\n")
    d = parse_toml(f)
    assert d.data == {"a": 1, "b": 2}
    assert d.key_pos(("b",)) == (2, 1)
    assert parse_toml("t.toml", "\ufeffa = 1\n").key_pos(("a",)) == (1, 1)


def test_file_that_is_not_utf8(tmp_path):
    f = tmp_path / "latin1.toml"
    f.write_bytes(b'a = 1\nb = "caf\xe9"\n')
    with pytest.raises(TomlSyntaxError) as info:
        parse_toml(f)
    d = info.value.diagnostic
    assert (d.line, d.col) == (2, 9)
    assert "UTF-8" in d.message


def test_importing_does_not_import_jsonschema():
    code = "import sys, buildpolicy.policy.tomlpos, buildpolicy.policy.validate; print('jsonschema' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- positions


def test_tables_and_subtables():
    text = """
    top = 1
    [server]
    host = "h"
      [server.tls]
      cert = 'c'
    """
    d = doc(text)
    assert d.key_pos(("top",)) == (1, 1)
    assert d.value_pos(("top",)) == (1, 7)
    assert d.key_pos(("server",)) == (2, 2)  # the name in the header
    assert d.value_pos(("server",)) == (2, 1)  # the header itself
    assert d.key_pos(("server", "tls")) == where(text, "tls")
    assert d.value_pos(("server", "tls")) == (4, 3)
    assert d.key_pos(("server", "tls", "cert")) == (5, 3)
    assert d.value_pos(("server", "tls", "cert")) == (5, 10)
    assert_every_path_recorded(d)


def test_header_with_spaces_and_quoted_segments():
    text = """
    [ a . "b.c" . 'd' ]
    k = 1
    """
    d = doc(text)
    assert d.data == {"a": {"b.c": {"d": {"k": 1}}}}
    assert d.key_pos(("a",)) == (1, 3)
    assert d.key_pos(("a", "b.c")) == (1, 7)
    assert d.key_pos(("a", "b.c", "d")) == (1, 15)
    assert d.key_pos(("a", "b.c", "d", "k")) == (2, 1)


def test_dotted_keys():
    text = """
    a.b.c = 1
    a . d = "x"
    [t]
    x.y = true
    """
    d = doc(text)
    assert d.key_pos(("a",)) == (1, 1)
    assert d.key_pos(("a", "b")) == (1, 3)
    assert d.key_pos(("a", "b", "c")) == (1, 5)
    assert d.value_pos(("a", "b", "c")) == (1, 9)
    assert d.key_pos(("a", "d")) == (2, 5)
    assert d.value_pos(("a", "d")) == (2, 9)
    assert d.key_pos(("t", "x", "y")) == (4, 3)
    assert_every_path_recorded(d)


def test_quoted_key_containing_a_dot_is_one_key():
    text = """
    "x.y" = 1
    'lit.key' = 2
    "esc\\u0041" = 3
    [env]
    "CARGO_PROFILE_${cargo.profile_env}_INCREMENTAL" = "true"
    """
    d = doc(text)
    assert d.data["x.y"] == 1 and d.data["escA"] == 3
    assert d.key_pos(("x.y",)) == (1, 1)
    assert d.value_pos(("x.y",)) == (1, 9)
    assert d.key_pos(("lit.key",)) == (2, 1)
    assert d.key_pos(("escA",)) == (3, 1)
    assert d.key_pos(("env", "CARGO_PROFILE_${cargo.profile_env}_INCREMENTAL")) == (5, 1)
    assert d.value_pos(("env", "CARGO_PROFILE_${cargo.profile_env}_INCREMENTAL")) == (5, 52)
    # "x.y" is not the table x with key y
    assert ("x",) not in d._keys
    assert_every_path_recorded(d)


def test_array_of_tables_counts_indices():
    text = """
    [[rule]]
    id = "a"

    [[rule]]
    id = "b"
    [rule.env]
    A = "1"

      [[rule]]
      id = "c"
    """
    d = doc(text)
    assert d.key_pos(("rule",)) == (1, 3)
    assert d.key_pos(("rule", 0)) == (1, 1)
    assert d.key_pos(("rule", 1)) == (4, 1)
    assert d.key_pos(("rule", 2)) == (9, 3)
    assert d.value_pos(("rule", 2)) == (9, 3)
    assert d.key_pos(("rule", 1, "id")) == (5, 1)
    assert d.value_pos(("rule", 2, "id")) == (10, 8)
    assert d.key_pos(("rule", 1, "env")) == (6, 7)
    assert d.key_pos(("rule", 1, "env", "A")) == (7, 1)
    assert_every_path_recorded(d)


def test_nested_arrays_of_tables():
    text = """
    [[fruit]]
    name = "apple"
    [fruit.physical]
    color = "red"
    [[fruit.variety]]
    name = "red delicious"
    [[fruit.variety]]
    name = "granny smith"
    [[fruit]]
    name = "banana"
    [[fruit.variety]]
    name = "plantain"
    """
    d = doc(text)
    assert d.data["fruit"][1]["variety"][0]["name"] == "plantain"
    assert d.key_pos(("fruit", 0, "physical", "color")) == (4, 1)
    assert d.key_pos(("fruit", 0, "variety", 1, "name")) == (8, 1)
    assert d.key_pos(("fruit", 1, "variety", 0)) == (11, 1)
    assert d.key_pos(("fruit", 1, "variety", 0, "name")) == (12, 1)
    assert_every_path_recorded(d)


def test_inline_tables_nested():
    text = """
    env = { A = "1", "B.C" = "2", 'D' = { E = 3, f.g = 4 } }
    """
    d = doc(text)
    assert d.value_pos(("env",)) == (1, 7)
    assert d.key_pos(("env", "A")) == (1, 9)
    assert d.value_pos(("env", "A")) == (1, 13)
    assert d.key_pos(("env", "B.C")) == (1, 18)
    assert d.value_pos(("env", "B.C")) == (1, 26)
    assert d.key_pos(("env", "D")) == (1, 31)
    assert d.value_pos(("env", "D")) == (1, 37)
    assert d.key_pos(("env", "D", "E")) == (1, 39)
    assert d.key_pos(("env", "D", "f", "g")) == (1, 48)
    assert d.value_pos(("env", "D", "f", "g")) == (1, 52)
    assert_every_path_recorded(d)


def test_multiline_array_of_inline_tables():
    text = """
    rule = [
      { id = "a", env = { X = "1" } },  # first
      # a comment line, with [brackets] and {braces}
      {   id = "b" },
      { id = "c", rustflags = [
          "-C",
          "opt-level=3",
        ] },
    ]
    after = 1
    """
    d = doc(text)
    assert d.value_pos(("rule",)) == (1, 8)
    assert d.key_pos(("rule", 0)) == (2, 3)
    assert d.key_pos(("rule", 0, "env", "X")) == (2, 23)
    assert d.value_pos(("rule", 1)) == (4, 3)
    assert d.key_pos(("rule", 1, "id")) == (4, 7)
    assert d.key_pos(("rule", 2, "rustflags")) == (5, 15)
    assert d.value_pos(("rule", 2, "rustflags", 0)) == (6, 7)
    assert d.key_pos(("rule", 2, "rustflags", 1)) == (7, 7)
    assert d.key_pos(("after",)) == (10, 1)
    assert_every_path_recorded(d)


def test_arrays_spanning_lines_and_nested_arrays():
    text = """
    a = [ [1, 2], [ "x", 'y' ],
          [],
          [ { k = [3] } ] ]  # comment ]
    b = 2
    """
    d = doc(text)
    assert d.value_pos(("a", 0, 1)) == (1, 11)
    assert d.value_pos(("a", 1, 1)) == (1, 22)
    assert d.value_pos(("a", 2)) == (2, 7)
    assert d.key_pos(("a", 3, 0, "k")) == (3, 11)
    assert d.value_pos(("a", 3, 0, "k", 0)) == (3, 16)
    assert d.key_pos(("b",)) == (4, 1)
    assert_every_path_recorded(d)


def test_multiline_strings_with_tricky_content():
    text = '''
    a = """
    not a key = 1
    [not.a.table]
    \\""" still inside # not a comment
    ends with two quotes"""""
    b = \'\'\'
    x = { [ # "
    ends with one quote\'\'\'\'
    c = "#{[=" # real comment = [
    d = 'it"s' # hmm
    '''
    d = doc(text)
    assert d.data["a"].endswith('two quotes""')
    assert d.data["b"].endswith("one quote'")
    assert set(d.data) == {"a", "b", "c", "d"}
    assert d.key_pos(("b",)) == (6, 1)
    assert d.value_pos(("b",)) == (6, 5)
    assert d.key_pos(("c",)) == (9, 1)
    assert d.value_pos(("c",)) == (9, 5)
    assert d.key_pos(("d",)) == (10, 1)
    assert_every_path_recorded(d)


def test_strings_with_special_characters_and_escapes():
    text = r"""
    a = "has # and = and [ and { and \" quote"  # comment "
    b = 'C:\path\# [x]'
    "k = [" = { "}" = "{" }
    c = 1
    """
    d = doc(text)
    assert d.data["k = ["] == {"}": "{"}
    assert d.key_pos(("b",)) == (2, 1)
    assert d.key_pos(("k = [",)) == (3, 1)
    assert d.key_pos(("k = [", "}")) == (3, 13)
    assert d.value_pos(("k = [", "}")) == (3, 19)
    assert d.key_pos(("c",)) == (4, 1)
    assert_every_path_recorded(d)


def test_other_scalars_and_dates():
    text = """
    i = +1_000
    f = -3.5e+2
    h = 0xDEAD_beef
    inf_ = -inf
    odt = 1979-05-27 07:32:00Z
    ldt = 1979-05-27T07:32:00
    ld = 1979-05-27
    lt = 07:32:00.999
    arr = [1979-05-27 07:32:00, true]
    last = false
    """
    d = doc(text)
    assert d.key_pos(("ldt",)) == (6, 1)
    assert d.value_pos(("arr", 1)) == (9, 29)
    assert d.key_pos(("last",)) == (10, 1)
    assert_every_path_recorded(d)


def test_crlf_line_endings_and_tabs():
    d = parse_toml("w.toml", '[t]\r\n\tk\t=\t"v"\r\n[[r]]\r\nx = 1\r\n')
    assert d.key_pos(("t", "k")) == (2, 2)
    assert d.value_pos(("t", "k")) == (2, 6)
    assert d.key_pos(("r", 0, "x")) == (4, 1)


def test_unicode_counts_characters():
    d = doc('name = "héllo wörld"  \nnext = 1\n"ключ" = "значение"\n')
    assert d.key_pos(("next",)) == (2, 1)
    assert d.value_pos(("ключ",)) == (3, 10)


def test_fallback_to_nearest_recorded_ancestor():
    text = """
    [[rule]]
    id = "x"
    env = { A = "1" }
    """
    d = doc(text)
    assert d.key_pos(("rule", 0, "when")) == (1, 1)  # no such key: the [[rule]] header
    assert d.value_pos(("rule", 0, "env", "B")) == (3, 7)
    assert d.key_pos(("rule", 5, "id")) == (1, 3)
    assert d.key_pos(("nothing", "here")) is None
    assert d.value_pos(()) is None


def test_first_definition_wins_over_later_implicit_mentions():
    text = """
    [a.b]
    x = 1
    [a]
    y = 2
    """
    d = doc(text)
    assert d.key_pos(("a",)) == (3, 2)  # explicit [a] beats the implicit prefix in [a.b]
    assert d.key_pos(("a", "b")) == (1, 4)


def test_documented_policy_example_records_every_path():
    assert_every_path_recorded(parse_toml(FIXTURES / "valid_policy.toml"))
    assert_every_path_recorded(parse_toml(FIXTURES / "valid_profile.toml"))


# --------------------------------------------------------------------------- validation


def located(diagnostics: list[Diagnostic]) -> list[tuple[int, int]]:
    return [(d.line, d.col) for d in diagnostics]


def test_valid_documents_have_no_diagnostics():
    assert validate_document(parse_toml(FIXTURES / "valid_policy.toml"), "policy") == []
    assert validate_document(parse_toml(FIXTURES / "valid_profile.toml"), "profile") == []


def test_unknown_rule_key_points_at_the_key():
    path = FIXTURES / "unknown_rule_key.toml"
    [diag] = validate_document(parse_toml(path), "policy")
    assert diag.location() == f"{path}:7:1"
    assert diag.message.startswith("unknown key 'whne' in rule 'fast-linker'; did you mean 'when'? (allowed: id, description, when, ")
    assert str(diag).startswith(f"{path}:7:1: unknown key 'whne'")


def test_unknown_key_without_a_close_match_has_no_suggestion():
    [diag] = validate_document(doc('[[rule]]\nid = "x"\nzzzzzz = 1\n'), "policy")
    assert (diag.line, diag.col) == (3, 1)
    assert "did you mean" not in diag.message
    assert "allowed: id, description, when, knob, status, env, unset, decide, rustflags, priority, force, enabled" in diag.message


def test_env_value_that_is_a_number_says_to_quote_it():
    path = FIXTURES / "env_number.toml"
    [diag] = validate_document(parse_toml(path), "policy")
    assert diag.location() == f"{path}:6:29"
    assert diag.message == 'rule[1].env.CARGO_INCREMENTAL: expected a string, got integer 1; quote it: "1"'


def test_type_error_points_at_the_value():
    [diag] = validate_document(doc('[[rule]]\nid = "x"\npriority = "5"\n'), "policy")
    assert (diag.line, diag.col) == (3, 12)
    assert diag.message == "rule[0].priority: expected an integer, got string '5'"


def test_missing_id_points_at_the_rule_header():
    path = FIXTURES / "missing_id.toml"
    [diag] = validate_document(parse_toml(path), "policy")
    assert diag.location() == f"{path}:4:3"
    assert diag.message == "rule[1]: missing required key 'id'"


def test_missing_id_in_an_inline_rule_points_at_the_brace():
    [diag] = validate_document(doc('rule = [\n  { id = "a" },\n  { when = "ci" },\n]\n'), "policy")
    assert (diag.line, diag.col) == (3, 3)
    assert diag.message == "rule[1]: missing required key 'id'"


def test_all_errors_are_reported_together_in_file_order():
    path = FIXTURES / "many_errors.toml"
    diags = validate_document(parse_toml(path), "policy")
    assert [(d.line, d.col, d.message.split(":")[0]) for d in diags] == [
        (2, 1, "unknown key 'verbose' at top level (allowed"),
        (6, 12, "rule[0].priority"),
        (7, 9, "rule[0].force"),
        (9, 1, "rule[1]"),
        (11, 27, "rule[1].unset[1]"),
        (15, 60, 'rule[2].env."CARGO_PROFILE_${cargo.profile_env}_INCREMENTAL"'),
        (16, 22, "rule[2].decide.sccache"),
        (17, 1, "unknown key 'rustflag' in rule 'three'; did you mean 'rustflags'? (allowed"),
        (20, 1, "knobs.Jobs"),
        (23, 33, "knobs.linker.aliases[1]"),
        (24, 8, "knobs.linker.type"),
    ]
    assert all(d.file == str(path) for d in diags)
    messages = {d.message.split(":")[0]: d.message for d in diags}
    assert messages["rule[0].force"] == "rule[0].force: expected a boolean (true or false), got string 'yes'"
    assert messages["rule[1]"] == "rule[1]: missing required key 'id'"
    assert messages["rule[1].unset[1]"].startswith("rule[1].unset[1]: expected a string, got integer 7")
    assert "invalid knob name 'Jobs'" in messages["knobs.Jobs"]
    assert "invalid value '9LIVES'" in messages["knobs.linker.aliases[1]"]
    assert messages["knobs.linker.type"].endswith("did you mean 'enum'?")
    assert "expected a string, an integer or a boolean" in messages["rule[2].decide.sccache"]


def test_profile_errors():
    path = FIXTURES / "profile_errors.toml"
    diags = validate_document(parse_toml(path), "profile")
    assert [str(d) for d in diags] == [
        f"{path}:2:1: unknown key 'polices' at top level; did you mean 'policies'? (allowed: policies, "
        "default_profile, extends, plugin_paths, disable_plugins, feature_profiles, knobs, rule; "
        "any other top-level name must be a [table] of plugin options)",
        f'{path}:3:19: default_profile: expected a string, got integer 1; quote it: "1"',
        f'{path}:4:11: extends: expected an array, got string \'pack:acme\'; write it as a list: ["pack:acme"]',
        f"{path}:7:11: feature_profiles.minimal: expected an array, got string '--no-default-features'; "
        'write it as a list: ["--no-default-features"]',
        f"{path}:10:1: unknown key 'alias' in knobs.linker; did you mean 'aliases'? (allowed: aliases, value_aliases, "
        "type, values, default, minimum, description)",
    ]


def test_profile_only_keys_are_unknown_in_a_policy_file():
    diags = validate_document(doc('policies = ["p"]\ndefault_profile = "dev"\n'), "policy")
    assert located(diags) == [(1, 1), (2, 1)]
    assert diags[0].message.startswith("unknown key 'policies' at top level")


def test_plugin_option_tables_are_free_form():
    text = """
    [linker]
    skip_profiles = ["release-lto"]
    anything = { goes = [1, 2.5, true] }
    [remote.hosts.extra]
    x = 1
    """
    assert validate_document(doc(text), "policy") == []
    assert validate_document(doc(text), "profile") == []


def test_rule_written_as_a_single_table():
    [diag] = validate_document(doc('[rule]\nid = "x"\n'), "policy")
    assert (diag.line, diag.col) == (1, 1)
    assert diag.message == "rule: expected an array of tables ([[rule]] headers), got a table"


def test_knob_values_and_declarations():
    text = """
    [knobs]
    jobs = 4
    ratio = 0.5
    hosts = ["a", "b"]
    bad_list = [[1]]
    when_ = 1979-05-27

    [knobs.linker]
    aliases = ["OK", "NOT-OK"]
    values = []
    minimum = "1"
    default = { a = 1 }
    """
    diags = validate_document(doc(text), "profile")
    assert [str(d) for d in diags] == [
        "t.toml:5:13: knobs.bad_list[0]: expected a string, a number or a boolean (true or false), got an array",
        "t.toml:6:9: knobs.when_: expected a string, a number, a boolean (true or false) or an array, got date 1979-05-27",
        "t.toml:9:18: knobs.linker.aliases[1]: invalid value 'NOT-OK': an environment variable name contains "
        "only letters, digits and '_' and does not start with a digit",
        "t.toml:10:10: knobs.linker.values: the array needs at least 1 item(s)",
        "t.toml:11:11: knobs.linker.minimum: expected a number, got string '1'",
        "t.toml:12:11: knobs.linker.default: expected a string, a number, a boolean (true or false) or an array, got a table",
    ]


def test_bad_rule_id_and_knob_name_patterns():
    text = """
    [[rule]]
    id = "has space"
    knob = "LowMemory"
    """
    diags = validate_document(doc(text), "policy")
    assert located(diags) == [(2, 6), (3, 8)]
    assert diags[0].message.startswith("rule[0].id: invalid value 'has space': a rule id starts with")
    assert diags[1].message.startswith("rule[0].knob: invalid value 'LowMemory': a knob name starts with")


def test_empty_env_name():
    [diag] = validate_document(doc('[[rule]]\nid = "x"\nenv = { "" = "v" }\n'), "policy")
    assert (diag.line, diag.col) == (3, 9)
    assert diag.message == "rule[0].env.\"\": invalid key '': a key must not be empty"


def test_diagnostics_never_dump_the_schema():
    diags = validate_document(parse_toml(FIXTURES / "many_errors.toml"), "policy")
    for d in diags:
        assert "\n" not in str(d)
        assert "Failed validating" not in d.message and "$defs" not in d.message


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown document kind"):
        validate_document(doc("a = {}\n"), "cargo")


def test_validator_is_cached():
    from buildpolicy.policy import validate

    validate_document(doc("[x]\n"), "policy")
    first = validate._validators["policy"]
    validate_document(doc("[y]\n"), "policy")
    assert validate._validators["policy"] is first


@pytest.mark.parametrize(
    "keypath, expected",
    [
        ((), "top level"),
        (("rule", 2, "env", "FOO"), "rule[2].env.FOO"),
        (("knobs", "linker", "aliases", 1), "knobs.linker.aliases[1]"),
        (("env", "A.B"), 'env."A.B"'),
        (("env", "${x}"), 'env."${x}"'),
    ],
)
def test_toml_path(keypath, expected):
    assert toml_path(keypath) == expected


# --------------------------------------------------------------------------- property test

try:
    import tomlkit
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a test extra
    given = None

if given is not None:
    _keys = st.text(alphabet=st.sampled_from("ab_-.# =[]{}\"'\\é1"), min_size=1, max_size=6)
    _strings = st.text(alphabet=st.sampled_from("ab #=[]{},\"'\\\nx\t"), max_size=12)
    _scalars = st.one_of(st.integers(-5, 5), st.booleans(), _strings, st.floats(allow_nan=False, allow_infinity=False))
    _values = st.recursive(
        _scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)),
        max_leaves=12,
    )
    _documents = st.dictionaries(_keys, _values, max_size=4)
else:  # pragma: no cover
    def given(*_a):
        return pytest.mark.skip(reason="hypothesis is not installed")

    def settings(**_k):
        return lambda f: f

    _documents = None


@settings(max_examples=150, deadline=None)
@given(_documents)
def test_every_path_of_generated_toml_is_recorded(data):
    text = tomlkit.dumps(data)
    d = parse_toml("gen.toml", text)
    assert d.data == data
    assert_every_path_recorded(d)
    lines = text.split("\n")

    def char_at(pos):
        line, col = pos
        return lines[line - 1][col - 1]

    def value_at(path):
        value = d.data
        for part in path:
            value = value[part]
        return value

    for path in leaf_paths(d.data):
        value = value_at(path)
        first = char_at(d.value_pos(path))
        if isinstance(value, str):
            assert first in "\"'", (path, first)
        elif isinstance(value, list):
            assert first == "[", (path, first)
        elif isinstance(value, dict):
            assert first in "{[" or isinstance(path[-1], str), (path, first)
        else:
            assert first in "0123456789+-tfin", (path, first)
        if isinstance(path[-1], str):
            key_char = char_at(d.key_pos(path))
            assert key_char in "\"'" or path[-1].startswith(key_char), (path, key_char)
