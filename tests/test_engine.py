"""The engine end to end (in-process): rules, layers, knobs, decisions, provenance."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildpolicy import hookimpl
from buildpolicy.engine.pipeline import Request, evaluate
from buildpolicy.errors import BuildpolicyError
from buildpolicy.model import Decision
from tests.conftest import DEMO_CARGO_TOML, LOW_MEMORY_LAPTOP, write


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    (root / "policies").mkdir(parents=True)
    (root / "Cargo.toml").write_text(DEMO_CARGO_TOML)
    (root / "buildpolicy.toml").write_text('#:schema ../schema/profile.schema.json\npolicies = ["policies"]\n')
    return root


def run(project, base_env, *, facts=None, argv=None, env=None, sets=(), plugins=(), entry_points=True, **kw):
    environ = dict(base_env)
    environ.update(env or {})
    return evaluate(
        Request(
            cwd=project,
            environ=environ,
            cargo_argv=tuple(argv) if argv else None,
            cli_sets=tuple(sets),
            fact_overrides=dict(LOW_MEMORY_LAPTOP if facts is None else facts),
            hermetic=True,
            extra_plugins=tuple(plugins),
            entry_points=entry_points,
            **kw,
        )
    )


SELFDEV = ["cargo", "build", "--profile", "selfdev"]


def test_low_memory_laptop_gets_the_shipped_rule(project, base_env):
    result = run(project, base_env, argv=SELFDEV)
    assert result.set_env["CARGO_PROFILE_SELFDEV_CODEGEN_UNITS"] == "256"
    assert result.set_env["CARGO_PROFILE_SELFDEV_INCREMENTAL"] == "true"
    assert result.set_env["CARGO_INCREMENTAL"] == "1"
    assert result.decisions["low_memory"].status == "enabled:incremental=true,codegen-units=256"
    assert result.decisions["sccache"].status == "disabled-by-policy:low-memory-incremental"
    # 6 GiB / 1792 MiB = 3.4 → 3 jobs, below the 8 CPUs.
    assert result.decisions["jobs"].status == "adaptive:3 (cpus=8, mem_avail=6144MiB, budget=1792MiB/job)"
    assert result.set_env["CARGO_BUILD_JOBS"] == "3"
    where = result.provenance["CARGO_PROFILE_SELFDEV_CODEGEN_UNITS"]
    assert where.layer == "builtin" and where.source == "rule low-memory-incremental"
    assert where.file.endswith("low-memory.toml") and where.line == 14


def test_low_memory_knob_switches(project, base_env):
    big = dict(LOW_MEMORY_LAPTOP, **{"memory.total": "64GiB", "memory.available": "40GiB"})
    assert run(project, base_env, facts=big, argv=SELFDEV).decisions["low_memory"].status == "auto-not-needed"
    forced = run(project, base_env, facts=big, argv=SELFDEV, sets=["low_memory=on"])
    assert forced.decisions["low_memory"].status == "forced-by-knob"
    assert forced.set_env["CARGO_PROFILE_SELFDEV_CODEGEN_UNITS"] == "256"
    off = run(project, base_env, argv=SELFDEV, env={"BUILDPOLICY_LOW_MEMORY": "off"})
    assert off.decisions["low_memory"].status == "disabled-by-knob"
    assert "CARGO_PROFILE_SELFDEV_CODEGEN_UNITS" not in off.set_env


def test_unknown_fact_makes_comparison_false_and_is_reported(project, base_env):
    facts = dict(LOW_MEMORY_LAPTOP)
    del facts["memory.available"]
    result = run(project, base_env, facts=facts, argv=SELFDEV)
    assert result.decisions["low_memory"].status == "auto-not-needed"
    assert "memory.available" in result.decisions["low_memory"].reason
    assert result.decisions["jobs"].status == "cargo-default"
    assert "CARGO_BUILD_JOBS" not in result.set_env
    assert "memory.available" in result.unknown_facts()


def test_jobs_overrides(project, base_env):
    by_knob = run(project, base_env, env={"CARGO_BUILD_JOBS": "7"}, sets=["jobs=2"])
    assert by_knob.decisions["jobs"].status == "override:2"
    assert by_knob.set_env["CARGO_BUILD_JOBS"] == "2"  # the knob beats the inherited variable
    inherited = run(project, base_env, env={"CARGO_BUILD_JOBS": "5"})
    assert inherited.decisions["jobs"].status == "override:5"
    assert "CARGO_BUILD_JOBS" not in inherited.set_env  # already in the caller's environment
    bad = run(project, base_env, env={"CARGO_BUILD_JOBS": "lots", "BUILDPOLICY_JOBS": "-1"})
    assert bad.decisions["jobs"].status.startswith("adaptive:")
    assert bad.set_env["CARGO_BUILD_JOBS"] == "3"  # replaces the invalid inherited value
    assert any("BUILDPOLICY_JOBS" in w for w in bad.warnings)
    assert any("'lots'" in w for w in bad.warnings)
    small = run(project, base_env, facts=dict(LOW_MEMORY_LAPTOP, **{"memory.available": "1GiB"}))
    assert small.decisions["jobs"].value == 1
    roomy = run(project, base_env, facts=dict(LOW_MEMORY_LAPTOP, **{"memory.available": "200GiB"}), sets=["mib_per_job=4096"])
    assert roomy.decisions["jobs"].status == "adaptive:8 (cpus=8, mem_avail=204800MiB, budget=4096MiB/job)"


def test_bad_knob_value_is_an_error_naming_knob_source_and_allowed(project, base_env):
    with pytest.raises(BuildpolicyError) as info:
        run(project, base_env, env={"BUILDPOLICY_SCCACHE": "maybe"})
    message = str(info.value)
    assert "sccache" in message and "$BUILDPOLICY_SCCACHE" in message and "auto, on, off" in message
    assert info.value.exit_code == 2
    with pytest.raises(BuildpolicyError, match="mib_per_job.*>= 256"):
        run(project, base_env, sets=["mib_per_job=100"])
    with pytest.raises(BuildpolicyError, match="unknown knob 'sccach'.*did you mean 'sccache'"):
        run(project, base_env, sets=["sccach=on"])


def _sccache_status(project, base_env, argv=("cargo", "build", "--release"), env=None, facts=None, sets=()):
    facts = dict(LOW_MEMORY_LAPTOP, **(facts or {}))
    return run(project, base_env, argv=argv, env=env, facts=facts, sets=sets).decisions["sccache"]


def test_sccache_statuses(project, base_env):
    found = {"tool.sccache": "/usr/bin/sccache"}
    assert _sccache_status(project, base_env, facts=found).status == "enabled"
    assert _sccache_status(project, base_env, facts=found).set_env == (("RUSTC_WRAPPER", "/usr/bin/sccache"),)
    assert _sccache_status(project, base_env).status == "not-found"
    assert _sccache_status(project, base_env, argv=SELFDEV, facts={"memory.available": "20GiB"}).status == "skipped-incremental"
    assert _sccache_status(project, base_env, env={"SCCACHE_DISABLE": "1"}).status == "disabled-by-env"
    assert _sccache_status(project, base_env, sets=["sccache=off"]).status == "disabled-by-knob"
    assert _sccache_status(project, base_env, env={"RUSTC_WRAPPER": "/opt/wrap"}).status == "external:/opt/wrap"
    incremental = _sccache_status(
        project, base_env, argv=SELFDEV, env={"RUSTC_WRAPPER": "/usr/bin/sccache"}, facts={"memory.available": "20GiB"}
    )
    assert incremental.status == "removed-inherited-incremental"
    result = run(project, base_env, argv=SELFDEV, env={"RUSTC_WRAPPER": "/usr/bin/sccache"},
                 facts=dict(LOW_MEMORY_LAPTOP, **{"memory.available": "20GiB"}))
    assert result.unset == ["RUSTC_WRAPPER"]
    forced = _sccache_status(project, base_env, argv=SELFDEV, facts=dict(found, **{"memory.available": "20GiB"}), sets=["sccache=on"])
    assert forced.status == "enabled"


def test_tmpdir_statuses(project, base_env):
    memory = run(project, base_env, facts=dict(LOW_MEMORY_LAPTOP, **{"fs.tmp_is_memory": True}))
    assert memory.decisions["tmpdir"].status == "disk-scratch"
    assert Path(memory.set_env["TMPDIR"]).is_dir()
    assert memory.set_env["TMPDIR"].startswith(base_env["XDG_CACHE_HOME"])
    assert run(project, base_env, env={"TMPDIR": "/var/tmp"}).decisions["tmpdir"].status == "inherited"
    assert run(project, base_env).decisions["tmpdir"].status == "system-default"


def test_layers_replace_by_id_and_keep_provenance(project, base_env, home):
    write(project / "policies" / "10-jobs.toml", '[[rule]]\nid = "pin"\nenv = { CARGO_TERM_COLOR = "always" }\n')
    result = run(project, base_env)
    assert result.set_env["CARGO_TERM_COLOR"] == "always"
    assert result.provenance["CARGO_TERM_COLOR"].layer == "project"
    assert result.provenance["CARGO_TERM_COLOR"].line == 3
    write(home / "config" / "buildpolicy" / "mine.toml", '\n[[rule]]\nid = "pin"\nenv = { CARGO_TERM_COLOR = "never" }\n')
    result = run(project, base_env)
    assert result.set_env["CARGO_TERM_COLOR"] == "never"
    assert result.provenance["CARGO_TERM_COLOR"].layer == "user"
    assert [(low.layer, high.layer) for low, high in result.policy_set.replaced] == [("project", "user")]
    write(home / "site" / "off.toml", '[[rule]]\nid = "low-memory-incremental"\nenabled = false\n')
    result = run(project, base_env, argv=SELFDEV)
    assert "CARGO_PROFILE_SELFDEV_CODEGEN_UNITS" not in result.set_env
    assert any(o.rule.id == "low-memory-incremental" and not o.matched and "disabled" in o.note for o in result.rules)


def test_higher_layer_wins_same_variable_and_explain_sees_both(project, base_env, home):
    write(project / "policies" / "a.toml", '[[rule]]\nid = "a"\nenv = { CARGO_TERM_COLOR = "always" }\n')
    write(home / "config" / "buildpolicy" / "b.toml", '[[rule]]\nid = "b"\nenv = { CARGO_TERM_COLOR = "never" }\n')
    result = run(project, base_env)
    assert result.set_env["CARGO_TERM_COLOR"] == "never"
    assert [(v, p.source) for v, p, _ in result.overridden["CARGO_TERM_COLOR"]] == [("always", "rule a")]


def test_same_layer_conflict_names_both_rules(project, base_env):
    write(project / "policies" / "a.toml", '[[rule]]\nid = "a"\nenv = { CARGO_TERM_COLOR = "always" }\n')
    write(project / "policies" / "b.toml", '[[rule]]\nid = "b"\nenv = { CARGO_TERM_COLOR = "never" }\n')
    with pytest.raises(BuildpolicyError) as info:
        run(project, base_env)
    text = str(info.value)
    assert "rule a" in text and "rule b" in text and "a.toml:3" in text and "b.toml:3" in text
    write(project / "policies" / "b.toml", '[[rule]]\nid = "b"\npriority = 1\nenv = { CARGO_TERM_COLOR = "never" }\n')
    assert run(project, base_env).set_env["CARGO_TERM_COLOR"] == "never"


def test_inherited_value_wins_unless_forced(project, base_env):
    write(project / "policies" / "a.toml", '[[rule]]\nid = "a"\nenv = { CARGO_TERM_COLOR = "always", CARGO_TERM_VERBOSE = "true" }\n'
          '[[rule]]\nid = "b"\nforce = true\nenv = { CARGO_NET_OFFLINE = "true" }\n')
    result = run(project, base_env, env={"CARGO_TERM_COLOR": "never", "CARGO_NET_OFFLINE": "false"})
    assert "CARGO_TERM_COLOR" not in result.set_env
    assert result.provenance["CARGO_TERM_COLOR"].layer == "inherited"
    assert result.set_env["CARGO_TERM_VERBOSE"] == "true"
    assert result.set_env["CARGO_NET_OFFLINE"] == "true"
    assert result.exec_env()["CARGO_TERM_COLOR"] == "never"


def test_interpolation_in_names_and_values(project, base_env):
    write(project / "policies" / "a.toml",
          '[[rule]]\nid = "a"\nenv = { "CARGO_PROFILE_${cargo.profile_env}_DEBUG" = "${cpu.count}$$" }\n')
    result = run(project, base_env, argv=["cargo", "build", "--profile=release-lto"])
    assert result.set_env["CARGO_PROFILE_RELEASE_LTO_DEBUG"] == "8$"


def test_rustflags_composition(project, base_env):
    write(project / "policies" / "a.toml",
          '[[rule]]\nid = "z-native"\nrustflags = ["-C", "target-cpu=native"]\n'
          '[[rule]]\nid = "a-frame"\nrustflags = ["-C", "force-frame-pointers=yes"]\n')
    first = run(project, base_env)
    flags = first.set_env["CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS"]
    assert flags == "-C target-cpu=native -C force-frame-pointers=yes"  # file order, not id order
    assert run(project, base_env).set_env == first.set_env  # byte-identical
    shadowed = run(project, base_env, env={"RUSTFLAGS": "-Dwarnings"})
    assert shadowed.set_env["RUSTFLAGS"] == "-Dwarnings -C target-cpu=native -C force-frame-pointers=yes"
    assert "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS" not in shadowed.set_env
    assert any("shadow" in w for w in shadowed.warnings)


def test_env_state_makes_repeated_eval_idempotent(project, base_env):
    write(project / "policies" / "a.toml", '[[rule]]\nid = "a"\nrustflags = ["-Cdebuginfo=1"]\n')
    caller = dict(base_env, RUSTFLAGS="-Dwarnings")
    first = run(project, caller, emit_state=True)
    shell = dict(caller)
    shell.update(first.set_env)
    second = run(project, shell, emit_state=True)
    assert second.set_env["RUSTFLAGS"] == "-Dwarnings -Cdebuginfo=1"  # not merged twice
    assert second.set_env["CARGO_BUILD_JOBS"] == "3"  # our own value is not "inherited"
    # Remove the rule: the next run restores the caller's RUSTFLAGS.
    (project / "policies" / "a.toml").unlink()
    shell.update(second.set_env)
    third = run(project, shell, emit_state=True)
    assert third.set_env["RUSTFLAGS"] == "-Dwarnings"
    # Memory changes: jobs follows, because the old value was ours.
    shell.update(third.set_env)
    fourth = run(project, shell, facts=dict(LOW_MEMORY_LAPTOP, **{"memory.available": "2GiB"}), emit_state=True)
    assert fourth.set_env["CARGO_BUILD_JOBS"] == "1"
    # A value the user changed after our export is theirs.
    shell.update(fourth.set_env)
    shell["CARGO_BUILD_JOBS"] = "6"
    assert run(project, shell, emit_state=True).decisions["jobs"].status == "override:6"


class _Raises:
    @hookimpl
    def buildpolicy_decide(self, ctx):
        raise RuntimeError("boom")


class _ReplacesJobs:
    @hookimpl
    def buildpolicy_decide(self, ctx):
        return Decision("jobs", 1, "override:1", "team plugin", set_env={"CARGO_BUILD_JOBS": "1"})


def test_plugin_failure_is_isolated_and_named(project, base_env):
    result = run(project, base_env, plugins=[("broken", _Raises())])
    assert any("'broken'" in w and "boom" in w for w in result.warnings)
    assert result.decisions["jobs"].status.startswith("adaptive:")


def test_third_party_plugin_replaces_builtin_decision(project, base_env):
    result = run(project, base_env, plugins=[("team", _ReplacesJobs())])
    assert result.decisions["jobs"].source == "team"
    assert result.set_env["CARGO_BUILD_JOBS"] == "1"


def test_team_local_plugin_from_profile_paths_and_disable(project, base_env):
    write(project / "tools" / "teamplug.py",
          "from buildpolicy import hookimpl\nfrom buildpolicy.model import Decision\n"
          "@hookimpl\ndef buildpolicy_decide(ctx):\n"
          "    return Decision('team', ctx.option('team', 'greeting'), 'ok', 'from a file', set_env={'TEAM_GREETING': ctx.option('team', 'greeting')})\n")
    write(project / "buildpolicy.toml",
          'plugin_paths = ["tools/teamplug.py"]\ndisable_plugins = ["tmpdir"]\n[team]\ngreeting = "hi"\n')
    # Team-local plugins need `buildpolicy allow` (tests/test_trust.py); trust is not the subject here.
    result = run(project, base_env, trust="ignore")
    assert result.decisions["team"].source == "teamplug"
    assert result.set_env["TEAM_GREETING"] == "hi"
    assert "tmpdir" not in result.decisions


def test_knob_aliases_and_team_knobs(project, base_env):
    write(project / "buildpolicy.toml",
          '[knobs.sccache]\naliases = ["OLD_SCCACHE"]\n[knobs.fast]\ntype = "bool"\ndefault = false\n'
          '[[rule]]\nid = "fast"\nwhen = "env.BUILDPOLICY_FAST == \'1\'"\nenv = { CARGO_PROFILE_DEV_DEBUG = "0" }\n')
    result = run(project, base_env, env={"OLD_SCCACHE": "off", "BUILDPOLICY_FAST": "1"})
    assert result.decisions["sccache"].status == "disabled-by-knob"
    assert result.knobs["sccache"].provenance.source == "$OLD_SCCACHE"
    assert result.knobs["fast"].value is True
    with pytest.raises(BuildpolicyError, match="fast.*OLD|fast"):
        run(project, base_env, env={"BUILDPOLICY_FAST": "sometimes"})


def test_knob_values_from_files_by_layer(project, base_env, home):
    write(project / "buildpolicy.toml", '[knobs]\nmib_per_job = 1024\n')
    result = run(project, base_env)
    assert result.knobs["mib_per_job"].value == 1024
    assert result.knobs["mib_per_job"].provenance.layer == "project"
    write(home / "config" / "buildpolicy" / "k.toml", '[knobs]\nmib_per_job = 2048\n')
    assert run(project, base_env).knobs["mib_per_job"].value == 2048
    assert run(project, base_env, env={"BUILDPOLICY_MIB_PER_JOB": "512"}).knobs["mib_per_job"].value == 512
    assert run(project, base_env, env={"BUILDPOLICY_MIB_PER_JOB": "512"}, sets=["mib_per_job=300"]).knobs["mib_per_job"].value == 300
    write(home / "config" / "buildpolicy" / "k.toml", '[knobs]\nmib_per_job = "lots"\n')
    with pytest.raises(BuildpolicyError, match=r"k.toml:2"):
        run(project, base_env)


def test_policy_cache_is_rebuilt_when_the_pickled_code_changes(project, base_env, monkeypatch, tmp_path):
    from buildpolicy.policy import compiled_cache, loader

    code = tmp_path / "model.py"
    code.write_text("# v1\n")
    monkeypatch.setattr(compiled_cache, "pickled_code", lambda: [code])
    compiles = []
    real_compile = loader._compile
    monkeypatch.setattr(loader, "_compile", lambda *a, **k: compiles.append(1) or real_compile(*a, **k))
    run(project, base_env)
    run(project, base_env)
    assert len(compiles) == 1  # warm: from the cache
    code.write_text("# v2, a changed class layout\n")
    run(project, base_env)
    assert len(compiles) == 2


def _policy_view(result) -> list:
    """What a compile decides, comparable across runs: rules with their places and orders."""
    return [(r.id, r.layer, r.file, r.line, r.order, r.when.text if r.when else None, r.env) for r in
            result.policy_set.rules]


def test_an_edit_recompiles_only_the_file_edited(project, base_env, monkeypatch, home):
    """The compiled-policy cache keeps each file's compiled rules: after an edit only that
    file is parsed and compiled again, and the set equals a compile from scratch, also
    when a new file shifts the load order of the others."""
    from buildpolicy.policy import loader

    for name in ("a", "b", "c"):
        write(project / "policies" / f"{name}.toml",
              "".join(f'[[rule]]\nid = "{name}{i}"\nwhen = "cpu.count > {i}"\nenv = {{ CARGO_X_{name.upper()}{i} = "{i}" }}\n'
                      for i in range(3)))
    parsed = []
    real_parse = loader._Compiler.parse
    monkeypatch.setattr(loader._Compiler, "parse", lambda self, path, *a, **k: parsed.append(Path(path).name)
                        or real_parse(self, path, *a, **k))
    run(project, base_env)
    assert {"a.toml", "b.toml", "c.toml"} <= set(parsed)
    parsed.clear()
    write(project / "policies" / "b.toml", (project / "policies" / "b.toml").read_text() + "# edited\n")
    edited = run(project, base_env)
    assert "b.toml" in parsed and "a.toml" not in parsed and "c.toml" not in parsed
    parsed.clear()
    write(project / "policies" / "0-first.toml", '[[rule]]\nid = "first"\nenv = { CARGO_X_FIRST = "1" }\n')
    shifted = run(project, base_env)
    assert parsed.count("0-first.toml") == 1 and "c.toml" not in parsed
    # The same as compiling everything anew.
    fresh = run(project, dict(base_env, XDG_CACHE_HOME=str(home / "fresh-cache")))
    assert _policy_view(shifted) == _policy_view(fresh)
    assert _policy_view(edited) != _policy_view(fresh)  # the first file moved the others' load order
    assert [r.id for r in shifted.policy_set.rules][:1] == ["low-memory-incremental"]


def test_decide_follows_layer_precedence_and_same_layer_conflicts_fail(project, base_env, home):
    release = ["cargo", "build", "--release"]
    found = dict(LOW_MEMORY_LAPTOP, **{"tool.sccache": "/usr/bin/sccache"})
    write(project / "policies" / "off.toml", '[[rule]]\nid = "proj-off"\ndecide = { sccache = "off" }\n')
    assert run(project, base_env, facts=found, argv=release).decisions["sccache"].status == "disabled-by-policy:proj-off"
    # A user-layer rule deciding otherwise wins over the project's.
    write(home / "config" / "buildpolicy" / "on.toml", '[[rule]]\nid = "user-on"\ndecide = { sccache = "on" }\n')
    result = run(project, base_env, facts=found, argv=release)
    assert result.context.policy_decision("sccache") == ("on", "user-on")
    assert result.decisions["sccache"].status == "enabled"
    # Two rules of one layer and priority deciding differently: an error naming both.
    write(project / "policies" / "on.toml", '[[rule]]\nid = "proj-on"\ndecide = { sccache = "on" }\n')
    (home / "config" / "buildpolicy" / "on.toml").unlink()
    with pytest.raises(BuildpolicyError) as info:
        run(project, base_env, facts=found, argv=release)
    assert "proj-off" in str(info.value) and "proj-on" in str(info.value)
    write(project / "policies" / "on.toml", '[[rule]]\nid = "proj-on"\npriority = 1\ndecide = { sccache = "on" }\n')
    assert run(project, base_env, facts=found, argv=release).context.policy_decision("sccache") == ("on", "proj-on")


def test_decide_values_are_checked_against_the_knob_of_that_name(project, base_env):
    write(project / "policies" / "typo.toml", '[[rule]]\nid = "typo"\ndecide = { sccache = "of", nosuch = "x" }\n')
    with pytest.raises(BuildpolicyError, match=r"typo.toml:3:22: rule typo: decide.sccache = 'of'.*auto, on, off"):
        run(project, base_env)
    write(project / "policies" / "typo.toml", '[[rule]]\nid = "typo"\ndecide = { nosuch = "x" }\n')
    assert any("decides 'nosuch', but no plugin" in w for w in run(project, base_env).warnings)


def test_sccache_policy_on_and_an_empty_inherited_wrapper(project, base_env):
    found = dict(LOW_MEMORY_LAPTOP, **{"tool.sccache": "/usr/bin/sccache", "memory.available": "20GiB"})
    # An empty RUSTC_WRAPPER means "no wrapper" to cargo: `enabled` must really set it.
    empty = run(project, base_env, facts=found, argv=["cargo", "build", "-r"], env={"RUSTC_WRAPPER": ""})
    assert empty.decisions["sccache"].status == "enabled"
    assert empty.set_env["RUSTC_WRAPPER"] == "/usr/bin/sccache"
    # A rule deciding sccache = on acts like the knob: even on an incremental build.
    write(project / "policies" / "on.toml", '[[rule]]\nid = "always-cache"\ndecide = { sccache = "on" }\n')
    forced = run(project, base_env, facts=found, argv=SELFDEV)
    assert forced.decisions["sccache"].status == "enabled"
    assert "rule always-cache" in forced.decisions["sccache"].reason
    assert run(project, base_env, facts=found, argv=SELFDEV, sets=["sccache=off"]).decisions["sccache"].status == "disabled-by-knob"


def test_knob_declaration_mistakes_are_reported_together(project, base_env):
    write(project / "buildpolicy.toml",
          '[knobs.sccache]\naliases = ["BUILDPOLICY_LINKER"]\n'
          '[knobs.linker]\ntype = "int"\n'
          '[knobs.team_mode]\ntype = "enum"\n'
          '[knobs.team_count]\ntype = "int"\ndefault = "abc"\n'
          '[knobs.team_size]\ntype = "size"\ndefault = "huge"\n')
    with pytest.raises(BuildpolicyError) as info:
        run(project, base_env)
    text = str(info.value)
    assert "BUILDPOLICY_LINKER would set both knob 'linker' and knob 'sccache'" in text
    assert "[knobs.linker] cannot change type" in text
    assert "enum knob 'team_mode' needs `values`" in text
    assert "knob 'team_count': bad default 'abc'" in text and "knob 'team_size': bad default 'huge'" in text


def test_rules_sharing_a_when_summarise_the_facts_looked_up_by_their_turn(project, base_env):
    # The summary of a `when` is made once per compiled expression and probe state: a
    # rule after another that looked up more facts must show them, one before must not.
    write(project / "policies" / "a.toml",
          '[[rule]]\nid = "first"\nwhen = "ci or cpu.count >= 1"\n'
          '[[rule]]\nid = "asks-cpus"\nwhen = "cpu.count >= 1"\n'
          '[[rule]]\nid = "again"\nwhen = "ci or cpu.count >= 1"\n'
          '[[rule]]\nid = "and-again"\nwhen = "ci or cpu.count >= 1"\n')
    result = run(project, base_env, facts={**LOW_MEMORY_LAPTOP, "ci": True})
    notes = {outcome.rule.id: outcome.note for outcome in result.rules}
    assert notes["first"] == "`when` is true with ci=true"
    assert notes["asks-cpus"] == "`when` is true with cpu.count=8"
    assert notes["again"] == notes["and-again"] == "`when` is true with ci=true, cpu.count=8"


def test_tmpdir_choices_of_the_wrapper(project, base_env, tmp_path):
    """Issue 14.8: an explicit build_tmpdir beats TMPDIR; the target dir is the fallback
    scratch; nothing usable → fallback-system-default."""
    import os

    explicit = tmp_path / "build-tmp" / "deep"
    result = run(project, base_env, env={"TMPDIR": "/var/tmp"}, sets=[f"build_tmpdir={explicit}"])
    assert result.decisions["tmpdir"].status == "explicit" and explicit.is_dir()
    assert result.set_env["TMPDIR"] == str(explicit)
    assert "beats the inherited TMPDIR=/var/tmp" in result.decisions["tmpdir"].reason
    # An explicit directory that cannot be made: the system default, and why.
    blocker = write(tmp_path / "a-file", "")
    bad = run(project, base_env, sets=[f"build_tmpdir={blocker}/sub"])
    assert bad.decisions["tmpdir"].status == "fallback-system-default" and "TMPDIR" not in bad.set_env
    assert f"{blocker}/sub cannot be checked (Not a directory)" in bad.decisions["tmpdir"].reason
    # A relative directory is the workspace's, wherever in it the prompt is; outside one, nothing.
    (project / "src").mkdir(exist_ok=True)
    inner = run(project / "src", base_env, sets=["build_tmpdir=build-tmp"])
    assert inner.decisions["tmpdir"].status == "explicit" and inner.set_env["TMPDIR"] == str(project / "build-tmp")
    outside = tmp_path / "no-workspace"
    outside.mkdir()
    lost = run(outside, base_env, sets=["build_tmpdir=build-tmp"])
    assert lost.decisions["tmpdir"].status == "fallback-system-default" and not (outside / "build-tmp").exists()
    assert "is relative" in lost.decisions["tmpdir"].reason
    # A memory-backed /tmp and a cache dir that cannot hold the scratch dir: the project's target dir.
    memory = dict(LOW_MEMORY_LAPTOP, **{"fs.tmp_is_memory": True})
    cache = write(tmp_path / "cache-is-a-file", "")
    moved = run(project, base_env, facts=memory, env={"XDG_CACHE_HOME": str(cache)})
    assert moved.decisions["tmpdir"].status == "target-scratch"
    assert moved.set_env["TMPDIR"] == str(project / "target" / "buildpolicy-tmp")
    assert os.path.isdir(moved.set_env["TMPDIR"])
    # CARGO_TARGET_DIR is where the target dir is; one that cannot be made either: fallback.
    nowhere = run(project, base_env, facts=memory,
                  env={"XDG_CACHE_HOME": str(cache), "CARGO_TARGET_DIR": str(blocker / "target")})
    assert nowhere.decisions["tmpdir"].status == "fallback-system-default" and "TMPDIR" not in nowhere.set_env
    assert f"{blocker}/target cannot be checked" in nowhere.decisions["tmpdir"].reason
