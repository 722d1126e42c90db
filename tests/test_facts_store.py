"""The fact store: laziness, overrides and coercion, hermetic mode, sources, plugin facts, registry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from buildpolicy.errors import BuildpolicyError
from buildpolicy.facts import (
    HERMETIC_REASON,
    LISTED_TOOLS,
    FactSpec,
    FactStore,
    FactUnknown,
    ProbeContext,
    fact_type,
    known_fact_names,
    spec_for,
)
from buildpolicy.facts.store import BuiltinProbe, FactRegistry

GiB = 1 << 30


def make_ctx(tmp_path: Path, **kw) -> ProbeContext:
    kw.setdefault("environ", {"HOME": str(tmp_path)})
    return ProbeContext(cwd=tmp_path, cache_dir=tmp_path / "cache", **kw)


@pytest.fixture
def probes_run(monkeypatch):
    """Record every built-in probe that actually runs."""
    ran: list[str] = []
    real = BuiltinProbe.run

    def run(self, session):
        ran.append(self.fact)
        return real(self, session)

    monkeypatch.setattr(BuiltinProbe, "run", run)
    return ran


def test_registry_names_and_types():
    names = known_fact_names()
    for name in ("os", "arch", "host.triple", "cpu.count", "memory.total", "memory.available", "swap.total",
                 "swap.free", "cgroup.memory_limit", "process.earlyoom", "process.oomd", "process.rustc_count",
                 "rust.version", "rust.toolchains", "rust.nightly", "cargo.command", "cargo.profile",
                 "cargo.profile_env", "cargo.profile_inherits", "cargo.incremental", "cargo.explicit_features",
                 "cargo.toolchain_override", "fs.tmp_is_memory", "git.head", "ci"):
        assert name in names
    assert [f"tool.{t}" for t in LISTED_TOOLS] == [n for n in names if n.startswith("tool.")]
    assert not any(n.startswith("env.") for n in names)
    assert fact_type("memory.total") == "size"
    assert fact_type("cpu.count") == "int"
    assert fact_type("process.earlyoom") == "bool"
    assert fact_type("rust.toolchains") == "list"
    assert fact_type("tool.anything-at-all") == "string"
    assert fact_type("env.MY_VAR") == "string"
    assert fact_type("tool.") is None
    assert fact_type("env") is None
    assert fact_type("memory.totl") is None
    assert spec_for("os").doc


def test_asking_for_os_runs_no_other_probe(tmp_path, probes_run):
    facts = FactStore(make_ctx(tmp_path))
    assert isinstance(facts.get("os"), str)
    assert probes_run == ["os"]
    facts.get("os")
    assert probes_run == ["os"]  # memoized
    facts.get("host.triple")
    assert probes_run == ["os", "host.triple", "arch"]
    assert list(facts.probed()) == ["os", "host.triple", "arch"]


def test_overrides_win_and_are_not_probed(tmp_path, probes_run):
    facts = FactStore(make_ctx(tmp_path), overrides={"memory.total": "16GiB", "process.earlyoom": "true",
                                                     "cpu.count": 8, "swap.total": 0})
    assert facts.get("memory.total") == 16 * GiB
    assert facts.get("process.earlyoom") is True
    assert facts.get("cpu.count") == 8
    assert facts.get("swap.total") == 0
    assert facts.source("memory.total") == "override"
    assert probes_run == []


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("memory.total", "16 lots", "size"),
    ("memory.total", True, "size"),
    ("process.earlyoom", "maybe", "bool"),
    ("process.earlyoom", 1, "bool"),
    ("cpu.count", "eight", "int"),
    ("os", 3, "string"),
    ("rust.toolchains", "stable", "list"),
])
def test_bad_override_names_fact_value_and_type(tmp_path, name, value, expected):
    with pytest.raises(BuildpolicyError) as info:
        FactStore(make_ctx(tmp_path), overrides={name: value})
    message = str(info.value)
    assert name in message and repr(value) in message and expected in message


def test_unknown_override_name_is_an_error(tmp_path):
    with pytest.raises(BuildpolicyError, match="memory.totl"):
        FactStore(make_ctx(tmp_path), overrides={"memory.totl": 1})


def test_null_override_is_unknown_with_a_reason(tmp_path):
    facts = FactStore(make_ctx(tmp_path), overrides={"memory.available": None})
    assert facts.get("memory.available") is None
    assert facts.unknown_reason("memory.available") == "given as null"


def test_hermetic_store_knows_only_given_and_invocation_facts(tmp_path, probes_run):
    ctx = make_ctx(tmp_path, environ={"CI": "1", "EDITOR": "vi"}, cargo_argv=("cargo", "build", "--profile", "selfdev"))
    facts = FactStore(ctx, overrides={"os": "linux", "memory.total": "16GiB"}, hermetic=True)
    assert facts.get("os") == "linux"
    assert facts.get("memory.total") == 16 * GiB
    for machine_fact in ("memory.available", "cpu.count", "process.earlyoom", "tool.mold", "rust.nightly", "git.head"):
        assert facts.get(machine_fact) is None
        assert facts.unknown_reason(machine_fact) == HERMETIC_REASON
        assert facts.source(machine_fact) == "hermetic"
    # Facts of the invocation itself mean the same on every machine.
    assert facts.get("cargo.profile_env") == "SELFDEV"
    assert facts.get("ci") is True
    assert facts.get("env.EDITOR") == "vi"
    assert "memory.available" not in probes_run and "cpu.count" not in probes_run


def test_unknown_fact_name_raises_key_error(tmp_path):
    facts = FactStore(make_ctx(tmp_path))
    with pytest.raises(KeyError):
        facts.get("no.such.fact")


def test_probed_keeps_ask_order(tmp_path):
    facts = FactStore(make_ctx(tmp_path), overrides={"cargo.profile": "fast"})
    facts.get("ci")
    facts.get("cargo.profile_env")
    facts.get("env.NOPE")
    assert list(facts.probed()) == ["ci", "cargo.profile_env", "cargo.profile", "env.NOPE"]
    assert facts.probed()["env.NOPE"] is None


def test_plugin_facts_get_the_probe_context(tmp_path):
    seen = []

    def good(ctx):
        seen.append(ctx)
        return 42

    def broken(ctx):
        raise RuntimeError("boom")

    def why(ctx):
        raise FactUnknown("no sensor")

    extra = [
        FactSpec("plugin.answer", "int", "an answer", good),
        FactSpec("plugin.broken", "string", "raises", broken),
        FactSpec("plugin.typo", "bool", "wrong type", lambda ctx: "yes"),
        FactSpec("plugin.why", "size", "unknown with a reason", why),
    ]
    ctx = make_ctx(tmp_path)
    facts = FactStore(ctx, overrides={"plugin.why": "1GiB"}, extra_specs={s.name: s for s in extra})
    assert facts.get("plugin.answer") == 42 and seen == [ctx]
    assert facts.get("plugin.broken") is None
    assert facts.unknown_reason("plugin.broken") == "probe failed: RuntimeError: boom"
    assert facts.get("plugin.typo") is None
    assert "not a bool" in facts.unknown_reason("plugin.typo")
    assert facts.get("plugin.why") == GiB
    assert FactStore(ctx, extra_specs=extra).unknown_reason("plugin.why") == "no sensor"
    assert "plugin.answer" in FactStore(ctx, extra_specs=extra).probe_all(["plugin.answer"])


def test_extra_facts_cannot_shadow_built_ins():
    with pytest.raises(BuildpolicyError, match="memory.total"):
        FactRegistry([FactSpec("memory.total", "size", "again", lambda ctx: 1)])
    with pytest.raises(BuildpolicyError, match="env.X"):
        FactRegistry([FactSpec("env.X", "string", "dynamic", lambda ctx: "")])
    with pytest.raises(ValueError):
        FactSpec("x.y", "float", "bad type", lambda ctx: 1.0)


def test_a_probe_that_raises_is_null_not_fatal(tmp_path, monkeypatch):
    from buildpolicy.facts import system

    def explode(s):
        raise OSError("disk on fire")

    monkeypatch.setattr(system, "probe_arch", explode)
    facts = FactStore(make_ctx(tmp_path))
    assert facts.get("arch") is None
    assert "disk on fire" in facts.unknown_reason("arch")
    assert facts.get("host.triple") is None  # depends on arch


def test_a_probe_depending_on_itself_is_null(tmp_path, monkeypatch):
    from buildpolicy.facts import system

    monkeypatch.setattr(system, "probe_os", lambda s: s.fact("host.triple") and "linux")
    facts = FactStore(make_ctx(tmp_path))
    assert facts.get("host.triple") is None


def test_builtin_probe_called_with_a_plain_context(tmp_path):
    ctx = make_ctx(tmp_path, environ={"CI": "true"})
    assert spec_for("ci").probe(ctx) is True
    assert spec_for("env.CI").probe(ctx) == "true"


def test_context_snapshots_the_environment(tmp_path):
    environ = {"A": "1"}
    ctx = make_ctx(tmp_path, environ=environ)
    environ["A"] = "2"
    assert ctx.environ["A"] == "1"
    with pytest.raises(TypeError):
        ctx.environ["A"] = "3"


def test_from_process_uses_the_xdg_cache_dir(tmp_path):
    ctx = ProbeContext.from_process(environ={"XDG_CACHE_HOME": str(tmp_path), "HOME": "/nowhere"})
    assert ctx.cache_dir == tmp_path / "buildpolicy"
    assert ctx.cwd == Path(os.getcwd())
