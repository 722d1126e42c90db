"""Tests for the rule expression language and ${fact} interpolation (buildpolicy.policy.expr)."""

from __future__ import annotations

import pickle

import pytest

from buildpolicy.errors import BuildpolicyError, Diagnostic
from buildpolicy.policy.expr.nodes import Expr
from buildpolicy.policy.expr.parser import compile_expr
from buildpolicy.policy.expr.templates import interpolate, interpolation_facts
from buildpolicy.policy.expr.tokens import ExprError

TYPES = {
    "os": "string",
    "memory.total": "size",
    "memory.available": "size",
    "swap.total": "size",
    "process.earlyoom": "bool",
    "cpu.count": "int",
    "rust.toolchains": "list",
    "cargo.incremental": "bool",
    "cargo.profile": "string",
    "cargo.profile_env": "string",
    "load.avg": "number",
    "tool.ld.lld": "string",
    "plugin.thing": "any",
}


def fact_type(name):
    if name in TYPES:
        return TYPES[name]
    if name.startswith("env."):
        return "string"
    return None


def comp(text, **kw):
    kw.setdefault("known_facts", TYPES)
    return compile_expr(text, fact_type=fact_type, **kw)


def ev(text, facts=None, **more):
    facts = dict(facts or {}, **more)
    return comp(text).evaluate(facts.get)


def truth(text, facts=None, **more):
    return ev(text, facts, **more)[0]


def error(text, **kw) -> Diagnostic:
    with pytest.raises(ExprError) as info:
        comp(text, **kw)
    diag = info.value.diagnostic
    assert isinstance(diag, Diagnostic)
    return diag


def caret_col(diag: Diagnostic) -> int:
    """0-based column of the caret within the shown expression line."""
    expr_line, caret_line = diag.detail
    assert expr_line.startswith("    ") and caret_line.startswith("    ")
    assert caret_line.rstrip().endswith("^")
    return len(caret_line) - 1 - 4


LINUX = {
    "os": "linux",
    "memory.total": 16 << 30,
    "memory.available": 4 << 30,
    "swap.total": 0,
    "process.earlyoom": True,
    "cpu.count": 8,
    "rust.toolchains": ["stable", "nightly-2025-01-01"],
    "cargo.incremental": True,
    "cargo.profile": "dev",
    "cargo.profile_env": "DEV",
    "load.avg": 1.5,
    "tool.ld.lld": "/usr/bin/ld.lld",
}


# --- literals, names, operators -------------------------------------------------------


def test_design_example_rule():
    text = ("os == 'linux' and process.earlyoom and swap.total == 0 and memory.total < 24GiB "
            "and memory.available < 8GiB and cargo.incremental")
    expr = comp(text)
    assert expr.text == text
    assert expr.facts_used == frozenset({"os", "process.earlyoom", "swap.total", "memory.total",
                                         "memory.available", "cargo.incremental"})
    assert expr.evaluate(LINUX.get) == (True, frozenset())
    assert expr.evaluate(dict(LINUX, **{"memory.total": 32 << 30}).get) == (False, frozenset())


@pytest.mark.parametrize("text, expected", [
    ("cpu.count == 8", True), ("cpu.count != 8", False), ("cpu.count < 9", True),
    ("cpu.count <= 8", True), ("cpu.count > 8", False), ("cpu.count >= 8", True),
    ("cpu.count < 8", False), ("cpu.count >= 9", False),
    ("os == 'linux'", True), ("os != 'linux'", False), ("os < 'm'", True), ("os >= 'm'", False),
    ("os in ['linux', 'macos']", True), ("os not in ['linux', 'macos']", False),
    ("os in ['windows']", False), ("os not in ['windows']", True),
    ("'stable' in rust.toolchains", True), ("'beta' in rust.toolchains", False),
    ("'beta' not in rust.toolchains", True),
    ("'inu' in os", True), ("'bsd' in os", False), ("'bsd' not in os", True),
    ("cpu.count in [2, 4, 8]", True), ("cpu.count in []", False),
    ("process.earlyoom == true", True), ("process.earlyoom != false", True),
    ("load.avg < 2", True), ("load.avg > 1.25", True), ("load.avg == 1.5", True),
    ("tool.ld.lld == '/usr/bin/ld.lld'", True),
    ("true", True), ("false", False), ("not false", True),
    ("rust.toolchains != []", True), ("rust.toolchains == ['stable', 'nightly-2025-01-01']", True),
    ("cpu.count > -1", True),
])
def test_every_operator(text, expected):
    assert truth(text, LINUX) is expected


