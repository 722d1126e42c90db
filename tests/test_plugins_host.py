"""The plugin host: documented hooks, registration order, entry points, validation."""

from __future__ import annotations

import inspect

import pluggy
import pytest

from buildpolicy import hookimpl, hookspecs
from buildpolicy.errors import BuildpolicyError
from buildpolicy.model import KnobSpec
from buildpolicy.engine.pluginhost import discover_entry_points, make_plugin_manager


def test_every_hook_is_documented():
    names = hookspecs.hook_names()
    assert {"buildpolicy_declare_knobs", "buildpolicy_declare_facts", "buildpolicy_decide",
            "buildpolicy_render_env", "buildpolicy_wrap_exec"} <= set(names)
    for name in names:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc.split()) >= 10, f"{name} needs a docstring saying when it is called and what it returns"
        assert "firstresult" in doc, f"{name}: say whether it is firstresult"


def test_builtins_register_through_entry_points_first(tmp_path):
    entry_points = discover_entry_points(tmp_path)
    builtin = [name for name, value, dist in entry_points if dist == "buildpolicy"]
    assert {"jobs", "sccache", "tmpdir"} <= set(builtin)
    assert all(value.startswith("buildpolicy_plugins.") for name, value, dist in entry_points if dist == "buildpolicy")
    # Cached on the second call, same answer.
    assert (tmp_path / "entry-points.json").is_file()
    assert discover_entry_points(tmp_path) == entry_points
    host = make_plugin_manager(cache_dir=tmp_path)
    assert host.plugin_names()[:3] == [n for n, _, d in entry_points if d == "buildpolicy"][:3]


@pytest.mark.parametrize("garbage", ["{not json", "null", "[1]", '"s"', '{"fingerprint": null, "entry_points": 5}'])
def test_a_corrupt_entry_point_cache_is_rebuilt(tmp_path, garbage):
    (tmp_path / "entry-points.json").write_text(garbage)
    assert any(name == "jobs" for name, _, _ in discover_entry_points(tmp_path))


def test_a_cache_with_the_right_fingerprint_but_bad_entries_is_rebuilt(tmp_path):
    import json

    from buildpolicy.filestate import sys_path_state

    (tmp_path / "entry-points.json").write_text(json.dumps({"fingerprint": sys_path_state(), "entry_points": [[1, 2]]}))
    assert any(name == "jobs" for name, _, _ in discover_entry_points(tmp_path))


def test_hookimpl_without_spec_is_rejected_naming_the_plugin():
    class Typo:
        @hookimpl
        def buildpolicy_decied(self, ctx):
            return None

    with pytest.raises(BuildpolicyError, match="typo"):
        make_plugin_manager(entry_points=False, extra_plugins=[("typo", Typo())])


def test_knob_declared_twice_names_both_plugins():
    class One:
        @hookimpl
        def buildpolicy_declare_knobs(self):
            return [KnobSpec("colour", "string")]

    host = make_plugin_manager(entry_points=False, extra_plugins=[("one", One()), ("two", One())])
    with pytest.raises(BuildpolicyError, match="one.*'two'"):
        host.knob_specs()


def test_plugin_that_fails_to_import_is_reported(tmp_path):
    bad = tmp_path / "broken_plugin.py"
    bad.write_text("raise ImportError('no such thing')\n")
    host = make_plugin_manager(entry_points=False, plugin_paths=[bad])
    assert any("broken_plugin" in e and "no such thing" in e for e in host.load_errors)


def _pluggy_manager(plugins) -> pluggy.PluginManager:
    """pluggy's own manager with buildpolicy's specifications and these ``(name, plugin)`` pairs."""
    pm = pluggy.PluginManager(hookimpl.project_name)
    pm.add_hookspecs(hookspecs)
    for name, plugin in plugins:
        pm.register(plugin, name=name)
    pm.check_pending()
    return pm


