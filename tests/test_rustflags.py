"""Rustflags composition: rule fragments + linker + frontend in one deterministic order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from buildpolicy import hookimpl
from buildpolicy.engine.pipeline import Request, evaluate
from buildpolicy.model import Decision
from tests.conftest import LOW_MEMORY_LAPTOP

CARGO_TOML = """\
[package]
name = "demo"
version = "0.1.0"
edition = "2021"

[profile.selfdev]
inherits = "dev"
"""

TARGET = "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS"
NIGHTLY = "nightly-x86_64-unknown-linux-gnu"
FACTS = {
    **LOW_MEMORY_LAPTOP,
    "memory.available": "20GiB",  # keep the low-memory rule out of the way
    "tool.mold": "/usr/bin/mold",
    "tool.ld.mold": "/usr/bin/ld.mold",
    "tool.clang": "/usr/bin/clang",
    "tool.rustup": "/usr/bin/rustup",
    "rust.toolchains": [NIGHTLY],
    "rust.nightly": NIGHTLY,
    "rust.version": "1.95.0",
}
SELFDEV = ("cargo", "build", "--profile", "selfdev")
# Rules first (layer, then load order), then plugin decisions by name (frontend < linker).
COMPOSED = "-C force-frame-pointers=yes --cfg project_b --cfg user_rule -Zthreads=4 -C link-arg=-fuse-ld=mold"


def _rule(rule_id: str, flags: list[str]) -> str:
    return f'[[rule]]\nid = "{rule_id}"\nrustflags = {json.dumps(flags)}\n'


@pytest.fixture
def project(tmp_path, home) -> Path:
    root = tmp_path / "project"
    (root / "policies").mkdir(parents=True)
    (root / "Cargo.toml").write_text(CARGO_TOML)
    (root / "buildpolicy.toml").write_text('policies = ["policies"]\n')
    # Written in reverse lexical order: load order must not depend on creation order.
    (root / "policies" / "b.toml").write_text(_rule("project-b", ["--cfg", "project_b"]))
    (root / "policies" / "a.toml").write_text(_rule("frame-pointers", ["-C", "force-frame-pointers=yes"]))
    user = home / "config" / "buildpolicy"
    user.mkdir(parents=True)
    # A user rule repeating a project fragment: identical fragments are kept once.
    (user / "mine.toml").write_text(_rule("user-rule", ["--cfg", "user_rule"]) + "\n"
                                    + _rule("user-dup", ["-C", "force-frame-pointers=yes"]))
    return root


@pytest.fixture
def facts_file(tmp_path) -> Path:
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(FACTS))
    return path


def run(project, base_env, *, env=None, argv=SELFDEV, sets=(), plugins=()):
    return evaluate(Request(cwd=project, environ=dict(base_env, **(env or {})), cargo_argv=argv,
                            cli_sets=tuple(sets), fact_overrides=FACTS, hermetic=True,
                            extra_plugins=tuple(plugins)))


def test_rules_linker_and_frontend_compose_in_one_order(project, base_env):
    result = run(project, base_env)
    assert result.decisions["linker"].status == "mold"
    assert result.decisions["frontend"].status == f"enabled:{NIGHTLY}:threads=4"
    assert result.set_env[TARGET] == COMPOSED
    assert "RUSTFLAGS" not in result.set_env
    source = result.provenance[TARGET].source
    assert source == ("rustflags composed from rule frame-pointers, rule project-b, rule user-rule, "
                      "plugin frontend (frontend), plugin linker (linker)")
    assert not any("RUSTFLAGS" in w for w in result.warnings)


def test_a_third_party_decision_sorts_by_its_name(project, base_env):
    class Sanitize:
        @hookimpl
        def buildpolicy_decide(self, ctx):
            return Decision("asan", True, "enabled", "test", rustflags=("-Zsanitizer=address",))

    result = run(project, base_env, plugins=[("sanitize", Sanitize())])
    rules, plugins = COMPOSED.split(" -Zthreads")
    assert result.set_env[TARGET] == f"{rules} -Zsanitizer=address -Zthreads{plugins}"


def test_caller_rustflags_would_shadow_the_target_variable(project, base_env):
    result = run(project, base_env, env={"RUSTFLAGS": "-C debuginfo=1"})
    assert TARGET not in result.set_env
    assert result.set_env["RUSTFLAGS"] == f"-C debuginfo=1 {COMPOSED}"
    assert any("RUSTFLAGS is set by the caller and would shadow " + TARGET in w for w in result.warnings)
    assert result.provenance["RUSTFLAGS"].source.endswith("after the caller's flags")


def test_caller_target_flags_come_first(project, base_env):
    result = run(project, base_env, env={TARGET: "-C opt-level=1"})
    assert result.set_env[TARGET] == f"-C opt-level=1 {COMPOSED}"


def test_without_plugin_fragments_only_rules_remain(project, base_env):
    result = run(project, base_env, sets=["linker=system", "frontend=off"])
    assert result.set_env[TARGET] == "-C force-frame-pointers=yes --cfg project_b --cfg user_rule"


def test_env_output_is_byte_identical_for_identical_inputs(cli, project, facts_file):
    args = ("env", "--facts", str(facts_file), "--", *SELFDEV)
    first = cli(*args, cwd=project, check=True)
    second = cli(*args, cwd=project, check=True)
    assert first.stdout == second.stdout
    assert f"export {TARGET}='{COMPOSED}'" in first.stdout.splitlines()
    # Touching the policy files (new mtimes, recompiled cache) changes nothing either.
    for path in sorted((project / "policies").iterdir(), reverse=True):
        path.write_text(path.read_text())
    assert cli(*args, cwd=project, check=True).stdout == first.stdout


def test_explain_says_rustflags_went_to_rustflags(cli, project, facts_file):
    text = cli("explain", "--facts", str(facts_file), "--", *SELFDEV, cwd=project, env={"RUSTFLAGS": "-g"},
               check=True).stdout
    # Long values are shortened in text: the full value is in the JSON form below.
    assert "RUSTFLAGS=-g -C force-frame-pointers=yes" in text
    assert "after the caller's flags" in text
    assert f"would shadow {TARGET}" in text
    assert "merged into RUSTFLAGS" in text
    normal = cli("explain", "--facts", str(facts_file), "--", *SELFDEV, cwd=project, check=True).stdout
    assert f"{TARGET}=-C force-frame-pointers=yes" in normal
    assert "rustflags composed from rule frame-pointers" in normal
    as_json = json.loads(cli("explain", "--format", "json", "--facts", str(facts_file), "--", *SELFDEV,
                             cwd=project, env={"RUSTFLAGS": "-g"}, check=True).stdout)
    assert as_json["env"]["RUSTFLAGS"] == f"-g {COMPOSED}"
    assert any("would shadow" in w for w in as_json["warnings"])


TARGET_VAR = "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS"


def test_caller_encoded_rustflags_get_ours_appended_with_the_unit_separator(project, base_env):
    result = run(project, base_env, env={"CARGO_ENCODED_RUSTFLAGS": "--cfg\x1fmine"})
    assert result.set_env["CARGO_ENCODED_RUSTFLAGS"] == "--cfg\x1fmine\x1f" + COMPOSED.replace(" ", "\x1f")
    assert TARGET_VAR not in result.set_env
    assert any("CARGO_ENCODED_RUSTFLAGS is set by the caller" in w for w in result.warnings)


def test_build_level_flags_are_joined_not_hidden(project, base_env):
    # Only [build] rustflags in the cargo config: the target variable would make cargo ignore them.
    (project / ".cargo").mkdir()
    (project / ".cargo" / "config.toml").write_text('[build]\nrustflags = ["--cfg", "project_flag"]\n')
    result = run(project, base_env)
    assert result.set_env["CARGO_BUILD_RUSTFLAGS"] == COMPOSED
    assert TARGET_VAR not in result.set_env
    caller = run(project, base_env, env={"CARGO_BUILD_RUSTFLAGS": "-Cdebuginfo=1"})
    assert caller.set_env["CARGO_BUILD_RUSTFLAGS"] == "-Cdebuginfo=1 " + COMPOSED
    # With target-level flags in the config as well, cargo reads the target level: so do we.
    (project / ".cargo" / "config.toml").write_text(
        '[build]\nrustflags = ["--cfg", "a"]\n[target.x86_64-unknown-linux-gnu]\nrustflags = ["--cfg", "b"]\n')
    assert run(project, base_env).set_env[TARGET_VAR] == COMPOSED