@pytest.mark.parametrize("literal, value", [
    ("512MiB", 512 << 20), ("24GiB", 24 << 30), ("1.5GB", 1_500_000_000), ("16G", 16 << 30),
    ("100KiB", 100 << 10), ("100kib", 100 << 10), ("2gib", 2 << 30), ("1TiB", 1 << 40),
    ("10B", 10),
])
def test_sizes(literal, value):
    assert truth(f"memory.total == {literal}", {"memory.total": value})
    assert not truth(f"memory.total == {literal}", {"memory.total": value + 1})
    assert truth(f"memory.total < {literal}", {"memory.total": value - 1})


def test_sizes_compare_with_ints_and_numbers():
    assert truth("memory.total > 1024", {"memory.total": 2048})
    assert truth("cpu.count < 1KiB", {"cpu.count": 8})
    assert truth("load.avg < 1KiB", {"load.avg": 0.5})


def test_size_fact_given_as_text_is_converted():
    # A --facts file may write sizes as strings.
    assert truth("memory.total < 24GiB", {"memory.total": "16GiB"})


def test_strings_escapes_and_double_quotes():
    assert truth(r"env.X == 'it\'s'", {"env.X": "it's"})
    assert truth(r"env.X == 'a\\b'", {"env.X": "a\\b"})
    assert truth('env.X == "double"', {"env.X": "double"})
    assert truth(r'env.X == "say \"hi\""', {"env.X": 'say "hi"'})
    assert truth("env.X == \"it's\"", {"env.X": "it's"})
    # An unknown escape keeps its backslash (Windows paths read as written).
    assert truth(r"env.X == 'C:\tools'", {"env.X": "C:\\tools"})


def test_env_and_dotted_names():
    expr = comp("env.CARGO_INCREMENTAL == '1' and tool.ld.lld != null")
    assert expr.facts_used == {"env.CARGO_INCREMENTAL", "tool.ld.lld"}
    assert expr.evaluate({"env.CARGO_INCREMENTAL": "1", "tool.ld.lld": "/x"}.get)[0]


def test_whitespace_is_free():
    assert truth("(cpu.count>=8)and(os=='linux')", LINUX)
    assert truth("  os  ==  'linux'  ", LINUX)


# --- precedence ------------------------------------------------------------------------


def test_and_binds_tighter_than_or():
    # true or (false and false) == true; (true or false) and false would be false.
    assert truth("true or false and false")
    assert not truth("(true or false) and false")
    assert truth("false and false or true")


def test_not_binds_tighter_than_and_or_looser_than_comparison():
    assert truth("not os == 'macos'", LINUX)           # not (os == 'macos')
    assert truth("not false and true")                 # (not false) and true
    assert not truth("not true and false")
    assert truth("not true or true")                   # (not true) or true
    assert truth("not not true")
    assert truth("not (false or false)")


def test_not_in_is_one_operator():
    assert truth("os not in ['macos']", LINUX)
    assert truth("not os in ['macos']", LINUX)


# --- null semantics --------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "os == 'linux'", "os != 'linux'", "os < 'z'", "os <= 'z'", "os > 'a'", "os >= 'a'",
    "os in ['linux']", "os not in ['linux']", "'x' in os", "'x' not in os",
    "'linux' == os", "'linux' != os",
])
def test_every_comparison_with_null_is_false(text):
    result, unknown = ev(text, {})
    assert result is False
    assert unknown == {"os"}


