"""Probe every fact on the real machine: each is a value of its type, or null with a reason."""

from __future__ import annotations

import os

from buildpolicy.facts import FactStore, ProbeContext, fact_type, known_fact_names
from buildpolicy.facts.coerce import matches_type


def test_every_fact_on_this_machine(tmp_path):
    ctx = ProbeContext.from_process(environ=dict(os.environ), cache_dir=tmp_path / "cache",
                                    cargo_argv=("cargo", "build", "--release"))
    facts = FactStore(ctx)
    names = [*known_fact_names(), "env.PATH", "env.BUILDPOLICY_SURELY_UNSET", "tool.sh"]
    values = facts.probe_all(names)
    assert list(values) == names
    for name, value in values.items():
        if value is None:
            assert facts.unknown_reason(name), name
        else:
            assert matches_type(fact_type(name), value), (name, value)
            assert facts.unknown_reason(name) is None
        assert facts.source(name) in ("probe", "cache")
    # Facts every machine running these tests has.
    for name in ("os", "arch", "cpu.count", "cargo.command", "cargo.profile", "env.PATH", "ci", "fs.tmp_is_memory"):
        assert values[name] is not None, (name, facts.unknown_reason(name))
    assert values["cpu.count"] >= 1
    assert values["cargo.profile"] == "release"
    if values["os"] == "linux":
        assert values["memory.total"] > 0 and values["memory.available"] <= values["memory.total"]
        assert values["process.rustc_count"] >= 0


def test_probe_all_defaults_to_the_static_facts(tmp_path):
    ctx = ProbeContext(cwd=tmp_path, environ={}, cache_dir=tmp_path / "cache")
    facts = FactStore(ctx, overrides={name: None for name in known_fact_names()})
    assert list(facts.probe_all()) == known_fact_names()