def test_pluggy_itself_reads_our_markers():
    # buildpolicy's markers are its own (no pluggy import at the prompt), but plugins stay pluggy plugins.
    assert hookimpl.project_name == "buildpolicy"
    pm = _pluggy_manager([("ours", _Wraps("ours"))])
    assert pm.hook.buildpolicy_render_env(set_env={}, unset=[], shell="posix", fmt="x") == "rendered by ours\n"
    assert pm.hook.buildpolicy_render_env.spec.opts["firstresult"] is True


# --- isolation of every hook (DESIGN §8): named, reported, the others still run ---


def _plan(argv=("cargo", "build")):
    from buildpolicy.engine.context import ExecPlan

    return ExecPlan(argv=tuple(argv), env={})


class _Boom:
    @hookimpl
    def buildpolicy_wrap_exec(self, plan, ctx):
        raise RuntimeError("wrap went wrong")

    @hookimpl
    def buildpolicy_render_env(self, set_env, unset, shell, fmt):
        raise RuntimeError("render went wrong")


class _Wraps:
    def __init__(self, tag):
        self.tag = tag

    @hookimpl
    def buildpolicy_wrap_exec(self, plan, ctx):
        import attrs

        return attrs.evolve(plan, execution={"mode": "local", "by": self.tag})

    @hookimpl
    def buildpolicy_render_env(self, set_env, unset, shell, fmt):
        return f"rendered by {self.tag}\n"


def test_wrap_exec_plugin_that_raises_is_reported_and_the_next_one_asked():
    host = make_plugin_manager(entry_points=False, extra_plugins=[("good", _Wraps("good")), ("boom", _Boom())])
    plan = host.wrap_exec(_plan(), ctx=None)  # "boom" (registered last) is asked first, fails; "good" wraps
    assert plan.execution["by"] == "good"
    assert any("'boom'" in w and "buildpolicy_wrap_exec" in w and "wrap went wrong" in w for w in host.warnings)


def test_wrap_exec_alone_failing_runs_the_plan_as_it_is():
    host = make_plugin_manager(entry_points=False, extra_plugins=[("boom", _Boom())])
    original = _plan()
    assert host.wrap_exec(original, ctx=None) is original
    assert any("'boom'" in w for w in host.warnings)


def test_wrap_exec_keeps_pluggys_firstresult_order():
    # pluggy asks the last registered plugin first: a third-party plugin beats a built-in.
    plugins = [("first", _Wraps("first")), ("second", _Wraps("second"))]
    host = make_plugin_manager(entry_points=False, extra_plugins=plugins)
    assert host.wrap_exec(_plan(), ctx=None).execution["by"] == "second"
    assert _pluggy_manager(plugins).hook.buildpolicy_wrap_exec(plan=_plan(), ctx=None).execution["by"] == "second"
    assert host.warnings == []


def test_wrap_exec_result_of_the_wrong_type_is_reported_and_skipped():
    class Junk:
        @hookimpl
        def buildpolicy_wrap_exec(self, plan, ctx):
            return "not a plan"

    host = make_plugin_manager(entry_points=False, extra_plugins=[("good", _Wraps("good")), ("junk", Junk())])
    assert host.wrap_exec(_plan(), ctx=None).execution["by"] == "good"
    assert any("'junk'" in w and "str" in w and "ExecPlan" in w for w in host.warnings)


def test_wrap_exec_deliberate_refusal_still_propagates():
    class Refuses:
        @hookimpl
        def buildpolicy_wrap_exec(self, plan, ctx):
            raise BuildpolicyError("no build host is up", exit_code=75)

    host = make_plugin_manager(entry_points=False, extra_plugins=[("good", _Wraps("good")), ("remote", Refuses())])
    with pytest.raises(BuildpolicyError) as info:
        host.wrap_exec(_plan(), ctx=None)
    assert info.value.exit_code == 75


def test_render_env_plugin_that_raises_is_isolated():
    host = make_plugin_manager(entry_points=False, extra_plugins=[("good", _Wraps("good")), ("boom", _Boom())])
    assert host.render_env(set_env={}, unset=[], shell="posix", fmt="weird") == "rendered by good\n"
    assert any("'boom'" in w and "render went wrong" in w for w in host.warnings)


