"""`buildpolicy schema` and the schemas in editors: taplo (Even Better TOML's engine) applies them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from buildpolicy.data import schema_dir

KINDS = ("profile", "policy", "tests")


def test_schema_path_and_content(cli, tmp_path):
    for kind in KINDS:
        path = cli("schema", kind, "--path", cwd=tmp_path, check=True).stdout.strip()
        assert Path(path) == schema_dir() / f"{kind}.schema.json" and Path(path).is_file()
        content = cli("schema", kind, cwd=tmp_path, check=True).stdout
        assert json.loads(content) == json.loads(Path(path).read_text())
    listing = cli("schema", cwd=tmp_path, check=True).stdout.splitlines()
    assert listing == [f"{kind}\t{schema_dir() / f'{kind}.schema.json'}" for kind in KINDS]
    assert cli("schema", "nope", cwd=tmp_path).returncode == 2


TAPLO = shutil.which("taplo")
needs_taplo = pytest.mark.skipif(TAPLO is None, reason="taplo is in the test extras: pip install -e '.[test]'")


def taplo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # No configuration file, no schema catalogs: only the file's own #:schema line applies.
    return subprocess.run([TAPLO, *args, "--no-auto-config"], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "NO_COLOR": "1", "RUST_LOG": "warn"})


@needs_taplo
@pytest.mark.parametrize("command", ["check", "lint"])
def test_taplo_applies_the_schemas_of_an_initialised_project(cli, tmp_path, command):
    cli("init", cwd=tmp_path, check=True)
    files = ["buildpolicy.toml", "policies/project.toml", "policies/tests/example.toml"]
    ok = taplo(command, *files, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr

    bad = {
        "buildpolicy.toml": ('default_profile = "dev"\n', 'default_profile = 3\n', '3 is not of type "string"'),
        "policies/project.toml": ('when = "ci"\n', 'when = "ci"\nwhne = "x"\n', "'whne' was unexpected"),
        "policies/tests/example.toml": ('name = "CI builds', 'nmae = "CI builds', "'nmae' was unexpected"),
    }
    for name, (old, new, message) in bad.items():
        path = tmp_path / name
        good = path.read_text()
        path.write_text(good.replace(old, new, 1))
        proc = taplo(command, name, cwd=tmp_path)
        assert proc.returncode == 1, f"{name}: taplo accepted an invalid file"
        assert message in proc.stderr, proc.stderr
        assert "failed to fetch schema" not in proc.stderr
        path.write_text(good)


@needs_taplo
def test_taplo_and_buildpolicy_agree_on_a_knob_table(cli, tmp_path):
    cli("init", cwd=tmp_path, check=True)
    profile = tmp_path / "buildpolicy.toml"
    profile.write_text(profile.read_text() + '\n[knobs.linker]\naliases = ["bad-name"]\n')
    assert taplo("check", "buildpolicy.toml", cwd=tmp_path).returncode == 1
    ours = cli("check", cwd=tmp_path)
    assert ours.returncode == 1 and "buildpolicy.toml:" in ours.stderr and "bad-name" in ours.stderr
