"""``check`` scales linearly with the number of rules (issue 10, item 13).

Counting work, never timing: the conflict analysis compares only rules that
set one variable to different values and could match together, and loading
scans each file once, however many positions are asked for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from buildpolicy.facts import fact_type, known_fact_names
from buildpolicy.policy import tomlpos
from buildpolicy.policy.conflicts import Pins, possible_conflicts
from buildpolicy.policy.loader import _compile


def compile_rules(tmp_path: Path, tables: list[str], files: int = 4) -> list:
    """Compile ``tables`` (``[[rule]]`` bodies) spread over ``files`` policy files of the project layer."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(files):
        path = tmp_path / f"p{number:02d}.toml"
        path.write_text("".join(f"[[rule]]\n{body}\n" for body in tables[number::files]))
        paths.append(("project", path))
    return list(_compile(None, paths, fact_type, known_fact_names()).rules)


def bench_shaped(count: int) -> list[str]:
    """Like bench/bench_env.py's rules: each sets variables of its own."""
    return [f'id = "r{n}"\nwhen = "cpu.count >= {n % 8} and os == \'linux\'"\nenv = {{ CARGO_BENCH_{n} = "{n}" }}'
            for n in range(count)]


def per_host(count: int) -> list[str]:
    """Every rule sets one variable differently, each for one host: they never match together."""
    return [f'id = "h{n}"\nwhen = "env.HOSTNAME == \'host{n}\'"\nenv = {{ CARGO_BUILD_JOBS = "{n}" }}' for n in range(count)]


def agreeing(count: int) -> list[str]:
    """Many rules set one value, one rule another: one conflict per rule, none among the many."""
    return [f'id = "a{n}"\nenv = {{ CARGO_TERM_COLOR = "{"never" if n == 0 else "always"}" }}' for n in range(count)]


@pytest.mark.parametrize("shape", [bench_shaped, per_host, agreeing])
def test_conflict_analysis_work_grows_linearly(tmp_path, shape):
    work = []
    for count in (500, 1000):
        rules = compile_rules(tmp_path / f"{shape.__name__}-{count}", shape(count))
        pins = Pins()
        possible_conflicts(rules, pins)
        assert pins.computed <= count
        work.append(pins.compared)
    small, large = work
    assert large <= 2 * small + 20, work  # twice the rules, at most twice the comparisons
    assert large <= 1000


def test_conflicts_are_still_found_among_many_rules(tmp_path):
    rules = compile_rules(tmp_path, per_host(300) + ['id = "everywhere"\nenv = { CARGO_BUILD_JOBS = "1" }'])
    warnings = possible_conflicts(rules)
    # The unconditional rule meets every host rule; the host rules never meet each other.
    assert warnings and all("'everywhere'" in w for w in warnings[:-1])
    assert "more pairs of rules" in warnings[-1] and "(301 rules set it)" in warnings[-1]
    os_rules = ['id = "l"\nwhen = "os == \'linux\'"\nenv = { CARGO_X = "1" }',
                'id = "m"\nwhen = "os == \'macos\'"\nenv = { CARGO_X = "2" }',
                'id = "c"\nwhen = "ci"\nenv = { CARGO_X = "3" }']
    found = possible_conflicts(compile_rules(tmp_path / "os", os_rules, files=1))
    assert len(found) == 2 and all("'c'" in w for w in found)


def test_each_file_is_scanned_once_however_many_positions_are_asked(tmp_path, monkeypatch):
    scans = []
    real = tomlpos.TomlDocument._scan
    monkeypatch.setattr(tomlpos.TomlDocument, "_scan", lambda self: scans.append(self.path) or real(self))
    compile_rules(tmp_path, bench_shaped(400), files=4)
    assert len(scans) == 4


# Rule tables the fast schema check must judge exactly as jsonschema does whenever it says "valid".
RULE_TABLES = [
    {"id": "a"}, {"id": "a", "when": "ci", "env": {"CARGO_X": "1"}, "unset": ["CARGO_Y"], "priority": 2, "force": True},
    {"id": "a", "decide": {"sccache": "off", "n": 3, "b": False}, "rustflags": ["-Cx"], "enabled": False, "knob": "k"},
    {"id": "a", "description": "d", "status": "s"},
    {}, {"id": ""}, {"id": "-bad"}, {"id": 5}, {"id": "a", "extra": 1}, {"id": "a", "priority": True},
    {"id": "a", "priority": 5.0}, {"id": "a", "priority": 1.5}, {"id": "a", "env": {"": "x"}},
    {"id": "a", "env": {"X": 1}}, {"id": "a", "env": []}, {"id": "a", "unset": ["CARGO X"]}, {"id": "a", "unset": [""]},
    {"id": "a", "unset": "X"}, {"id": "a", "decide": {"x": 1.5}}, {"id": "a", "decide": {"x": [1]}},
    {"id": "a", "rustflags": [1]}, {"id": "a", "knob": "Bad"}, {"id": "a", "force": "yes"}, {"id": "a", "when": 3},
    "not a table", ["x"], None,
]


