"""The warm replay's light replacements for `re` and `json` decide exactly as those did.

`is_build_variable` lost its regular expression and the env-state record its
`json.loads` (both imported `re` at every prompt); these tests hold them to the
old definitions, and check that a forged record nested thousands deep is
ignored like any other corrupt record instead of crashing the prompt.
"""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buildpolicy.engine.envstate import STATE_VAR, restore_baseline
from buildpolicy.filestate import json_value as _json_loads
from buildpolicy.policy.buildvars import C_TOOL_VARS, is_build_variable
from buildpolicy.facts.rust import _nightly_date

_TOOLS = "|".join(C_TOOL_VARS)
OLD_C_TOOL_FORM = re.compile(rf"(?:(?:HOST|TARGET)_)?(?:{_TOOLS})|(?:{_TOOLS})_[A-Za-z0-9_]+")


def old_is_build_variable(name: str) -> bool:
    from buildpolicy.policy.buildvars import EXACT_NAMES, NAMESPACES

    return name in EXACT_NAMES or name.startswith(NAMESPACES) or OLD_C_TOOL_FORM.fullmatch(name) is not None


NAME_PIECES = st.sampled_from(["CC", "CXX", "AR", "ARFLAGS", "CFLAGS", "CXXFLAGS", "CXXSTDLIB", "HOST_", "TARGET_",
                               "_", "x86_64", "-", "é", "ARGV0", "CCACHE_", "CARGO_", "PATH", "1", " ", "\n", "ٳ"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(NAME_PIECES, max_size=5).map("".join) | st.text(max_size=8))
def test_build_variables_are_the_names_the_old_pattern_matched(name):
    assert is_build_variable(name) == old_is_build_variable(name)


@pytest.mark.parametrize("name", ["CC", "HOST_CC", "TARGET_CXXFLAGS", "CC_x86_64_unknown_linux_gnu", "AR___",
                                  "CC_", "CCX", "HOST_CC_x", "ARGV0", "CC_é", "CC_-x", "TARGET_", "CXXSTDLIB_1"])
def test_c_tool_forms(name):
    assert is_build_variable(name) == old_is_build_variable(name)


JSON_TEXTS = ['{"orig":{"CC":null},"set":{"CC":"1a2"}}', ' {"a":1} ', '\t[1]\n', '{"a":1}x', "", "nul", "[1,",
              '"\x01"', '{"a":"\\ud800"}', "[1e400, -0.0, 12345678901234567890]", "{'a': 1}", "[NaN]"]


@pytest.mark.parametrize("text", JSON_TEXTS)
def test_state_record_json_reads_as_json_loads(text):
    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            _json_loads(text)
        return
    got = _json_loads(text)
    if text == "[NaN]":
        assert math.isnan(got[0])
    else:
        assert got == expected and json.dumps(got) == json.dumps(expected)


def test_a_record_nested_thousands_deep_is_ignored_not_a_crash():
    environ = {STATE_VAR: "[" * 200_000, "CARGO_BUILD_JOBS": "3"}
    assert restore_baseline(environ) == ({"CARGO_BUILD_JOBS": "3"}, {})


def test_env_with_a_deeply_nested_record_still_prints_the_environment(cli, tmp_path):
    proc = cli("env", cwd=tmp_path, env={STATE_VAR: "[" * 100_000})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "export BUILDPOLICY_ENV_STATE=" in proc.stdout


# `rust.nightly`, re-probed by a replay, picks the newest dated nightly without `re` now.
OLD_DATED_NIGHTLY = re.compile(r"^nightly-(\d{4}-\d{2}-\d{2})(?:-|$)")
NIGHTLY_PIECES = st.sampled_from(["nightly", "-", "2026", "05", "01", "1", "x86_64-unknown-linux-gnu", "\n", "٢", "²",
                                  "_", "stable", "0"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(NIGHTLY_PIECES, max_size=8).map("".join) | st.text(max_size=24))
def test_dated_nightlies_are_the_names_the_old_pattern_matched(name):
    match = OLD_DATED_NIGHTLY.match(name)
    assert _nightly_date(name) == (match.group(1) if match else None)
