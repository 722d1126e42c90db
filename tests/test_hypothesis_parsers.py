"""Property tests of the parsers and state readers (issue 10): on any input they answer
or raise their one documented error, never a traceback of another kind, a hang or a
RecursionError; limits hold exactly where they are documented; and the scanner that
locates a too-deep TOML value agrees with the parsed data.
"""

from __future__ import annotations

import contextlib
import json
import os
import string
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from buildpolicy import filestate
from buildpolicy.errors import BuildpolicyError
from buildpolicy.facts.cache import ProbeCache
from buildpolicy.facts.overrides import MAX_NESTING as FACTS_NESTING
from buildpolicy.facts.overrides import load_facts_file
from buildpolicy.policy import trust
from buildpolicy.policy.expr.parser import MAX_NESTING, MAX_TOKENS, compile_expr
from buildpolicy.policy.expr.tokens import ExprError
from buildpolicy.policy.tomlpos import MAX_NESTING as TOML_NESTING
from buildpolicy.filestate import too_deep
from buildpolicy.policy.tomlpos import TomlSyntaxError, nesting_offset, parse_toml
from buildpolicy.run import actionlog, fingerprints
from buildpolicy.run.gate import GateLock
from buildpolicy.run.remote.probe import DownCache

FACT_TYPES = {"ci": "bool", "a": "bool", "b": "bool", "c": "bool", "os": "string", "cpu.count": "int",
              "memory.total": "size", "rust.toolchains": "list"}
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def compile_when(text: str):
    return compile_expr(text, fact_type=FACT_TYPES.get, file="p.toml", line=3, col=8, known_facts=FACT_TYPES)


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A fresh directory for one example (hypothesis runs many per test), removed after it."""
    with tempfile.TemporaryDirectory(prefix="bp-hypothesis-") as name:
        yield Path(name)


# ------------------------------------------------------------------ `when` expressions

TOKENS = ["ci", "a", "b", "os", "cpu.count", "memory.total", "rust.toolchains", "and", "or", "not", "in", "(", ")",
          "[", "]", ",", "==", "!=", "<", "<=", ">", ">=", "true", "false", "null", "'linux'", "4", "1.5", "16GiB",
          "=", "&", "'", "9" * 60, "x..y", "not in"]


@SETTINGS
@given(st.one_of(st.text(max_size=300), st.lists(st.sampled_from(TOKENS), max_size=120).map(" ".join)))
def test_any_when_text_compiles_or_is_an_expr_error(text):
    try:
        expr = compile_when(text)
    except ExprError as exc:
        diagnostic = exc.diagnostic
        assert diagnostic.line is not None and diagnostic.col is not None
        return
    values = {"ci": True, "a": None, "b": False, "os": "linux", "cpu.count": 4, "memory.total": 1 << 34,
              "rust.toolchains": ["stable"]}
    matched, unknown = expr.evaluate(values.get)
    assert isinstance(matched, bool) and unknown <= set(FACT_TYPES)  # "c" has no value: unknown


@SETTINGS
@given(depth=st.integers(0, 3 * MAX_NESTING), opener=st.sampled_from(["(", "not ", "not ("]))
def test_nesting_is_refused_exactly_past_the_limit_at_the_first_level_too_many(depth, opener):
    closer = ")" if "(" in opener else ""
    text = opener * depth + "ci" + closer * depth
    levels = depth * (2 if opener == "not (" else 1)
    if levels <= MAX_NESTING:
        assert compile_when(text).evaluate({"ci": True}.get)[0] is ((depth * opener.count("not")) % 2 == 0)
        return
    with pytest.raises(ExprError, match="nested too deeply") as info:
        compile_when(text)
    # The caret is at the opener of level MAX_NESTING + 1.
    offsets = [i for i in range(len(text)) if text.startswith("(", i) or text.startswith("not ", i)]
    assert info.value.diagnostic.col == 8 + offsets[MAX_NESTING]


_FACTS = ["a", "b", "c", "ci"]


@SETTINGS
@given(terms=st.lists(st.sampled_from(_FACTS), min_size=1, max_size=400), op=st.sampled_from(["and", "or"]),
       values=st.fixed_dictionaries({name: st.sampled_from([True, False, None]) for name in _FACTS}))
def test_long_and_or_chains_keep_left_to_right_null_as_false_semantics(terms, op, values):
    matched, unknown = compile_when(f" {op} ".join(terms)).evaluate(values.get)
    consulted = []
    for term in terms:  # the reference: left to right, stop at the first decisive term
        consulted.append(term)
        if (values[term] is True) == (op == "or"):
            break
    decisive = [values[t] is True for t in terms]
    assert matched == (any(decisive) if op == "or" else all(decisive))
    assert unknown == {t for t in consulted if values[t] is None}


def test_a_chain_longer_than_the_token_limit_is_refused_where_it_passes_the_limit():
    terms = (MAX_TOKENS + 1) // 2  # `ci and ci …`: 2 tokens a term, the last without `and`
    compile_when(" and ".join(["ci"] * terms))  # exactly the limit (or one under): fine
    with pytest.raises(ExprError, match="too long") as info:
        compile_when(" and ".join(["ci"] * (terms + 1)) + " and ci")
    # The caret is on the first token past the limit.
    first_past = len(" and ".join(["ci"] * (MAX_TOKENS // 2))) + (len(" and ") if MAX_TOKENS % 2 == 0 else 1)
    assert info.value.diagnostic.col == 8 + first_past


# ------------------------------------------------------------------------------- TOML

_KEY = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=3)


def _toml_value(depth):
    scalars = st.sampled_from(["1", "'s'", "true", '"a.b[c]{d}"', "1.5", "'''x\n]]'''"])
    if depth == 0:
        return scalars
    inner = _toml_value(depth - 1)
    arrays = st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]")
    tables = st.lists(inner, max_size=3).map(
        lambda items: "{" + ", ".join(f"k{i}.x = {item}" if i % 2 else f"k{i} = {item}" for i, item in enumerate(items)) + "}")
    return st.one_of(scalars, arrays, tables)


@st.composite
def toml_documents(draw):
    """Valid TOML by construction: unique names, headers, dotted keys, arrays of tables, nesting."""
    lines = []
    for section in range(draw(st.integers(0, 4))):
        if section:
            segments = draw(st.integers(1, 4))
            name = ".".join([f"t{section}", *(f"s{i}" for i in range(segments - 1))])
            lines.append(f"[[{name}]]" if draw(st.booleans()) else f"[{name}]")
        for index in range(draw(st.integers(0, 3))):
            key = ".".join([f"k{index}", *draw(st.lists(_KEY, max_size=2, unique=True).map(lambda ks: [f"d{k}" for k in ks]))])
            lines.append(f"{key} = {draw(_toml_value(draw(st.integers(0, 5))))}  # c")
    return "\n".join(lines) + "\n"


@SETTINGS
@given(text=toml_documents(), limit=st.integers(1, 7))
def test_the_nesting_scanner_agrees_with_the_parsed_data(text, limit):
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        assume(False)  # the generator aims at valid TOML; the rare miss says nothing
    offset = nesting_offset(text, limit)
    assert (offset is None) == (not too_deep(data, limit)), (text, offset)


@SETTINGS
@given(text=st.one_of(st.text(max_size=400), toml_documents()))
def test_parse_toml_answers_or_raises_a_positioned_syntax_error(text):
    try:
        doc = parse_toml("f.toml", text)
    except TomlSyntaxError as exc:
        assert exc.diagnostic.file == "f.toml"
        return
    assert not too_deep(doc.data, TOML_NESTING)


@SETTINGS
@given(depth=st.integers(0, 5000), kind=st.sampled_from(["array", "table", "dotted", "header"]))
def test_toml_nesting_is_refused_past_the_limit_never_a_recursion_error(depth, kind):
    if kind == "array":
        depth = max(depth, 1)
        text = "x = " + "[" * depth + "]" * depth + "\n"
        levels = depth  # x's value is level 1, the innermost empty array level `depth`
    elif kind == "table":
        text = "x = " + "{a = " * depth + "1" + "}" * depth + "\n"
        levels = depth + 1
    elif kind == "dotted":
        text = ".".join(["a"] * max(depth, 1)) + " = 1\n"
        levels = max(depth, 1)
    else:
        text = "[" + ".".join(["a"] * max(depth, 1)) + "]\n"
        levels = max(depth, 1)
    if levels <= TOML_NESTING:
        parse_toml("f.toml", text)
        return
    with pytest.raises(TomlSyntaxError, match="nested more than") as info:
        parse_toml("f.toml", text)
    assert info.value.diagnostic.line == 1 and info.value.diagnostic.col is not None


# ---------------------------------------------------------------------------- --facts

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=20,
)


@SETTINGS
@given(raw=st.one_of(st.binary(max_size=300), _json_values.map(lambda v: json.dumps(v, allow_nan=True).encode())),
       suffix=st.sampled_from([".json", ".toml"]))
def test_any_facts_file_loads_or_is_a_buildpolicy_error(raw, suffix):
    with scratch() as directory:
        path = directory / f"facts{suffix}"
        path.write_bytes(raw)
        try:
            facts = load_facts_file(path)
        except BuildpolicyError as exc:
            assert exc.exit_code == 2
            return
        assert isinstance(facts, dict)


@SETTINGS
@given(depth=st.integers(1, 3000), suffix=st.sampled_from([".json", ".toml"]))
def test_deep_facts_files_are_refused_with_a_position(depth, suffix):
    with scratch() as directory:
        path = directory / f"facts{suffix}"
        nested = "[" * depth + "]" * depth
        path.write_text('{"x": ' + nested + "}" if suffix == ".json" else f"x = {nested}\n")
        if depth <= FACTS_NESTING:
            with pytest.raises(BuildpolicyError, match="unknown fact"):
                load_facts_file(path)
            return
        with pytest.raises(BuildpolicyError, match="nested more than") as info:
            load_facts_file(path)
        (diagnostic,) = info.value.diagnostics
        assert diagnostic.line == 1 and diagnostic.col is not None


# ------------------------------------------------------------------------ state readers


_junk = st.one_of(
    st.binary(max_size=400),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(500, 5000).map(lambda d: b'{"version": 1, "entries": ' + b"[" * d + b"]" * d + b"}"),
)


@SETTINGS
@given(raw=_junk)
def test_state_readers_read_any_content_as_corrupt_or_valid(raw):
    with scratch() as directory:
        flags = fingerprints.fingerprint_path(directory, "dev", "/work/target")
        flags.parent.mkdir(parents=True)
        for path in [directory / name for name in ("probes.json", "remote-down.json", "actions.jsonl", "trust.json",
                                                    "gate.lock.holder", "any.json")] + [flags]:
            path.write_bytes(raw)
        # The probe cache ignores what it cannot use and is rebuilt by the next result.
        cache = ProbeCache(directory / "probes.json")
        cache.get("key")
        cache.put("key", [1, "x"])
        assert ProbeCache(directory / "probes.json").get("key") == [1, "x"]
        down = DownCache(directory).load()
        assert all(isinstance(e["failed_at"], float) and isinstance(e["reason"], str) for e in down.values())
        record = trust._read_record(directory / "trust.json")
        assert record is None or isinstance(record["files"], dict)
        entries, skipped = actionlog.read_entries(directory)
        assert len(entries) + skipped <= max(1, sum(1 for line in raw.splitlines() if line.strip()))
        assert isinstance(GateLock(directory / "gate.lock").describe_holder(), str)
        recorded = fingerprints.last_build_flags(directory, "dev", "/work/target")
        assert recorded is None or all(isinstance(k, str) and isinstance(v, str) for k, v in recorded.items())
        try:
            expected = json.loads(raw)
        except (ValueError, RecursionError):
            expected = None
        if too_deep(expected, filestate.STATE_DEPTH):
            expected = None  # damage: a state file is never that deep
        assert json.dumps(filestate.load_state_json(directory / "any.json")) == json.dumps(expected)


@SETTINGS
@given(data=st.binary(max_size=300), cut=st.integers(0, 400), flip=st.integers(0, 400))
def test_a_sealed_file_is_recognised_intact_and_any_damage_is_refused(data, cut, flip):
    sealed = filestate.seal(data)
    assert filestate.unseal(sealed) == data
    if cut < len(sealed):
        with pytest.raises(ValueError):
            filestate.unseal(sealed[:cut])
    damaged = bytearray(sealed)
    damaged[flip % len(damaged)] ^= 0x01
    with pytest.raises(ValueError):
        filestate.unseal(bytes(damaged))


@SETTINGS
@given(size=st.integers(0, 3000), limit=st.integers(0, 3000))
def test_read_bounded_returns_a_regular_file_up_to_its_limit_only(size, limit):
    with scratch() as directory:
        path = directory / "f"
        path.write_bytes(b"x" * size)
        if size <= limit:
            assert filestate.read_bounded(path, limit) == b"x" * size
        else:
            with pytest.raises(filestate.Refused):
                filestate.read_bounded(path, limit)


def test_read_bounded_refuses_fifos_devices_and_directories_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero"), tmp_path):
        with pytest.raises(filestate.Refused, match="not a regular file"):
            filestate.read_bounded(path, 1 << 20)
    assert filestate.read_bounded(fifo, 10, pipes=True) == b""  # no writer: empty, not a wait


# ------------------------------------------------------------------------ redaction

_word = st.text(alphabet=string.ascii_letters + string.digits + "-_=./:", max_size=12)
_secret = st.text(alphabet=string.ascii_letters + string.digits, min_size=12, max_size=24)


@SETTINGS
@given(argv=st.lists(_word, max_size=8), secret=_secret, at=st.integers(0, 8),
       form=st.sampled_from(["--token {s}", "--token={s}", "--password {s}", "--config registries.x.token={s}",
                             "--config=registries.x.token='{s}'", "CARGO_REGISTRY_TOKEN={s}",
                             "https://me:{s}@host/x"]))
def test_redaction_removes_the_secret_and_keeps_the_shape(argv, secret, at, form):
    assume(not any(secret in word for word in argv))
    assume(not any(actionlog._SECRET_OPTION.match(w.partition("=")[0]) or w in ("--config", "-c") for w in argv))
    words = form.format(s=secret).split(" ")
    full = ["cargo", *argv[:at], *words, *argv[at:]]
    redacted = actionlog.redact_argv(full)
    assert len(redacted) == len(full)
    assert not any(secret in word for word in redacted)


# Keys and table names get the statement's number: a repeated one is a TOML error, not a test.
KEYS = st.sampled_from(["a{n}", "id{n}", "b-2{n}", "x_y{n}", '"quoted{n}"', '"q\\"k{n}"', "d{n}.e", "'lit key{n}'"])
VALUES = st.sampled_from(['"text"', '""', '"a \\" b"', '"x = y"', '"[[rule]]"', "true", "false", "-12", "1.5", "0x1F",
                          "1979-05-27", "1979-05-27 07:32:00", '"""multi"""', '"""\n[[rule]]\nid = 1\n"""', "'lit'",
                          "'''a\n[t]'''", "[1, 2]", "[1, 2,]", '["a", "b"]', "[\n  1, # c\n  2,\n]", "[]", "{}",
                          '{ k = "v", n = 1 }', '{ "k 2" = "v", d.e = 1 }', "{ k = [1, 2] }", '{k="v",m=true}'])
SPACING = st.sampled_from(["", " ", "\t", "  "])
HEADERS = st.sampled_from(["", "[t{n}]\n", "[[rule]]\n", "[ t{n}.u ]\n", "[[ rule ]]\n", '["q t{n}"]\n'])


@SETTINGS
@given(st.lists(st.tuples(HEADERS, KEYS, SPACING, VALUES, st.sampled_from(["", " # note", "# [[rule]]"])),
                min_size=1, max_size=12), st.sampled_from(["\n", "\r\n"]))
def test_the_scanner_shortcuts_give_the_positions_of_the_full_grammar(statements, newline):
    # One-line statements (`[[rule]]`, `name = "text"`, `env = { A = "1" }`, `x = ["a"]`)
    # take a one-regex shortcut; every position must be the one the full grammar gives.
    from buildpolicy.policy.tomlscan import Scanner

    text = "".join(f"{header}{key}{space}={space}{value}{comment}\n".replace("{n}", str(n))
                   for n, (header, key, space, value, comment) in enumerate(statements)).replace("\n", newline)
    tomllib.loads(text)  # the scanner only ever sees text TOML accepts
    fast, full = Scanner(text, shortcuts=True), Scanner(text, shortcuts=False)
    fast.document()
    full.document()
    assert (fast.keys, fast.values) == (full.keys, full.values)


TEMPLATE_PIECES = st.sampled_from(["$", "{", "}", "a", "a.b", ".", "_", "1", "-", " ", "\n", "é", "${a}", "${a.b}",
                                   "${cpu.count}", "${ci}", "${zz}", "${", "$$", "${1x}", "${}"])


@SETTINGS
@given(st.lists(TEMPLATE_PIECES, max_size=10).map("".join))
def test_the_template_shortcut_answers_as_the_long_way(template):
    # Well-formed `${fact}` templates are checked and filled in with one regex; every
    # answer, error (with its column) and fact lookup must be the long way's.
    import re as regex

    from buildpolicy.policy.expr import templates

    kinds = {"a": "string", "a.b": "int", "cpu.count": "int", "ci": "bool"}
    values = {"a": "A", "a.b": 7, "cpu.count": None, "ci": True}

    def answers() -> tuple:
        try:
            facts = templates.interpolation_facts(template, fact_type=kinds.get, file="p.toml", line=2, col=7,
                                                  known_facts=kinds)
        except ExprError as exc:
            facts = (str(exc.diagnostic), exc.diagnostic.col)
        looked_up: list[str] = []
        try:
            filled = templates.interpolate(template, lambda name: looked_up.append(name) or values.get(name))
        except ExprError as exc:
            filled = str(exc.diagnostic)
        return facts, filled, looked_up

    fast = answers()
    shortcut = templates._WELL_FORMED
    templates._WELL_FORMED = regex.compile(r"(?!)")  # never matches: the long way only
    try:
        assert answers() == fast
    finally:
        templates._WELL_FORMED = shortcut
