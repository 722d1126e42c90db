"""Trust rule: a team plugin runs exactly the code `buildpolicy allow` hashed (issue 10, item 3).

`allow` hashed the plugin's ``.py`` text, but Python ran something else: an
``UNCHECKED_HASH`` ``.pyc`` shipped in ``__pycache__`` next to the reviewed
source, or a sibling module the plugin imports, edited after ``allow``.
"""

from __future__ import annotations

import importlib.util
import py_compile
from pathlib import Path

import pytest

from buildpolicy.engine.pluginhost import make_plugin_manager
from buildpolicy.engine.pipeline import Request, prepare
from buildpolicy.policy import trust
from tests.conftest import write

PLUGIN = """\
from buildpolicy import hookimpl
from buildpolicy.model import Decision
{imports}

@hookimpl
def buildpolicy_decide(ctx):
    return Decision("team", 1, "ok", "team plugin", set_env={{"CARGO_TEAM": {value}}})
"""

HELPER = 'VALUE = "reviewed"\n'


def evil(marker: Path, value: str = "evil") -> str:
    """Module source that leaves ``marker`` when it runs."""
    return f'import pathlib\npathlib.Path({str(marker)!r}).touch()\nVALUE = {value!r}\n'


def unchecked_pyc(source: Path, code: str) -> Path:
    """Compile ``code`` into ``source``'s __pycache__ slot, hash-based and never checked against the source."""
    source.write_text(code)
    pyc = Path(importlib.util.cache_from_source(str(source)))
    py_compile.compile(str(source), cfile=str(pyc), doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    return pyc


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    write(root / "buildpolicy.toml", 'plugin_paths = ["tools/bp.py"]\n')
    return root


def test_an_unchecked_pyc_beside_the_reviewed_plugin_never_runs(cli, project, tmp_path):
    marker = tmp_path / "pyc-ran"
    plugin = project / "tools" / "bp.py"
    write(plugin, "")
    unchecked_pyc(plugin, evil(marker) + PLUGIN.format(imports="", value="'evil'"))
    plugin.write_text(PLUGIN.format(imports="", value="'reviewed'"))  # what the user reviews and allows
    cli("allow", "-q", cwd=project, check=True)
    out = cli("env", cwd=project, check=True).stdout
    assert not marker.exists(), "the .pyc ran instead of the reviewed source"
    assert "export CARGO_TEAM='reviewed'" in out.splitlines()


def test_a_plugin_path_to_compiled_code_is_refused(cli, project, tmp_path):
    marker = tmp_path / "pyc-ran"
    source = project / "tools" / "bp_src.py"
    write(source, "")
    pyc = unchecked_pyc(source, evil(marker) + PLUGIN.format(imports="", value="'evil'"))
    compiled = project / "tools" / "bp.pyc"
    compiled.write_bytes(pyc.read_bytes())
    write(project / "buildpolicy.toml", 'plugin_paths = ["tools/bp.pyc"]\n')
    cli("allow", "-q", cwd=project, check=True)
    proc = cli("env", cwd=project, check=True)
    assert not marker.exists()
    assert "CARGO_TEAM" not in proc.stdout and "not a Python source file" in proc.stderr


@pytest.mark.parametrize("imports", [
    "import bphelper",  # a sibling by name
    "import os, sys\nsys.path.insert(0, os.path.dirname(__file__))\nimport bphelper",  # the usual sys.path idiom
    "from tools import bphelper",  # through the project directory (python -m puts it on sys.path)
])
def test_a_sibling_module_edited_after_allow_is_refused(cli, project, tmp_path, imports):
    marker = tmp_path / "helper-ran"
    write(project / "tools" / "bp.py", PLUGIN.format(imports=imports, value="bphelper.VALUE"))
    helper = write(project / "tools" / "bphelper.py", HELPER)
    allowed = cli("allow", cwd=project, check=True)
    assert "export CARGO_TEAM='reviewed'" in cli("env", cwd=project, check=True).stdout.splitlines()

    helper.write_text(evil(marker, "changed"))
    refused = cli("env", cwd=project)
    assert not marker.exists(), "the edited helper ran"
    assert refused.returncode == 2 and refused.stdout == ""
    assert "changed since `buildpolicy allow`" in refused.stderr and str(helper) in refused.stderr
    assert "(3 file(s) hashed)" in allowed.stdout  # profile, plugin and the helper it imports


def test_an_unchecked_pyc_of_a_sibling_never_runs(cli, project, tmp_path):
    marker = tmp_path / "pyc-ran"
    write(project / "tools" / "bp.py", PLUGIN.format(imports="import bphelper", value="bphelper.VALUE"))
    helper = write(project / "tools" / "bphelper.py", "")
    unchecked_pyc(helper, evil(marker))
    helper.write_text(HELPER)
    cli("allow", "-q", cwd=project, check=True)
    out = cli("env", cwd=project, check=True).stdout
    assert not marker.exists(), "the sibling's .pyc ran"
    assert "export CARGO_TEAM='reviewed'" in out.splitlines()


@pytest.mark.parametrize("kind", ["dynamic", "compiled"])
def test_repository_code_allow_did_not_hash_is_not_imported(cli, project, tmp_path, kind):
    marker = tmp_path / "unhashed-ran"
    if kind == "dynamic":
        # An import the static scan cannot see: the module is not hashed, so it must not run.
        imports = "import importlib\nhidden = importlib.import_module('bp' + 'hidden')"
        write(project / "tools" / "bphidden.py", evil(marker))
        expected = "was not hashed by `buildpolicy allow`"
    else:
        imports = "import os, sys\nsys.path.insert(0, os.path.dirname(__file__))\nimport bpnative"
        source = write(project / "tools" / "bpnative_src.py", "")
        pyc = unchecked_pyc(source, evil(marker))
        (project / "tools" / "bpnative.pyc").write_bytes(pyc.read_bytes())  # sourceless: runs as bpnative
        source.unlink()
        expected = "is compiled code in the repository"
    write(project / "tools" / "bp.py", PLUGIN.format(imports=imports, value="'x'"))
    cli("allow", "-q", cwd=project, check=True)
    proc = cli("env", cwd=project, check=True)
    assert not marker.exists()
    assert "CARGO_TEAM" not in proc.stdout
    assert "plugin 'bp' could not be loaded" in proc.stderr and expected in proc.stderr


def test_a_plugin_edited_between_the_trust_check_and_the_import_is_not_run(project, base_env, tmp_path):
    """The bytes run are the bytes checked: a file replaced after the check is refused."""
    marker = tmp_path / "late-edit-ran"
    plugin = write(project / "tools" / "bp.py", PLUGIN.format(imports="", value="'reviewed'"))
    request = Request(cwd=project, environ=dict(base_env), command="allow", trust="report")
    state = prepare(request).paths.state_dir
    policy_set = prepare(request).policy_set
    trust.allow(policy_set, state)
    verdict = trust.check(policy_set, state)
    assert verdict.trusted and str(plugin) in verdict.digests
    plugin.write_text(evil(marker) + PLUGIN.format(imports="", value="'late'"))
    host = make_plugin_manager(entry_points=False, plugin_paths=[plugin], plugin_digests=verdict.digests,
                               project_root=str(project))
    assert not marker.exists()
    assert any("changed since `buildpolicy allow`" in error for error in host.load_errors), host.load_errors