@pytest.mark.parametrize("kind", ["policy", "profile"])
def test_the_fast_rule_check_never_vouches_for_what_the_schema_rejects(kind):
    from buildpolicy.policy.rulecheck import rule_checker
    from buildpolicy.policy.validate import _validator

    validator = _validator(kind)
    check = rule_checker(validator.schema)
    assert check is not None, "the fast path is off: the schema's rule definition uses a keyword it does not know"
    vouched = 0
    for table in RULE_TABLES:
        if check(table):
            vouched += 1
            assert list(validator.iter_errors({"rule": [table]})) == [], table
    assert vouched >= 4


def test_schema_errors_keep_the_positions_of_the_rules_in_the_file(tmp_path):
    from buildpolicy.policy.validate import validate_data

    tables = [{"id": "ok1"}, {"id": "bad", "force": "yes"}, {"id": "ok2", "env": {"CARGO_X": "1"}}, {"id": 7}]
    messages = [d.message for d in validate_data({"rule": tables}, "policy")]
    assert any(m.startswith("rule[1].force") for m in messages) and any(m.startswith("rule[3].id") for m in messages)
    assert len(messages) == 2


# Whole documents the fast check must judge exactly as jsonschema does whenever it says "valid".
DOCUMENTS = [
    {}, {"rule": []}, {"rule": [{"id": "a"}, {"id": "b", "env": {"CARGO_X": "1"}}]}, {"rule": [{"id": "a"}, {"id": 5}]},
    {"rule": {"id": "a"}}, {"rule": "x"}, {"linker": {"skip_profiles": ["release"]}}, {"linker": 1}, {"linker": []},
    {"knobs": {"jobs": 4}}, {"knobs": {"Bad": 4}}, {"knobs": {"x": {"type": "enum", "values": []}}},
    {"policies": ["policies"], "default_profile": "dev", "feature_profiles": {"minimal": ["--no-default-features"]}},
    {"policies": "policies"}, {"policies": [1]}, {"default_profile": 3}, {"extends": ["pack:acme"]}, {"extends": [{}]},
    {"plugin_paths": ["tools/bp.py"], "disable_plugins": ["sccache"]}, {"disable_plugins": "sccache"},
    {"feature_profiles": {"m": "--x"}}, {"feature_profiles": {"m": [1]}}, {"feature_profiles": []},
    {"rule": [{"id": "a"}], "default_profile": "dev", "extends": [], "knobs": {}},
]


@pytest.mark.parametrize("kind", ["policy", "profile"])
def test_the_fast_document_check_never_vouches_for_what_the_schema_rejects(kind):
    from buildpolicy.policy.rulecheck import document_checker
    from buildpolicy.policy.validate import _validator

    validator = _validator(kind)
    check = document_checker(validator.schema)
    assert check is not None, "the fast path is off: the schema uses a keyword the fast check does not know"
    vouched = 0
    for document in DOCUMENTS:
        if check(document):
            vouched += 1
            assert list(validator.iter_errors(document)) == [], document
    assert vouched >= 5
    assert not check({"knobs": {"jobs": 4}})  # knob tables (if/then/else) are always left to jsonschema


def test_a_valid_project_is_compiled_without_importing_jsonschema(tmp_path):
    import subprocess
    import sys

    (tmp_path / "buildpolicy.toml").write_text('policies = ["policies"]\n[feature_profiles]\nm = ["--x"]\n[sccache]\nx = 1\n')
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.toml").write_text("".join(f"[[rule]]\n{body}\n" for body in bench_shaped(50)))
    code = (
        "import sys\nfrom pathlib import Path\nfrom buildpolicy.facts import fact_type, known_fact_names\n"
        "from buildpolicy.policy.loader import _compile\n"
        f"root = Path({str(tmp_path)!r})\n"
        "files = [('project', root / 'buildpolicy.toml'), ('project', root / 'policies' / 'p.toml')]\n"
        "print(len(_compile(root / 'buildpolicy.toml', files, fact_type, known_fact_names()).rules), 'jsonschema' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["50", "False"]


def test_loading_restores_the_collector_and_freezes_only_what_a_large_set_made(tmp_path):
    # In a child: gc.freeze is for the whole process.
    import subprocess
    import sys

    for name, count in (("small", 20), ("large", 2000)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "p.toml").write_text("".join(f"[[rule]]\n{body}\n" for body in bench_shaped(count)))
    code = (
        "import gc\nfrom pathlib import Path\nfrom buildpolicy.facts import fact_type, known_fact_names\n"
        "from buildpolicy.policy.loader import load_policies\n"
        f"root = Path({str(tmp_path)!r})\n"
        "def load(name):\n"
        "    return len(load_policies(profile=None, site_dir=root / 'none', user_dir=root / 'none', builtin_dir=root / name,\n"
        "                             fact_type=fact_type, known_facts=known_fact_names(), cache_dir=root / 'cache').rules)\n"
        "print(load('small'), gc.isenabled(), gc.get_freeze_count() == 0)\n"
        "print(load('small'), gc.isenabled(), gc.get_freeze_count() == 0)  # from the cache\n"
        "print(load('large'), gc.isenabled(), gc.get_freeze_count() > 0)\n"
        "gc.disable()\n"
        "print(load('large'), gc.isenabled())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n") == ["20 True True", "20 True True", "2000 True True", "2000 False", ""]