@pytest.mark.parametrize("text", ["cpu.count < 4", "cpu.count >= 4", "cpu.count != 4",
                                  "memory.total < 1GiB", "'stable' in rust.toolchains"])
def test_numeric_and_list_comparisons_with_null_are_false(text):
    assert ev(text, {})[0] is False


def test_explicit_null_test_is_the_exception():
    assert ev("os == null", {}) == (True, frozenset({"os"}))
    assert ev("os != null", {}) == (False, frozenset({"os"}))
    assert truth("os == null", LINUX) is False
    assert truth("os != null", LINUX) is True
    assert truth("null == os", {}) is True
    assert truth("null != os", LINUX) is True
    assert truth("null == null") is True
    assert truth("null != null") is False
    assert truth("not (os == null)", LINUX) is True


def test_bare_bool_fact_that_is_null_is_false():
    assert ev("process.earlyoom", {}) == (False, frozenset({"process.earlyoom"}))
    assert truth("process.earlyoom", {"process.earlyoom": True})
    assert not truth("process.earlyoom", {"process.earlyoom": False})


def test_null_counts_as_false_under_not():
    # DESIGN §3: a comparison involving null is false, so its negation is true.
    assert ev("not process.earlyoom", {}) == (True, frozenset({"process.earlyoom"}))
    assert truth("not (os == 'macos')", {}) is True
    assert truth("not (os != 'linux')", {}) is True
    assert truth("not not process.earlyoom", {}) is False
    # The way to keep an unknown fact from matching a negation.
    assert truth("os != null and not (os == 'macos')", {}) is False
    assert truth("os != null and not (os == 'macos')", {"os": "linux"}) is True


@pytest.mark.parametrize("text, expected", [
    # Two-valued logic over comparisons whose null operands made them false.
    ("false and process.earlyoom", False),
    ("process.earlyoom and false", False),
    ("true and process.earlyoom", False),
    ("process.earlyoom and true", False),
    ("true or process.earlyoom", True),
    ("process.earlyoom or true", True),
    ("false or process.earlyoom", False),
    ("process.earlyoom or false", False),
    ("not (process.earlyoom and false)", True),
    ("not (process.earlyoom or true)", False),
    ("not (process.earlyoom and true)", True),
    ("not (process.earlyoom or false)", True),
])
def test_and_or_with_null(text, expected):
    assert truth(text, {}) is expected


def test_unknown_facts_are_reported_only_when_consulted():
    result, unknown = ev("process.earlyoom or os == 'linux' or cpu.count > 2", {"os": "linux"})
    assert result is True
    assert unknown == {"process.earlyoom"}
    result, unknown = ev("os == 'linux' or cpu.count > 2", {"os": "linux"})
    assert unknown == frozenset()


# --- short-circuit ---------------------------------------------------------------------


class RecordingLookup:
    def __init__(self, facts):
        self.facts = facts
        self.calls = []

    def __call__(self, name):
        self.calls.append(name)
        return self.facts.get(name)


def test_and_short_circuits_after_false():
    expr = comp("os == 'macos' and memory.available < 8GiB and process.earlyoom")
    lookup = RecordingLookup(LINUX)
    assert expr.evaluate(lookup) == (False, frozenset())
    assert lookup.calls == ["os"]


def test_or_short_circuits_after_true():
    expr = comp("os == 'linux' or memory.available < 8GiB")
    lookup = RecordingLookup(LINUX)
    assert expr.evaluate(lookup)[0] is True
    assert lookup.calls == ["os"]


def test_and_short_circuits_on_null():
    # A null left side is false: the right side of `and` is not looked up.
    expr = comp("process.earlyoom and os == 'linux'")
    lookup = RecordingLookup({"os": "linux"})
    assert expr.evaluate(lookup) == (False, frozenset({"process.earlyoom"}))
    assert lookup.calls == ["process.earlyoom"]


def test_comparison_with_null_left_skips_right():
    expr = comp("memory.available < memory.total")
    lookup = RecordingLookup({})
    assert expr.evaluate(lookup) == (False, frozenset({"memory.available"}))
    assert lookup.calls == ["memory.available"]


