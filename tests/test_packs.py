"""Packs: `extends` with directory paths and `pack:<name>` entry points (DESIGN §9)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from buildpolicy.engine.pipeline import Request, evaluate
from buildpolicy.errors import BuildpolicyError
from tests.conftest import LOW_MEMORY_LAPTOP, write


def run(project, base_env, **kw):
    return evaluate(Request(cwd=project, environ=dict(base_env), fact_overrides=dict(LOW_MEMORY_LAPTOP), hermetic=True, **kw))


@pytest.fixture
def shared(tmp_path) -> Path:
    """A shared policy directory as a team would keep it beside its repositories."""
    root = tmp_path / "shared"
    write(root / "10-base.toml",
          '[[rule]]\nid = "color"\nenv = { CARGO_TERM_COLOR = "always" }\n\n'
          '[[rule]]\nid = "verbose"\nenv = { CARGO_TERM_VERBOSE = "true" }\n\n'
          '[knobs]\nmib_per_job = 1024\n')
    return root


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    (root / "policies").mkdir(parents=True)
    write(root / "buildpolicy.toml", 'extends = ["../shared"]\npolicies = ["policies"]\n')
    return root


def test_pack_rules_load_below_the_project_with_provenance_naming_the_pack(project, shared, base_env):
    write(project / "policies" / "own.toml", '[[rule]]\nid = "verbose"\nenv = { CARGO_TERM_VERBOSE = "false" }\n')
    result = run(project, base_env)
    color = result.provenance["CARGO_TERM_COLOR"]
    assert (color.layer, color.source) == ("pack", "rule color (pack ../shared)")
    assert color.file == str(shared / "10-base.toml") and color.line == 3
    # The project's rule with the same id replaces the pack's.
    assert result.set_env["CARGO_TERM_VERBOSE"] == "false"
    assert result.provenance["CARGO_TERM_VERBOSE"].layer == "project"
    assert [(low.layer, high.layer, high.id) for low, high in result.policy_set.replaced] == [("pack", "project", "verbose")]
    # Pack knob values sit in the pack layer, below the project's.
    assert result.knobs["mib_per_job"].value == 1024 and result.knobs["mib_per_job"].provenance.layer == "pack"
    write(project / "buildpolicy.toml", 'extends = ["../shared"]\n[knobs]\nmib_per_job = 2048\n')
    assert run(project, base_env).knobs["mib_per_job"].value == 2048


def test_pack_sits_above_builtin(project, shared, base_env):
    write(shared / "20-off.toml", '[[rule]]\nid = "low-memory-incremental"\nenabled = false\n')
    result = run(project, base_env, cargo_argv=("cargo", "build"))
    assert "CARGO_PROFILE_DEV_CODEGEN_UNITS" not in result.set_env
    assert [(low.layer, high.layer) for low, high in result.policy_set.replaced] == [("builtin", "pack")]


def test_later_pack_replaces_earlier_and_same_pack_duplicates_are_errors(project, shared, tmp_path, base_env):
    write(tmp_path / "second" / "a.toml", '[[rule]]\nid = "color"\nenv = { CARGO_TERM_COLOR = "never" }\n')
    write(project / "buildpolicy.toml", 'extends = ["../shared", "../second"]\n')
    result = run(project, base_env)
    assert result.set_env["CARGO_TERM_COLOR"] == "never"
    assert result.provenance["CARGO_TERM_COLOR"].source == "rule color (pack ../second)"
    write(shared / "11-dup.toml", '[[rule]]\nid = "color"\nenv = { CARGO_TERM_COLOR = "auto" }\n')
    with pytest.raises(BuildpolicyError, match="defined twice in the pack layer"):
        run(project, base_env)


def test_single_file_and_absolute_paths(project, shared, base_env):
    write(project / "buildpolicy.toml", f'extends = ["{shared / "10-base.toml"}"]\n')
    assert run(project, base_env).set_env["CARGO_TERM_COLOR"] == "always"


def test_pack_edits_invalidate_the_policy_cache(cli, project, shared):
    explain = lambda: json.loads(cli("explain", "--format", "json", cwd=project, check=True).stdout)  # noqa: E731
    assert explain()["env"]["CARGO_TERM_COLOR"] == "always"
    cached = list((Path(cli.env["XDG_CACHE_HOME"]) / "buildpolicy" / "compiled").glob("*.pickle"))
    assert cached, "the compiled policies are cached"
    # Same size, new content and mtime: the stat of the pack file changed.
    text = (shared / "10-base.toml").read_text().replace('"always"', '"never!"')
    (shared / "10-base.toml").write_text(text)
    os.utime(shared / "10-base.toml", ns=(1, 10**18))
    assert explain()["env"]["CARGO_TERM_COLOR"] == "never!"
    write(shared / "30-new.toml", '[[rule]]\nid = "offline"\nenv = { CARGO_NET_OFFLINE = "true" }\n')
    assert explain()["env"]["CARGO_NET_OFFLINE"] == "true"


def test_missing_path_and_unknown_pack_are_located_errors(cli, project):
    write(project / "buildpolicy.toml", '# shared policies\nextends = ["../nowhere", "pack:no-such-pack"]\n')
    proc = cli("env", cwd=project)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"{project / 'buildpolicy.toml'}:2:12: extends: '../nowhere' does not exist" in proc.stderr
    assert f"{project / 'buildpolicy.toml'}:2:26: extends: no pack named 'no-such-pack' is installed" in proc.stderr
    assert "Traceback" not in proc.stderr


def _install_pack_distribution(site: Path) -> None:
    """A tiny installed distribution (dist-info with entry_points.txt) offering two packs.

    ``acme`` names a package whose directory holds the policies; ``acme-attr``
    names a module attribute holding a path relative to the module.
    """
    write(site / "acme_pack" / "__init__.py", "raise RuntimeError('a package pack is located, not imported')\n")
    write(site / "acme_pack" / "base.toml",
          '#:schema ../schema/policy.schema.json\n[[rule]]\nid = "acme-color"\nenv = { CARGO_TERM_COLOR = "always" }\n')
    write(site / "acme_attr.py", 'POLICIES = "acme_attr_policies"\n')
    write(site / "acme_attr_policies" / "x.toml", '[[rule]]\nid = "acme-offline"\nenv = { CARGO_NET_OFFLINE = "true" }\n')
    dist = site / "acme_pack-1.0.dist-info"
    write(dist / "METADATA", "Metadata-Version: 2.1\nName: acme-pack\nVersion: 1.0\n")
    write(dist / "entry_points.txt", "[buildpolicy.packs]\nacme = acme_pack\nacme-attr = acme_attr:POLICIES\n")


def test_pack_from_an_installed_distribution(cli, project, tmp_path):
    site = tmp_path / "site-packages"
    site.mkdir()
    write(project / "buildpolicy.toml", 'extends = ["pack:acme", "pack:acme-attr"]\n')
    missing = cli("env", cwd=project, env={"PYTHONPATH": str(site)})
    assert missing.returncode == 2 and "no pack named 'acme'" in missing.stderr
    _install_pack_distribution(site)
    proc = cli("explain", "--format", "json", cwd=project, env={"PYTHONPATH": str(site)}, check=True)
    report = json.loads(proc.stdout)
    assert report["env"]["CARGO_TERM_COLOR"] == "always"
    assert report["provenance"]["CARGO_TERM_COLOR"] == {
        "layer": "pack", "source": "rule acme-color (pack pack:acme)",
        "file": str(site / "acme_pack" / "base.toml"), "line": 4,
    }
    assert report["provenance"]["CARGO_NET_OFFLINE"]["source"] == "rule acme-offline (pack pack:acme-attr)"
    assert {r["id"]: r["layer"] for r in report["rules"]}["acme-color"] == "pack"
    # Editing the installed pack invalidates the cache like any policy file.
    write(site / "acme_pack" / "base.toml", '[[rule]]\nid = "acme-color"\nenv = { CARGO_TERM_COLOR = "never" }\n')
    again = json.loads(cli("explain", "--format", "json", cwd=project, env={"PYTHONPATH": str(site)}, check=True).stdout)
    assert again["env"]["CARGO_TERM_COLOR"] == "never"


def test_entry_point_that_is_not_a_directory(cli, project, tmp_path):
    site = tmp_path / "site-packages"
    write(site / "lonely.py", "PATH = 42\n")
    dist = site / "lonely-1.0.dist-info"
    write(dist / "METADATA", "Metadata-Version: 2.1\nName: lonely\nVersion: 1.0\n")
    write(dist / "entry_points.txt", "[buildpolicy.packs]\nmodule = lonely\nnumber = lonely:PATH\n")
    write(project / "buildpolicy.toml", 'extends = ["pack:module", "pack:number"]\n')
    proc = cli("check", cwd=project, env={"PYTHONPATH": str(site)})
    assert proc.returncode == 1
    assert "is a module, not a package" in proc.stderr
    assert "lonely:PATH is a int, not a path" in proc.stderr
    assert "Traceback" not in proc.stderr
