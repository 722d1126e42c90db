"""buildpolicy.policy.entrypoints reads the same entry points as importlib.metadata,
without importing it (tens of milliseconds of a cold prompt)."""

from __future__ import annotations

import re
import sys
from importlib.metadata import distributions

import pytest

from buildpolicy.policy.entrypoints import distribution_name, parse_group, scan


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("group", ["buildpolicy", "console_scripts", "pytest11", "buildpolicy.packs"])
def test_the_installed_entry_points_are_importlib_metadatas(group):
    expected = [(ep.name, ep.value, _normalized(dist.metadata["Name"] or ""))
                for dist in distributions() for ep in dist.entry_points if ep.group == group]
    assert sorted(scan(group)) == sorted(expected)
    if group == "buildpolicy":
        assert ("jobs", "buildpolicy_plugins.jobs", "buildpolicy") in scan(group)


def test_a_synthetic_site_directory(tmp_path):
    site = tmp_path / "site"
    dist = site / "Team_Plugins-1.2.dist-info"
    dist.mkdir(parents=True)
    (dist / "entry_points.txt").write_text(
        "# a comment\n[console_scripts]\ntool = team.cli:main\n\n"
        "[buildpolicy]\n  warm = team.warm \n; another comment\nfast=team.fast:Plugin\n"
        "[buildpolicy.packs]\nbase = team.packs:BASE\n")
    egg = site / "old_style.egg-info"
    egg.mkdir()
    (egg / "entry_points.txt").write_text("[buildpolicy]\nlegacy = old.plugin\n")
    (site / "broken-0.1.dist-info").mkdir()  # no entry_points.txt at all
    (site / "binary-1.0.dist-info").mkdir()
    (site / "binary-1.0.dist-info" / "entry_points.txt").write_bytes(b"[buildpolicy]\nx = \xff\n")
    path = [str(tmp_path / "missing"), str(tmp_path / "archive.zip"), str(site)]
    assert scan("buildpolicy", path) == [  # directories in name order, entries in file order
        ("warm", "team.warm", "team-plugins"),
        ("fast", "team.fast:Plugin", "team-plugins"),
        ("legacy", "old.plugin", "old-style"),
    ]
    assert scan("buildpolicy.packs", path) == [("base", "team.packs:BASE", "team-plugins")]


@pytest.mark.parametrize("directory, name", [
    ("buildpolicy-0.1.0.dist-info", "buildpolicy"),
    ("Team_Plugins-1.2.dist-info", "team-plugins"),
    ("zope.interface-6.0.dist-info", "zope-interface"),
    ("buildpolicy.egg-info", "buildpolicy"),
    ("my_pkg-2.0-py3.11.egg-info", "my-pkg"),
    ("pkg3d-1.0.dist-info", "pkg3d"),
])
def test_distribution_names_are_normalized(directory, name):
    assert distribution_name(directory) == name


def test_only_the_named_section_counts():
    text = "[buildpolicy.packs]\na = b\n[buildpolicy]\nc = d\n[other]\ne = f\n"
    assert parse_group(text, "buildpolicy") == [("c", "d")]


def test_sys_path_is_the_default():
    assert scan("pytest11") == scan("pytest11", list(sys.path))


def test_a_distribution_is_named_by_its_metadata_not_its_directory(tmp_path):
    # A directory named like buildpolicy's own must not pass a plugin off as built-in.
    dist = tmp_path / "buildpolicy-2x.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: Other_Tools\nVersion: 2\n\nName: not a header\n")
    (dist / "entry_points.txt").write_text("[buildpolicy]\nlinker = other.linker\n[ buildpolicy ]\nspaced = x\n")
    egg = tmp_path / "py-3dtools.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: py-3dtools\n")
    (egg / "entry_points.txt").write_text("[buildpolicy]\nthreed = py3d.plugin\n")
    assert scan("buildpolicy", [str(tmp_path)]) == [("linker", "other.linker", "other-tools"),
                                                    ("threed", "py3d.plugin", "py-3dtools")]

