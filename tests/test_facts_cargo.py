"""Cargo facts: argv parsing (every form of DESIGN §3) and profiles from Cargo.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildpolicy.facts import CargoArgs, FactStore, ProbeContext, parse_cargo_argv

# (argv, command, profile, toolchain, explicit features, separator index)
ARGV_CASES = [
    (("cargo", "build"), "build", "dev", None, False, None),
    (("cargo", "b"), "build", "dev", None, False, None),
    (("cargo", "check"), "check", "dev", None, False, None),
    (("cargo", "c"), "check", "dev", None, False, None),
    (("cargo", "doc"), "doc", "dev", None, False, None),
    (("cargo", "d"), "doc", "dev", None, False, None),
    (("cargo", "run", "--release"), "run", "release", None, False, None),
    (("cargo", "r", "-r"), "run", "release", None, False, None),
    (("cargo", "build", "-rv"), "build", "release", None, False, None),
    (("cargo", "build", "--profile", "selfdev"), "build", "selfdev", None, False, None),
    (("cargo", "build", "--profile=release-lto"), "build", "release-lto", None, False, None),
    (("cargo", "test"), "test", "test", None, False, None),
    (("cargo", "t", "-p", "core"), "test", "test", None, False, None),
    (("cargo", "test", "--release"), "test", "release", None, False, None),
    (("cargo", "bench"), "bench", "bench", None, False, None),
    (("cargo", "install", "ripgrep"), "install", "release", None, False, None),
    (("cargo", "install", "--debug", "ripgrep"), "install", "dev", None, False, None),
    (("cargo", "+nightly", "build"), "build", "dev", "nightly", False, None),
    (("cargo", "+1.80.0", "t"), "test", "test", "1.80.0", False, None),
    (("cargo", "-v", "build"), "build", "dev", None, False, None),
    (("cargo", "--locked", "--offline", "-q", "build", "-r"), "build", "release", None, False, None),
    (("cargo", "-Z", "unstable-options", "build"), "build", "dev", None, False, None),
    (("cargo", "-Zthreads=8", "check"), "check", "dev", None, False, None),
    (("cargo", "--config", "build.jobs=2", "build"), "build", "dev", None, False, None),
    (("cargo", "--config=build.jobs=2", "check"), "check", "dev", None, False, None),
    (("cargo", "-C", "sub", "build"), "build", "dev", None, False, None),
    (("cargo", "--color", "always", "test"), "test", "test", None, False, None),
    (("cargo", "--color=never", "build"), "build", "dev", None, False, None),
    (("/usr/local/bin/cargo", "build"), "build", "dev", None, False, None),
    (("cargo", "build", "--manifest-path", "x/Cargo.toml"), "build", "dev", None, False, None),
    # Only arguments before `--` count.
    (("cargo", "run", "--", "--release", "--features", "x"), "run", "dev", None, False, 2),
    (("cargo", "test", "--release", "--", "--nocapture"), "test", "release", None, False, 3),
    (("cargo", "build", "--features", "a,b"), "build", "dev", None, True, None),
    (("cargo", "build", "--features=a"), "build", "dev", None, True, None),
    (("cargo", "build", "-F", "a"), "build", "dev", None, True, None),
    (("cargo", "build", "-Fa"), "build", "dev", None, True, None),
    (("cargo", "build", "--all-features"), "build", "dev", None, True, None),
    (("cargo", "build", "--no-default-features", "--", "x"), "build", "dev", None, True, 3),
    (("cargo",), None, None, None, False, None),
    (("cargo", "--version"), None, None, None, False, None),
    (("cargo", "+nightly"), None, None, "nightly", False, None),
    (("make", "build", "--release"), None, None, None, False, None),
    (("cargo-nextest", "nextest", "run"), None, None, None, False, None),
    ((), None, None, None, False, None),
]


@pytest.mark.parametrize(("argv", "command", "profile", "toolchain", "features", "separator"), ARGV_CASES)
def test_parse_cargo_argv(argv, command, profile, toolchain, features, separator):
    args = parse_cargo_argv(argv)
    assert (args.command, args.profile, args.toolchain_override, args.explicit_features, args.separator_index) == (
        command, profile, toolchain, features, separator)


def test_parse_keeps_config_and_manifest_path():
    args = parse_cargo_argv(("cargo", "--config", "a=1", "--config=b=2", "build", "--manifest-path=m/Cargo.toml"))
    assert args.config_args == ("a=1", "b=2")
    assert args.manifest_path == "m/Cargo.toml"
    assert parse_cargo_argv(None) == CargoArgs(command=None, profile=None)


def test_parse_keeps_config_given_after_the_subcommand():
    # --config is global: cargo accepts it after the subcommand too (not after `--`).
    args = parse_cargo_argv(("cargo", "build", "--config", "extra.toml", "--config=c=3", "--", "--config", "x"))
    assert args.config_args == ("extra.toml", "c=3")


def ctx(tmp_path: Path, argv=None, environ=None, cwd=None, **kw) -> ProbeContext:
    env = {"CARGO_HOME": str(tmp_path / "cargo-home"), "HOME": str(tmp_path / "home")}
    env.update(environ or {})
    return ProbeContext(cwd=cwd or tmp_path, environ=env, cargo_argv=argv, cache_dir=tmp_path / "cache", **kw)


def facts(tmp_path, argv=None, environ=None, **kw) -> FactStore:
    return FactStore(ctx(tmp_path, argv, environ, **kw))


def test_argv_facts_through_the_store(tmp_path):
    store = facts(tmp_path, ("cargo", "+nightly", "b", "--profile", "release-lto", "-F", "x"))
    assert store.get("cargo.command") == "build"
    assert store.get("cargo.profile") == "release-lto"
    assert store.get("cargo.profile_env") == "RELEASE_LTO"
    assert store.get("cargo.toolchain_override") == "nightly"
    assert store.get("cargo.explicit_features") is True


@pytest.mark.parametrize(("argv", "profile_flag", "expected"), [
    (None, None, "dev"),
    (None, "selfdev", "selfdev"),
    (("make", "all"), "selfdev", "selfdev"),
    (("cargo", "build"), "selfdev", "dev"),  # a cargo argv speaks for itself
    (("cargo", "--version"), None, "dev"),
])
def test_profile_without_a_cargo_command(tmp_path, argv, profile_flag, expected):
    assert facts(tmp_path, argv, profile_flag=profile_flag).get("cargo.profile") == expected


def test_default_profile_of_the_profile_file(tmp_path):
    store = facts(tmp_path, None, default_profile="selfdev")
    assert store.get("cargo.profile") == "selfdev"
    assert store.get("cargo.profile_env") == "SELFDEV"
    assert store.get("cargo.command") is None
    assert store.get("cargo.toolchain_override") is None
    assert store.get("cargo.explicit_features") is False


CARGO_TOML = """\
[package]
name = "demo"
version = "0.1.0"

