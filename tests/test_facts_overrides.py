"""--facts files: JSON and TOML, dotted keys and nested tables, coercion and error reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildpolicy.errors import BuildpolicyError
from buildpolicy.facts import FactSpec, load_facts_file

GiB = 1 << 30

EXPECTED = {
    "os": "linux",
    "memory.total": 16 * GiB,
    "memory.available": 6 * GiB,
    "swap.total": 0,
    "process.earlyoom": True,
    "cpu.count": 8,
    "tool.ld.lld": "/usr/bin/ld.lld",
    "env.CARGO_TARGET_DIR": "/tmp/t",
    "rust.toolchains": ["stable", "nightly"],
}

FILES = {
    "dotted.toml": """\
os = "linux"
"memory.total" = "16GiB"
"memory.available" = "6GiB"
"swap.total" = 0
"process.earlyoom" = true
"cpu.count" = 8
"tool.ld.lld" = "/usr/bin/ld.lld"
"env.CARGO_TARGET_DIR" = "/tmp/t"
"rust.toolchains" = ["stable", "nightly"]
""",
    "nested.toml": """\
os = "linux"
cpu.count = 8
rust.toolchains = ["stable", "nightly"]

[memory]
total = "16GiB"
available = 6442450944

[swap]
total = 0

[process]
earlyoom = "true"

[tool]
"ld.lld" = "/usr/bin/ld.lld"

[env]
CARGO_TARGET_DIR = "/tmp/t"
""",
    "dotted.json": """{
  "os": "linux", "memory.total": "16GiB", "memory.available": "6GiB", "swap.total": 0,
  "process.earlyoom": true, "cpu.count": 8, "tool.ld.lld": "/usr/bin/ld.lld",
  "env.CARGO_TARGET_DIR": "/tmp/t", "rust.toolchains": ["stable", "nightly"]
}""",
    "nested.json": """{
  "os": "linux",
  "memory": {"total": "16GiB", "available": "6 GiB"},
  "swap": {"total": "0"},
  "process": {"earlyoom": true},
  "cpu": {"count": 8},
  "tool": {"ld": {"lld": "/usr/bin/ld.lld"}},
  "env": {"CARGO_TARGET_DIR": "/tmp/t"},
  "rust": {"toolchains": ["stable", "nightly"]}
}""",
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_spelling_gives_the_same_facts(tmp_path, name):
    path = tmp_path / name
    path.write_text(FILES[name])
    assert load_facts_file(path) == EXPECTED


def test_files_without_json_suffix_are_toml(tmp_path):
    path = tmp_path / "laptop.facts"
    path.write_text('os = "macos"\n')
    assert load_facts_file(path) == {"os": "macos"}


def test_json_null_is_an_unknown_fact(tmp_path):
    path = tmp_path / "f.json"
    path.write_text('{"memory.available": null}')
    assert load_facts_file(path) == {"memory.available": None}


def test_unknown_names_are_listed_with_the_file_and_a_suggestion(tmp_path):
    path = tmp_path / "f.toml"
    path.write_text('"memory.totl" = "1GiB"\n[cpu]\ncores = 4\n')
    with pytest.raises(BuildpolicyError) as info:
        load_facts_file(path)
    message = str(info.value)
    assert str(path) in message
    assert "memory.totl (did you mean memory.total?)" in message
    assert "cpu.cores" in message


def test_bad_values_are_all_reported(tmp_path):
    path = tmp_path / "f.toml"
    path.write_text('"memory.total" = "lots"\n"process.oomd" = "perhaps"\n"cpu.count" = 2\n')
    with pytest.raises(BuildpolicyError) as info:
        load_facts_file(path)
    assert len(info.value.messages) == 2
    first, second = info.value.messages
    assert str(path) in first and "memory.total" in first and "'lots'" in first and "size" in first
    assert "process.oomd" in second and "'perhaps'" in second and "bool" in second


def test_malformed_toml_has_a_position(tmp_path):
    path = tmp_path / "f.toml"
    path.write_text('os = "linux"\n"memory.total" = \n')
    with pytest.raises(BuildpolicyError) as info:
        load_facts_file(path)
    (diag,) = info.value.diagnostics
    assert (diag.file, diag.line) == (str(path), 2)
    assert diag.col is not None
    assert str(info.value).startswith(f"{path}:2:")
    assert "(at line" not in str(info.value)


def test_malformed_json_has_a_position(tmp_path):
    path = tmp_path / "f.json"
    path.write_text('{\n  "os": "linux",\n  "cpu.count": ,\n}')
    with pytest.raises(BuildpolicyError) as info:
        load_facts_file(path)
    (diag,) = info.value.diagnostics
    assert (diag.file, diag.line, diag.col) == (str(path), 3, 16)


def test_json_must_be_an_object(tmp_path):
    path = tmp_path / "f.json"
    path.write_text('["os"]')
    with pytest.raises(BuildpolicyError, match="table of facts"):
        load_facts_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(BuildpolicyError, match="cannot read facts file"):
        load_facts_file(tmp_path / "nope.toml")


def test_plugin_facts_are_accepted_when_declared(tmp_path):
    path = tmp_path / "f.toml"
    path.write_text('[gpu]\nmemory = "8GiB"\n')
    with pytest.raises(BuildpolicyError):
        load_facts_file(path)
    spec = FactSpec("gpu.memory", "size", "GPU memory", lambda ctx: None)
    assert load_facts_file(Path(path), extra_specs=[spec]) == {"gpu.memory": 8 * GiB}