# --- any-typed facts -------------------------------------------------------------------


def test_any_fact_is_compatible_with_everything():
    for text in ("plugin.thing == 3", "plugin.thing == 'x'", "plugin.thing < 3GiB",
                 "plugin.thing in ['a']", "'a' in plugin.thing", "plugin.thing",
                 "not plugin.thing and true", "plugin.thing in plugin.thing"):
        comp(text)


def test_any_fact_runtime_mismatches_are_false_not_crashes():
    assert truth("plugin.thing < 3", {"plugin.thing": "abc"}) is False
    assert truth("plugin.thing", {"plugin.thing": "yes"}) is False     # non-bool condition
    assert truth("plugin.thing", {"plugin.thing": True}) is True
    assert truth("plugin.thing == 1", {"plugin.thing": True}) is False  # bools are not ints
    assert truth("plugin.thing in [1]", {"plugin.thing": True}) is False
    assert truth("'a' in plugin.thing", {"plugin.thing": 3}) is False
    assert truth("plugin.thing == ['a']", {"plugin.thing": ["a"]}) is True


# --- errors: positions and carets ------------------------------------------------------


def test_syntax_error_position_and_caret():
    diag = error("os == 'linux' and and", file="p.toml", line=7, col=9)
    assert diag.file == "p.toml"
    assert (diag.line, diag.col) == (7, 9 + 18)
    assert diag.detail == ("    os == 'linux' and and",
                           "                      ^")
    assert caret_col(diag) == 18
    assert str(diag).startswith("p.toml:7:27: unexpected 'and'")


def test_position_defaults_to_expression_relative():
    diag = error("os ==")
    assert (diag.file, diag.line, diag.col) == (None, 1, 6)
    assert "end of expression" in diag.message
    assert caret_col(diag) == 5


def test_unknown_fact_with_suggestion():
    diag = error("os == 'linux' and memory.availabel < 8GiB", line=3, col=10)
    assert diag.message == "unknown fact 'memory.availabel' (did you mean 'memory.available'?)"
    assert (diag.line, diag.col) == (3, 10 + 18)
    assert caret_col(diag) == 18


def test_unknown_fact_without_suggestion():
    diag = error("zzzz.qqqq == 1")
    assert diag.message == "unknown fact 'zzzz.qqqq'"


def test_unknown_fact_suggests_keywords_from_other_languages():
    assert "did you mean 'not'" in error("NOT process.earlyoom").message
    assert "did you mean 'true'" in error("True").message
    assert "did you mean 'null'" in error("os == None").message


@pytest.mark.parametrize("text, caret, words", [
    ("os == 3", 3, "cannot compare os (a string) with 3 (an int)"),
    ("'linux' < 3", 8, "cannot compare 'linux' (a string) with 3 (an int)"),
    ("3 in os", 2, "substring"),
    ("cpu.count == 'eight'", 10, "type mismatch"),
    ("memory.total < 'big'", 13, "type mismatch"),
    ("process.earlyoom == 1", 17, "type mismatch"),
    ("process.earlyoom < true", 0, "cannot order"),
    ("rust.toolchains < 3", 0, "cannot order"),
    ("cpu.count in ['a', 'b']", 10, "can never be in"),
    ("os in [1, 2]", 3, "can never be in"),
    ("'a' in cpu.count", 7, "must be a list or a string"),
    ("rust.toolchains in rust.toolchains", 0, "single value"),
    ("cpu.count < null", 12, "== null"),
    ("null in rust.toolchains", 0, "== null"),
    ("os", 0, "needs a condition"),
    ("cpu.count and true", 0, "needs a condition"),
    ("true or memory.total", 8, "needs a condition"),
    ("not os", 4, "needs a condition"),
    ("3", 0, "needs a condition"),
    ("null", 0, "needs a condition"),
    ("['a']", 0, "needs a condition"),
    ("[1, 'a'] == rust.toolchains", 4, "list mixes"),
])
def test_type_errors(text, caret, words):
    diag = error(text)
    assert words in diag.message
    assert caret_col(diag) == caret
    assert diag.col == 1 + caret