[profile.dev]
debug = 1

[profile.selfdev]
inherits = "dev"

[profile.fast]
inherits = "selfdev"
incremental = false

[profile.faster]
inherits = "fast"

[profile.release-lto]
inherits = "release"
lto = true

[profile.loop-a]
inherits = "loop-b"

[profile.loop-b]
inherits = "loop-a"

[profile.orphan]
opt-level = 1
"""


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "Cargo.toml").write_text(CARGO_TOML)
    return root


@pytest.mark.parametrize(("profile", "inherits", "incremental"), [
    ("dev", None, True),
    ("release", None, False),
    ("test", "dev", True),
    ("bench", "release", False),
    ("selfdev", "dev", True),
    ("fast", "selfdev", False),
    ("faster", "fast", False),
    ("release-lto", "release", False),
    ("loop-a", None, None),
    ("orphan", None, None),
    ("undeclared", None, None),
])
def test_profiles_follow_inherits(tmp_path, project, profile, inherits, incremental):
    store = facts(tmp_path, ("cargo", "build", "--profile", profile), cwd=project)
    assert store.get("cargo.profile_inherits") == inherits
    assert store.get("cargo.incremental") is incremental


def test_cycle_and_missing_profiles_say_why(tmp_path, project):
    store = facts(tmp_path, ("cargo", "build", "--profile", "loop-a"), cwd=project)
    assert "cycle" in store.unknown_reason("cargo.incremental")
    assert "loop-a -> loop-b -> loop-a" in store.unknown_reason("cargo.profile_inherits")
    store = facts(tmp_path, ("cargo", "build", "--profile", "orphan"), cwd=project)
    assert "does not declare inherits" in store.unknown_reason("cargo.incremental")
    store = facts(tmp_path, ("cargo", "build", "--profile", "undeclared"), cwd=project)
    assert "not defined" in store.unknown_reason("cargo.profile_inherits")


def test_built_in_profile_settings_are_inherited(tmp_path, project):
    (project / "Cargo.toml").write_text(CARGO_TOML.replace("debug = 1", "incremental = false"))
    assert facts(tmp_path, ("cargo", "build", "--profile", "selfdev"), cwd=project).get("cargo.incremental") is False
    assert facts(tmp_path, ("cargo", "test"), cwd=project).get("cargo.incremental") is False


@pytest.mark.parametrize(("environ", "expected"), [
    ({"CARGO_INCREMENTAL": "0"}, False),
    ({"CARGO_INCREMENTAL": "1"}, True),
    # cargo enables incremental only for exactly "1".
    ({"CARGO_INCREMENTAL": "true"}, False),
    ({"CARGO_PROFILE_FAST_INCREMENTAL": "true"}, True),
    ({"CARGO_PROFILE_SELFDEV_INCREMENTAL": "true"}, False),  # fast sets it itself
    ({"CARGO_PROFILE_FAST_INCREMENTAL": "true", "CARGO_INCREMENTAL": "0"}, False),
    ({"CARGO_BUILD_INCREMENTAL": "true"}, True),
])
def test_environment_wins_over_cargo_toml(tmp_path, project, environ, expected):
    store = facts(tmp_path, ("cargo", "build", "--profile", "fast"), environ, cwd=project)
    assert store.get("cargo.incremental") is expected


def test_profile_env_variable_of_a_dashed_profile(tmp_path, project):
    store = facts(tmp_path, ("cargo", "build", "--profile", "release-lto"), {"CARGO_PROFILE_RELEASE_LTO_INCREMENTAL": "true"},
                  cwd=project)
    assert store.get("cargo.incremental") is True


def test_workspace_root_profiles_apply_to_members(tmp_path):
    root = tmp_path / "ws"
    (root / "crates/app/src").mkdir(parents=True)
    (root / "Cargo.toml").write_text('[workspace]\nmembers = ["crates/*"]\n\n[profile.selfdev]\ninherits = "dev"\n'
                                     "incremental = false\n")
    # A member's own [profile] tables are ignored by cargo.
    (root / "crates/app/Cargo.toml").write_text('[package]\nname = "app"\n\n[profile.selfdev]\ninherits = "dev"\n')
    store = facts(tmp_path, ("cargo", "build", "--profile", "selfdev"), cwd=root / "crates/app/src")
    assert store.get("cargo.profile_inherits") == "dev"
    assert store.get("cargo.incremental") is False


def test_excluded_member_is_its_own_root(tmp_path):
    root = tmp_path / "ws"
    (root / "tools/gen").mkdir(parents=True)
    (root / "Cargo.toml").write_text('[workspace]\nexclude = ["tools"]\n\n[profile.gen]\ninherits = "release"\n')
    (root / "tools/gen/Cargo.toml").write_text('[package]\nname = "gen"\n\n[profile.gen]\ninherits = "dev"\n')
    assert facts(tmp_path, ("cargo", "build", "--profile", "gen"), cwd=root / "tools/gen").get(
        "cargo.profile_inherits") == "dev"


def test_cargo_config_and_config_args_override_the_manifest(tmp_path, project):
    (project / ".cargo").mkdir()
    (project / ".cargo/config.toml").write_text('[profile.selfdev]\nincremental = false\n')
    argv = ("cargo", "build", "--profile", "selfdev")
    assert facts(tmp_path, argv, cwd=project).get("cargo.incremental") is False
    argv = ("cargo", "--config", "profile.selfdev.incremental=true", "build", "--profile", "selfdev")
    assert facts(tmp_path, argv, cwd=project).get("cargo.incremental") is True


def test_manifest_path_selects_the_manifest(tmp_path, project):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    argv = ("cargo", "build", "--manifest-path", str(project / "Cargo.toml"), "--profile", "fast")
    assert facts(tmp_path, argv, cwd=elsewhere).get("cargo.profile_inherits") == "selfdev"


def test_overridden_profile_drives_the_derived_facts(tmp_path, project):
    store = FactStore(ctx(tmp_path, ("cargo", "build"), cwd=project), overrides={"cargo.profile": "fast"})
    assert store.get("cargo.profile_env") == "FAST"
    assert store.get("cargo.profile_inherits") == "selfdev"
    assert store.get("cargo.incremental") is False


def test_no_cargo_toml_still_knows_built_in_profiles(tmp_path):
    (tmp_path / "empty").mkdir()
    store = facts(tmp_path, ("cargo", "bench"), cwd=tmp_path / "empty")
    assert store.get("cargo.profile_inherits") == "release"
    assert store.get("cargo.incremental") is False
