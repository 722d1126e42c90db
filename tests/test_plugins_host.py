"""The plugin host: documented hooks, registration order, entry points, validation."""

from __future__ import annotations

import inspect

import pluggy
import pytest

from buildpolicy import hookimpl, hookspecs
from buildpolicy.errors import BuildpolicyError
from buildpolicy.model import KnobSpec
from buildpolicy.pluginhost import discover_entry_points, make_plugin_manager


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

    from buildpolicy.pluginhost import _sys_path_fingerprint

    (tmp_path / "entry-points.json").write_text(json.dumps({"fingerprint": _sys_path_fingerprint(), "entry_points": [[1, 2]]}))
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


def test_hookspec_marker_project_name():
    assert isinstance(hookimpl, pluggy.HookimplMarker)
    assert hookimpl.project_name == "buildpolicy"