def test_typed_literals_that_are_fine():
    for text in ("memory.total < 24GiB", "cpu.count >= 2", "'x' in os", "cpu.count < 2.5",
                 "memory.total > cpu.count", "os in []", "[1, 1.5, 1GiB] == []",
                 "os == cargo.profile", "os in ['a',]"):
        comp(text)


def test_condition_hint_suggests_a_comparison():
    assert "e.g. os == '...'" in error("os and true").message
    assert "e.g. cpu.count > 0" in error("cpu.count").message


def test_unterminated_string_points_at_opening_quote():
    diag = error("os == 'linux and true", col=5)
    assert diag.message.startswith("unterminated string")
    assert caret_col(diag) == 6
    assert diag.col == 5 + 6


def test_unterminated_string_does_not_span_lines():
    diag = error("os == 'li\nnux'")
    assert diag.message.startswith("unterminated string")
    assert (diag.line, diag.col) == (1, 7)


def test_chained_comparison_is_an_error():
    diag = error("1 < cpu.count < 8")
    assert "cannot be chained" in diag.message
    assert caret_col(diag) == 14
    diag = error("os == 'a' == true")
    assert "cannot be chained" in diag.message
    assert caret_col(diag) == 10


def test_parenthesised_comparison_may_be_compared():
    assert truth("(cpu.count > 2) == true", LINUX)


def test_trailing_tokens():
    diag = error("os == 'linux' 'macos'")
    assert "after a complete expression" in diag.message
    assert caret_col(diag) == 14
    diag = error("os == 'linux')")
    assert diag.message == "unmatched ')'"
    assert caret_col(diag) == 13
    diag = error("os == 'linux' not")
    assert caret_col(diag) == 14


@pytest.mark.parametrize("text, caret, words", [
    ("", 0, "empty expression"),
    ("   ", 0, "empty expression"),
    ("(os == 'a'", 0, "unclosed '('"),
    ("(os == 'a' os", 11, "expected ')'"),
    ("os in ['a', 'b'", 6, "unclosed '['"),
    ("os in ['a' 'b']", 11, "expected ',' or ']'"),
    ("os in [cargo.profile]", 7, "literal values"),
    ("os in [null]", 7, "null cannot be a list element"),
    ("os = 'a'", 3, "use '=='"),
    ("!process.earlyoom", 0, "use 'not'"),
    ("true && false", 5, "use 'and'"),
    ("true || false", 5, "use 'or'"),
    ("os == 'a' @", 10, "unexpected character '@'"),
    ("memory.total < 16X", 15, "invalid size literal"),
    ("memory.total < 2and true", 15, "invalid size literal"),
    ("memory. == 1", 7, "invalid fact name"),        # caret at the empty part
    ("memory..total == 1", 7, "invalid fact name"),
    ("cpu.count>=8and true", 11, "invalid size literal"),
    ("os ==", 5, "end of expression"),
    ("and true", 0, "unexpected 'and'"),
    ("not in ['a']", 4, "unexpected 'in'"),
    ("os not ['a']", 3, "after a complete expression"),
    ("()", 1, "unexpected ')'"),
])
def test_syntax_errors(text, caret, words):
    diag = error(text)
    assert words in diag.message
    assert caret_col(diag) == caret


def test_multiline_positions():
    text = "os == 'linux' and\n    memory.total < 24GiB and\n    memory.availabel < 8GiB"
    diag = error(text, file="policy.toml", line=10, col=9)
    # The fault is on the third line of the text, which starts at column 1 of file line 12.
    assert (diag.line, diag.col) == (12, 5)
    assert diag.detail == ("        memory.availabel < 8GiB",
                           "        ^")
    assert str(diag).splitlines()[0].startswith("policy.toml:12:5: unknown fact")


def test_multiline_first_line_uses_given_column():
    diag = error("os == 3 and\ntrue", line=4, col=20)
    assert (diag.line, diag.col) == (4, 23)
    assert diag.detail == ("    os == 3 and", "       ^")