def test_render_env_failure_with_no_other_taker_is_an_error_naming_the_plugin():
    host = make_plugin_manager(entry_points=False, extra_plugins=[("boom", _Boom())])
    with pytest.raises(BuildpolicyError, match="'boom'.*render went wrong"):
        host.render_env(set_env={}, unset=[], shell="posix", fmt="weird")


def test_render_env_with_no_plugin_for_the_format_returns_none():
    assert make_plugin_manager(entry_points=False).render_env(set_env={}, unset=[], shell="posix", fmt="weird") is None


@pytest.mark.parametrize("declared", [5, "colour", [5, "x", None], {"name": "colour"}])
def test_knob_declarations_that_are_not_knobspecs_are_reported_and_skipped(declared):
    class Bad:
        @hookimpl
        def buildpolicy_declare_knobs(self):
            return declared

    class Good:
        @hookimpl
        def buildpolicy_declare_knobs(self):
            return [KnobSpec("colour", "string")]

    host = make_plugin_manager(entry_points=False, extra_plugins=[("bad", Bad()), ("good", Good())])
    assert [spec.name for spec in host.knob_specs()] == ["colour"]
    assert host.warnings and all("'bad'" in w for w in host.warnings)


def test_knob_of_an_unknown_type_is_reported_and_skipped():
    class Bad:
        @hookimpl
        def buildpolicy_declare_knobs(self):
            return [KnobSpec("shade", "colour"), KnobSpec("ok", "int")]

    host = make_plugin_manager(entry_points=False, extra_plugins=[("bad", Bad())])
    assert [spec.name for spec in host.knob_specs()] == ["ok"]
    assert any("'bad'" in w and "shade" in w for w in host.warnings)


@pytest.mark.parametrize("declared", [["nope"], 5, "nope", [None]])
def test_fact_declarations_that_are_not_factspecs_are_reported_and_skipped(declared):
    from buildpolicy.facts import FactSpec

    class Bad:
        @hookimpl
        def buildpolicy_declare_facts(self):
            return declared

    class Good:
        @hookimpl
        def buildpolicy_declare_facts(self):
            return [FactSpec("team.thing", "string", "a team fact", lambda ctx: "x")]

    host = make_plugin_manager(entry_points=False, extra_plugins=[("bad", Bad()), ("good", Good())])
    assert [spec.name for spec in host.fact_specs()] == ["team.thing"]
    assert host.warnings and all("'bad'" in w for w in host.warnings)


def test_a_bad_declaration_plugin_does_not_stop_a_run_and_is_warned_about(tmp_path, base_env):
    from buildpolicy.engine.pipeline import Request, evaluate

    class Bad:
        @hookimpl
        def buildpolicy_declare_facts(self):
            return ["nope"]

        @hookimpl
        def buildpolicy_declare_knobs(self):
            return 5

    result = evaluate(Request(cwd=tmp_path, environ=base_env, fact_overrides={}, hermetic=True,
                              extra_plugins=(("bad", Bad()),)))
    assert "jobs" in result.decisions
    assert any("'bad'" in w and "FactSpec" in w for w in result.warnings)
    assert any("'bad'" in w and "int" in w for w in result.warnings)


def test_exec_reports_a_failing_wrap_exec_plugin(tmp_path, base_env):
    from buildpolicy.run import execute
    from buildpolicy.engine.pipeline import Request

    request = Request(cwd=tmp_path, environ=base_env, command="exec", cargo_argv=("cargo", "build"),
                      fact_overrides={}, hermetic=True, extra_plugins=(("boom", _Boom()),))
    result, plan = execute._plan(request, True, ["cargo", "build"])
    assert plan.argv[:2] == ("cargo", "build")
    assert any("'boom'" in w and "wrap went wrong" in w for w in result.warnings)
