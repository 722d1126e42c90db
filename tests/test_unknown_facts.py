"""Unknown means unknown (issue 10, item 10): an unknown fact never enables what depends
on its value, and a corrupt cache is ignored and rebuilt rather than turning facts
unknown or dropping decisions.

A fake ``sccache`` is first on PATH, so ``tool.sccache`` is found and only
``cargo.incremental`` decides whether sccache is used.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.statefiles import bp, deep_json, fake_tools, make_project

GOOD = ("env", "--", "cargo", "build")


@pytest.fixture
def env(tmp_path, base_env) -> dict[str, str]:
    return dict(fake_tools(tmp_path, base_env), BUILDPOLICY_REPLAY="off")  # every run evaluates in full


@pytest.fixture
def project(tmp_path) -> Path:
    return make_project(tmp_path / "proj")


def explain(env, project, *argv: str) -> dict:
    proc = bp(env, project, "explain", "--format", "json", "--", *argv)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_an_unparsable_cargo_toml_never_turns_sccache_on(env, project):
    release = explain(env, project, "cargo", "build", "--release")
    assert release["decisions"]["sccache"]["status"] == "enabled"  # the fake sccache is found
    (project / "Cargo.toml").write_text('[package]\nname = "demo"\n[profile.dev\nincremental = false\n')

    report = explain(env, project, "cargo", "build")
    sccache = report["decisions"]["sccache"]
    assert sccache["status"] == "skipped-incremental-unknown"
    assert "unknown" in sccache["reason"] and "Cargo.toml" in sccache["reason"]
    assert "RUSTC_WRAPPER" not in report["env"]
    shell = bp(env, project, *GOOD)
    assert shell.returncode == 0 and "RUSTC_WRAPPER" not in shell.stdout
    # The knob still forces it: `on` does not depend on the fact.
    forced = bp(env, project, "explain", "--format", "json", "--set", "sccache=on", "--", "cargo", "build")
    assert json.loads(forced.stdout)["decisions"]["sccache"]["status"] == "enabled"


def test_an_inherited_sccache_is_kept_not_removed_when_incremental_is_unknown(env, project):
    (project / "Cargo.toml").write_text("[package\n")
    wrapper = shutil.which("sccache", path=env["PATH"])
    report = json.loads(bp(dict(env, RUSTC_WRAPPER=wrapper), project, "explain", "--format", "json",
                           "--", "cargo", "build").stdout)
    assert report["decisions"]["sccache"]["status"] == f"external:{wrapper}"
    assert "RUSTC_WRAPPER" not in report["unset"]


def test_a_deeply_nested_probe_cache_is_rebuilt_not_an_unknown_fact(env, project, home):
    clean = bp(env, project, *GOOD)
    assert clean.returncode == 0 and "RUSTC_WRAPPER" not in clean.stdout  # dev builds incrementally
    probes = home / "cache" / "buildpolicy" / "probes" / "probes.json"
    assert "cargo-profiles" in probes.read_text()
    probes.write_bytes(deep_json())

    again = bp(env, project, *GOOD)
    assert again.returncode == 0, again.stderr
    assert again.stdout == clean.stdout
    report = explain(env, project, "cargo", "build")
    assert report["decisions"]["sccache"]["status"] == "skipped-incremental"
    assert json.loads(probes.read_text())["version"] == 1  # rebuilt


def _need_fast_linker() -> None:
    if shutil.which("clang") and (shutil.which("mold") or shutil.which("ld.lld")):
        return
    message = "the linker smoke test needs clang and mold or ld.lld (scripts/install-system-deps.sh)"
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on"):
        pytest.fail(message)
    pytest.skip(message)


def _linker_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "_LINKER=" in line or "RUSTFLAGS=" in line]


@pytest.mark.parametrize("damage", ["deep", "failure-from-the-future", "wrong-types"])
def test_a_corrupt_linker_smoke_cache_never_drops_the_linker(damage, env, project, home):
    _need_fast_linker()
    clean = bp(env, project, *GOOD)
    assert clean.returncode == 0, clean.stderr
    assert _linker_lines(clean.stdout), clean.stdout  # a fast linker passed its smoke test
    smoke = home / "cache" / "buildpolicy" / "probes" / "linker-smoke.json"
    data = json.loads(smoke.read_text())
    if damage == "deep":
        smoke.write_bytes(deep_json())
    else:
        bad = [False, "corrupt", 1e300] if damage == "failure-from-the-future" else ["yes", 7, None]
        data["entries"] = {key: {"value": bad} for key in data["entries"]}
        smoke.write_text(json.dumps(data))

    again = bp(env, project, *GOOD)
    assert again.returncode == 0, again.stderr
    assert _linker_lines(again.stdout) == _linker_lines(clean.stdout)
    assert again.stdout == clean.stdout


def test_a_variable_name_made_from_an_unknown_fact_is_not_set(tmp_path, base_env):
    # `CARGO_${git.head}` outside a git repository would be `CARGO_`: no name at all.
    from tests.statefiles import bp

    project = tmp_path / "proj"
    (project / "policies").mkdir(parents=True)
    (project / "buildpolicy.toml").write_text('policies = ["policies"]\n')
    (project / "policies" / "named.toml").write_text(
        '[[rule]]\nid = "named"\nenv = { "CARGO_${git.head}_X" = "1", CARGO_KNOWN = "${git.head}" }\n')
    proc = bp(base_env, project, "env")
    assert proc.returncode == 0, proc.stderr
    assert "CARGO__X" not in proc.stdout and "CARGO_=" not in proc.stdout
    assert "the variable is not set" in proc.stderr
    assert "export CARGO_KNOWN=''" in proc.stdout  # a value keeps its other parts (here: none)
