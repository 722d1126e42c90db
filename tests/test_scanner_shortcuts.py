"""The position scanner's one-line shortcuts (issue 10, item 13) locate everything exactly
where its full TOML grammar does: every key and value position, every rule's positions,
and every diagnostic's ``file:line:col`` of ``check``, on TOML written to trip them up
(multi-line strings holding ``[[rule]]``, dotted keys, inline tables, comments, CRLF).
"""

from __future__ import annotations

import functools

import pytest

from buildpolicy.errors import BuildpolicyError
from buildpolicy.facts import fact_type, known_fact_names
from buildpolicy.policy import tomlpos
from buildpolicy.policy.loader import _compile
from buildpolicy.policy.tomlscan import Scanner

TRICKY = '''\
# a comment holding [[rule]] and env = { A = "1" }
[[rule]]
id = "multi"
description = """
[[rule]]
id = "not-a-rule"
env = { NOT = "an entry" }
"""
when = 'os == "linux"'
env = { "CARGO_PROFILE_${cargo.profile_env}_DEBUG" = "1", CARGO_TERM_COLOR = "always" }
rustflags = [
  "-Cforce-frame-pointers=yes", # a comment inside an array
  "--cfg=multi",
]

[[rule]]
id = "dotted"
when = "cpu.count >= 1"
env.CARGO_BUILD_JOBS = "2"
env."CARGO_TARGET_DIR" = "target/${cargo.profile}"
priority = 1

[[ rule ]]
id = "spaces"   # a comment after a value
when = "memory.total > 1GiB and not ci"
env = {CARGO_INCREMENTAL="0",CARGO_X_Y="a\\"b",  "CARGO_Q\\u0041" = 'x'}
unset = ["CARGO_Z", "CARGO_W",]
decide = { sccache = "off", jobs = 4 }
force = true

[[rule]]
id = "lit"
description = \'\'\'literal [[rule]]
id = "no"\'\'\'
when = "os != 'windows'"
env = { CARGO_LIT = 'x y', CARGO_EMPTY = "" }

[sccache]
skip_profiles = ["release"]
nested = { a = 1, b.c = 2 }

[knobs]
jobs = 4

[knobs.team_mode]
type = "enum"
values = ["a", "b"]   # a comment
default = "a"
aliases = ["TEAM_MODE", "OLD_TEAM_MODE"]
'''

# Each is compiled alone; every one has diagnostics whose positions the shortcuts decide.
BROKEN = [
    '[[rule]]\nid = "x"\nenv = { CARGO_OK = "1", "CARGO X" = "1" }\n',
    '[[rule]]\nid = "x"\nenv.CARGO_OK = "1"\nenv."CARGO BAD" = "1"\n',
    '[[rule]]\nid = "x"\nwhen = "os == \'linux\' and nosuchfact > 3"\nenv = { CARGO_A = "1" }\n',
    '[[rule]]\nid = "x"\ndescription = """\n[[rule]]\n"""\nwhen = """\nos == \'linux\' and\n  cpu.count >>> 3"""\n',
    '[[rule]]\nid = "x"\nwhen = "os == \\"linux\\" and \\u0063pu.count >>> 3"\n',
    '[[rule]]\nid = "x"\nenv = { CARGO_A = "${nosuch.fact}", "CARGO_${bad" = "1" }\n',
    '[[rule]]\nid = "x"\nenv = { CARGO_A = "\\u00e9\\t${nosuch}" }\n',
    '[[rule]]\nid = "x"\nenv = { CARGO_A = "a\\u0000b" }\ndescription = "d\\x00"\n',
    '[[rule]]\nid = "x"\nrustflags = ["-C opt-level=3", ""]\n',
    '[[rule]]\nid = "x"\nenv = { CARGO_A = "1" }\n\n[[rule]]  # again\nid = "x"\nenv = { CARGO_A = "2" }\n',
    '[[rule]]\nid = "-bad"\nforce = "yes"\nenvv = { A = "1" }\n\n[[rule]]\nid = "ok"\nwhen = "nosuch"\n',
    '[[rule]]\nid = "x"\nunset = ["CARGO X", "BUILDPOLICY_ENV_STATE"]\n',
    '[[rule]]\nid = "x"\nenv = { BUILDPOLICY_ENV_STATE = "1" }\n',
    '[[rule]]\nid = "x"\npriority = 1.5\nenabled = "no"\nunset = "CARGO_A"\n',
]


def newlines(text: str, newline: str) -> str:
    return text.replace("\n", newline)


@pytest.fixture
def full_grammar_only_later(monkeypatch):
    """A switch: once called, documents are scanned with the full grammar alone."""
    return lambda: monkeypatch.setattr(tomlpos, "Scanner", functools.partial(Scanner, shortcuts=False))


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_every_key_and_value_position_is_the_full_grammars(newline):
    text = newlines(TRICKY, newline)
    fast, full = Scanner(text, shortcuts=True), Scanner(text, shortcuts=False)
    fast.document()
    full.document()
    assert fast.keys == full.keys and fast.values == full.values
    # Nothing inside the multi-line strings was taken for a statement.
    assert ("rule", 4) not in fast.keys and ("rule", 0, "id") in fast.keys
    assert fast.coords(fast.keys[("rule", 2, "env", "CARGO_QA")]) == (26, 49)


def written(tmp_path, text: str, newline: str) -> list:
    """``text`` as a project policy file, for ``compiled``."""
    path = tmp_path / "p.toml"
    path.write_bytes(newlines(text, newline).encode())
    return [("project", path)]


def compiled(paths: list):
    """The rules of policy files ``paths`` with their positions, or the diagnostics raised."""
    try:
        policy_set = _compile(None, paths, fact_type, known_fact_names())
    except BuildpolicyError as exc:  # the diagnostics, with their caret lines
        return [(getattr(message, "line", None), getattr(message, "col", None), str(message)) for message in exc.messages]
    return ([(rule.id, rule.line, rule.positions, [(e.name, e.line, e.col) for e in rule.env]) for rule in policy_set.rules]
            + [(knob.name, knob.provenance.where(), knob.positions) for knob in policy_set.knob_declarations]
            + [(knob.name, knob.provenance.where(), knob.value_at) for knob in policy_set.knob_values])


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_rule_positions_are_the_full_grammars(tmp_path, newline, full_grammar_only_later):
    paths = written(tmp_path, TRICKY, newline)
    fast = compiled(paths)
    assert [item[0] for item in fast] == ["multi", "dotted", "spaces", "lit", "team_mode", "jobs", "team_mode"]
    assert fast[2][3][0] == ("CARGO_INCREMENTAL", 26, 8)
    full_grammar_only_later()
    assert compiled(paths) == fast


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("number", range(len(BROKEN)))
def test_diagnostics_are_where_the_full_grammar_puts_them(tmp_path, newline, number, full_grammar_only_later):
    paths = written(tmp_path, BROKEN[number], newline)
    fast = compiled(paths)
    assert fast and all(isinstance(item, tuple) and len(item) == 3 for item in fast), fast
    assert all(col is not None for _line, col, _text in fast), fast  # file:line:col: a column everywhere
    full_grammar_only_later()
    assert compiled(paths) == fast