def test_caret_keeps_tabs_aligned():
    diag = error("\tos == 3")
    assert diag.detail == ("    \tos == 3", "    \t   ^")


def test_expr_error_is_a_buildpolicy_error_and_pickles():
    with pytest.raises(BuildpolicyError) as info:
        comp("os ==")
    err = info.value
    assert isinstance(err, ExprError)
    assert err.diagnostics == [err.diagnostic]
    assert str(err) == str(err.diagnostic)
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err)


# --- pickling --------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "os == 'linux' and process.earlyoom and memory.total < 24GiB",
    "not (os in ['a', 'b'] or cpu.count >= 2) and tool.ld.lld != null",
    "'stable' not in rust.toolchains or null == os",
])
def test_pickle_round_trip(text):
    expr = comp(text)
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        again = pickle.loads(pickle.dumps(expr, protocol=protocol))
        assert isinstance(again, Expr)
        assert again.text == expr.text
        assert again.facts_used == expr.facts_used
        assert again == expr
        for facts in (LINUX, {}, {"os": "a", "cpu.count": 1}):
            assert again.evaluate(facts.get) == expr.evaluate(facts.get)


# --- interpolation ---------------------------------------------------------------------


def test_interpolation_facts_and_values():
    template = "CARGO_PROFILE_${cargo.profile_env}_INCREMENTAL"
    assert interpolation_facts(template, fact_type=fact_type) == ("cargo.profile_env",)
    assert interpolate(template, LINUX.get) == ("CARGO_PROFILE_DEV_INCREMENTAL", frozenset())


def test_interpolation_dollar_dollar_is_literal_dollar():
    template = "$$HOME/${os}/$$${cpu.count}$$"
    assert interpolation_facts(template, fact_type=fact_type) == ("os", "cpu.count")
    assert interpolate(template, LINUX.get) == ("$HOME/linux/$8$", frozenset())
    assert interpolate("$$", {}.get) == ("$", frozenset())
    assert interpolate("$${os}", LINUX.get) == ("${os}", frozenset())


def test_interpolation_value_formats():
    facts = {"cargo.incremental": False, "process.earlyoom": True, "cpu.count": 12,
             "rust.toolchains": ["stable", "beta"], "memory.total": 1 << 30, "load.avg": 0.5}
    template = "${cargo.incremental} ${process.earlyoom} ${cpu.count} ${rust.toolchains} " \
               "${memory.total} ${load.avg}"
    assert interpolate(template, facts.get) == (
        "false true 12 stable,beta 1073741824 0.5", frozenset())


def test_interpolation_unknown_fact_is_empty_and_reported():
    assert interpolate("a${os}b${cpu.count}", {}.get) == ("ab", frozenset({"os", "cpu.count"}))


def test_interpolation_repeated_names_listed_once():
    assert interpolation_facts("${os}-${os}", fact_type=fact_type) == ("os",)
    assert interpolation_facts("plain", fact_type=fact_type) == ()


@pytest.mark.parametrize("template, caret, words", [
    ("A_$B", 2, "write '$$'"),
    ("trailing$", 8, "write '$$'"),
    ("X_${os", 2, "unterminated '${'"),
    ("X_${}", 2, "empty"),
    ("X_${ os}", 4, "invalid fact name"),
    ("X_${os.}", 4, "invalid fact name"),
    ("X_${cargo.profil}", 4, "unknown fact 'cargo.profil' (did you mean 'cargo.profile'?)"),
])
def test_interpolation_errors(template, caret, words):
    with pytest.raises(ExprError) as info:
        interpolation_facts(template, fact_type=fact_type, file="p.toml", line=5, col=3,
                            known_facts=TYPES)
    diag = info.value.diagnostic
    assert words in diag.message
    assert caret_col(diag) == caret
    assert (diag.file, diag.line, diag.col) == ("p.toml", 5, 3 + caret)


def test_interpolate_rejects_invalid_template():
    with pytest.raises(ExprError):
        interpolate("a$b", {}.get)
