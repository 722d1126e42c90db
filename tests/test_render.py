"""Exact text of every output format of buildpolicy.output.render (DESIGN §7 "env output").

Real shells evaluating the sh output are exercised in test_render_shells.py;
here we pin the bytes, the validation and the file formats' round trips.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buildpolicy.errors import EXIT_USAGE, BuildpolicyError
from buildpolicy.output.render import (
    FORMATS,
    FORMATS_WITHOUT_UNSET,
    SHELLS,
    check_name,
    check_value,
    render_env,
)

ENV = {"B_VAR": "it's", "A_VAR": "plain", "D_VAR": "two\nlines\n"}
UNSET = ["C_VAR", "E_VAR"]


def test_constants():
    assert SHELLS == ("bash", "zsh", "fish", "posix", "powershell")
    assert FORMATS == ("sh", "json", "dotenv", "github")
    assert FORMATS_WITHOUT_UNSET == ("dotenv", "github")


# -- sh -----------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "posix"])
def test_posix_shells_exact(shell):
    # One merged list sorted by name: sets and unsets interleave.
    assert render_env(ENV, UNSET, shell=shell) == (
        "export A_VAR='plain'\n"
        "export B_VAR='it'\\''s'\n"
        "unset C_VAR\n"
        "export D_VAR='two\nlines\n'\n"
        "unset E_VAR\n"
    )


def test_default_is_bash_sh():
    assert render_env(ENV, UNSET) == render_env(ENV, UNSET, shell="bash", fmt="sh")


def test_fish_exact():
    assert render_env(ENV, UNSET, shell="fish") == (
        "set -gx A_VAR 'plain';\n"
        "set -gx B_VAR 'it\\'s';\n"
        "set -e C_VAR; or true;\n"
        "set -gx D_VAR 'two'\\n'lines'\\n'';\n"
        "set -e E_VAR; or true;\n"
    )


def test_powershell_exact():
    assert render_env(ENV, UNSET, shell="powershell") == (
        "$Env:A_VAR = 'plain'\n"
        "$Env:B_VAR = 'it''s'\n"
        "Remove-Item Env:C_VAR -ErrorAction SilentlyContinue\n"
        "$Env:D_VAR = 'two\nlines\n'\n"
        "Remove-Item Env:E_VAR -ErrorAction SilentlyContinue\n"
    )


def test_posix_quoting_leaves_everything_but_quote_alone():
    value = "a\\b $(x) `y` $HOME ${Z} !! %s \"q\" \t é😀"
    assert render_env({"V": value}, ()) == f"export V='{value}'\n"
    assert render_env({"V": "'"}, ()) == "export V=''\\'''\n"
    assert render_env({"V": ""}, ()) == "export V=''\n"


def test_fish_escapes_backslashes_quotes_and_line_breaks_only():
    assert render_env({"V": "a\\b'c\\"}, (), shell="fish") == "set -gx V 'a\\\\b\\'c\\\\';\n"
    # Everything else, including what fish would expand outside quotes, is literal,
    # except a line break, which `eval (...)` would split: an unquoted \n between quotes.
    value = "$x (cmd) {a,b} * ~ \" \t é"
    assert render_env({"V": value}, (), shell="fish") == f"set -gx V '{value}';\n"
    assert render_env({"V": "a\nb"}, (), shell="fish") == "set -gx V 'a'\\n'b';\n"


def test_powershell_doubles_every_single_quote_character():
    # PowerShell accepts U+2018..U+201B as single quotes too.
    value = "a'b\u2018c\u2019d\u201ae\u201bf"
    expected = "$Env:V = 'a''b\u2018\u2018c\u2019\u2019d\u201a\u201ae\u201b\u201bf'\n"
    assert render_env({"V": value}, (), shell="powershell") == expected
    # Double quotes, $ and backticks mean nothing inside '...'.
    assert render_env({"V": '"$x`n'}, (), shell="powershell") == "$Env:V = '\"$x`n'\n"


def _powershell_unquote(literal: str) -> str:
    """Decode one PowerShell single-quoted literal the way its tokenizer does."""
    quotes = "'\u2018\u2019\u201a\u201b"
    assert literal[0] in quotes
    out, i = [], 1
    while True:
        char = literal[i]
        if char in quotes:
            if i + 1 < len(literal) and literal[i + 1] in quotes:
                out.append(literal[i + 1])
                i += 2
                continue
            assert i == len(literal) - 1, "string ended before the end of the line"
            return "".join(out)
        out.append(char)
        i += 1


_PS_LINE = re.compile(r"\$Env:([A-Za-z_][A-Za-z0-9_]*) = ('.*')\Z", re.S)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("a'\u2018\u2019\u201a\u201b\"$`\n ")))
def test_powershell_structure_round_trips(value):
    # pwsh is not available here: check the text's structure instead.
    text = render_env({"V": value, "W": "x"}, ["U"], shell="powershell")
    first, _, rest = text.partition("\n$Env:W")
    assert first.startswith("Remove-Item Env:U -ErrorAction SilentlyContinue\n")
    statement = first.split("\n", 1)[1]
    match = _PS_LINE.match(statement)
    assert match and match.group(1) == "V"
    assert _powershell_unquote(match.group(2)) == value
    assert rest == " = 'x'\n"


def test_empty_environment_is_empty_text():
    for shell in SHELLS:
        assert render_env({}, [], shell=shell) == ""
    assert render_env({}, [], fmt="dotenv") == ""
    assert render_env({}, [], fmt="github") == ""
    # Only unsets, in formats that cannot express them: nothing at all.
    assert render_env({}, ["X"], fmt="dotenv") == ""
    assert render_env({}, ["X"], fmt="github") == ""


def test_unset_duplicates_collapse_and_iterables_work():
    assert render_env({}, iter(["B", "A", "B"])) == "unset A\nunset B\n"


def test_sorting_is_by_codepoint():
    text = render_env({"b": "1", "B": "2", "_x": "3", "a1": "4"}, ["A"])
    names = [line.split()[1].split("=")[0] for line in text.splitlines()]
    assert names == ["A", "B", "_x", "a1", "b"]


# -- json ---------------------------------------------------------------------


def test_json_exact():
    text = render_env({"B": "é\n", "A": "1"}, ["Z", "C"], fmt="json")
    assert text == '{"set": {"A": "1", "B": "é\\n"}, "unset": ["C", "Z"]}\n'
    assert json.loads(text) == {"set": {"A": "1", "B": "é\n"}, "unset": ["C", "Z"]}


def test_json_empty_is_still_a_document():
    assert render_env({}, [], fmt="json") == '{"set": {}, "unset": []}\n'


def test_json_ignores_shell():
    assert render_env(ENV, UNSET, shell="fish", fmt="json") == render_env(ENV, UNSET, fmt="json")


# -- dotenv -------------------------------------------------------------------


def test_dotenv_exact():
    text = render_env({"B": 'a"b\\c$d\ne\rf\tg\'h é', "A": "", "C": "plain $HOME # x", "D": "${HOME}"}, ["E"],
                      fmt="dotenv")
    assert text == ("A=''\n"
                    'B="a\\"b\\\\c$d\\ne\\rf\tg\'h é"\n'
                    "C='plain $HOME # x'\n"
                    'D="${:-$}{HOME}"\n')


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from('ab\\"$\n\r\t\'# =é{}:-')))
def test_dotenv_one_line_per_variable_and_round_trips(value):
    from dotenv import dotenv_values

    text = render_env({"V": value}, [], fmt="dotenv")
    assert text.endswith("\n") and text.count("\n") == 1 and "\r" not in text
    name, _, literal = text[:-1].partition("=")
    assert name == "V"
    # No unescaped quote inside: the value cannot end early.
    assert re.fullmatch(r"'[^']*'", literal) or re.fullmatch(r'"(?:[^"\\]|\\.)*"', literal, re.S)
    # python-dotenv, interpolation on (its default), reads back every value exactly.
    assert dotenv_values(stream=io.StringIO(text)) == {"V": value}


# -- github -------------------------------------------------------------------


def parse_github_env(text: str) -> dict[str, str]:
    """The $GITHUB_ENV reader of actions/runner (SetEnvFileCommand, non-Windows)."""
    result = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if eq >= 0 and (heredoc < 0 or eq < heredoc):
            name, value = line.split("=", 1)
            result[name] = value
        else:
            name, delimiter = line.split("<<", 1)
            assert name and delimiter
            body = []
            while lines[i] != delimiter:  # IndexError = delimiter missing
                body.append(lines[i])
                i += 1
            i += 1
            result[name] = "\n".join(body)
    return result


def test_github_single_line_exact():
    text = render_env({"B": "x=y<<z", "A": "", "C": "a\rb"}, ["D"], fmt="github")
    assert text == "A=\nB=x=y<<z\nC=a\rb\n"


def test_github_multiline_heredoc():
    text = render_env({"M": "one\ntwo\n"}, [], fmt="github")
    match = re.fullmatch(r"M<<(ghadelimiter_[0-9a-f]{32})\none\ntwo\n\n\1\n", text)
    assert match, text
    assert parse_github_env(text) == {"M": "one\ntwo\n"}


def test_github_delimiter_never_occurs_in_value(monkeypatch):
    import buildpolicy.output.render as render

    candidates = iter(["ghadelimiter_aa", "ghadelimiter_bb"])
    monkeypatch.setattr(render, "_github_delimiter", lambda: next(candidates))
    text = render_env({"M": "x\nghadelimiter_aa\n"}, [], fmt="github")
    assert text == "M<<ghadelimiter_bb\nx\nghadelimiter_aa\n\nghadelimiter_bb\n"


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True),
        st.text(alphabet=st.sampled_from("ab=<\n\r \\'\"é")),
        max_size=4,
    )
)
def test_github_round_trips_through_the_runner_parser(env):
    assert parse_github_env(render_env(env, [], fmt="github")) == env


# -- validation ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["A", "_", "a_1", "_9", "PATH", "CARGO_BUILD_JOBS"])
def test_check_name_accepts(name):
    check_name(name)


@pytest.mark.parametrize("name", ["", "1A", "A-B", "A B", "A=B", "é", "A\n", "A\0", "$A", 7, None])
def test_check_name_rejects(name):
    with pytest.raises(BuildpolicyError) as info:
        check_name(name)
    assert info.value.exit_code == EXIT_USAGE
    assert "[A-Za-z_][A-Za-z0-9_]*" in str(info.value)


def test_check_value():
    check_value("A", "")
    check_value("A", "anything \n'\"\\ é😀 \x01")
    with pytest.raises(BuildpolicyError, match="A contains a NUL"):
        check_value("A", "x\0y")
    with pytest.raises(BuildpolicyError, match="must be a string"):
        check_value("A", 3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_render_rejects_bad_input_in_every_format(fmt):
    with pytest.raises(BuildpolicyError) as info:
        render_env({"1BAD": "x", "OK": "a\0b", "BOTH": "v"}, ["BOTH", "no-dash"], fmt=fmt)
    text = str(info.value)
    # Every problem at once.
    assert "'1BAD'" in text and "OK contains a NUL" in text
    assert "'no-dash'" in text and "both set and unset: BOTH" in text


def test_unknown_shell_and_format_list_the_allowed_ones():
    with pytest.raises(BuildpolicyError) as info:
        render_env({}, [], shell="csh")
    assert "unknown shell 'csh'" in str(info.value)
    assert "bash, zsh, fish, posix, powershell" in str(info.value)
    with pytest.raises(BuildpolicyError) as info:
        render_env({}, [], fmt="yaml")
    assert "unknown format 'yaml'" in str(info.value)
    assert "sh, json, dotenv, github" in str(info.value)
    # The shell is validated even when the format does not use it.
    with pytest.raises(BuildpolicyError, match="unknown shell"):
        render_env({}, [], shell="csh", fmt="json")


def test_unset_given_as_a_string_is_an_error():
    with pytest.raises(BuildpolicyError, match="not the string 'FOO'"):
        render_env({}, "FOO")
