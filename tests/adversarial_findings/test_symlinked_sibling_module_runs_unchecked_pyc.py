"""Finding: a team plugin's sibling module is a symlink to a harmless file outside
the repository (``tools/helpers.py -> /etc/hostname``-like), and the repository ships
``tools/__pycache__/helpers.cpython-3X.pyc`` compiled with ``UNCHECKED_HASH``.

``allow`` hashes ``helpers.py`` (the harmless target). The import guard decides
"repository code" by the *resolved* origin, which lies outside the project, so it
hands the module to Python's normal loader; that loader reads the bytecode cache
next to the *symlink*, i.e. the repository's unchecked .pyc, and runs it (item 3:
"load team plugins from exactly the bytes that were hashed").

Expected: after `allow`, `env` never runs the .pyc; the module is loaded from the
hashed bytes (or refused).
"""

from __future__ import annotations

import importlib.util
import py_compile

from tests.conftest import write

PLUGIN = """\
from buildpolicy import hookimpl
from buildpolicy.model import Decision
import helpers

@hookimpl
def buildpolicy_decide(ctx):
    return Decision("team", 1, "ok", "team plugin", set_env={"CARGO_TEAM": "reviewed"})
"""


def test_unchecked_pyc_behind_a_symlinked_sibling_never_runs(cli, tmp_path):
    marker = tmp_path / "pyc-ran"
    project = tmp_path / "proj"
    write(project / "buildpolicy.toml", 'plugin_paths = ["tools/bp.py"]\n')
    write(project / "tools" / "bp.py", PLUGIN)
    outside = write(tmp_path / "elsewhere" / "harmless.py", 'VALUE = "harmless"\n')  # any existing file works
    helper = project / "tools" / "helpers.py"
    helper.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    py_compile.compile(str(helper), cfile=importlib.util.cache_from_source(str(helper)), doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    helper.unlink()
    helper.symlink_to(outside)  # what the reviewer sees: a link to a harmless file

    cli("allow", cwd=project, check=True)
    proc = cli("env", cwd=project)
    assert not marker.exists(), "the repository's unchecked .pyc ran after `allow`"
    assert proc.returncode in (0, 2), proc.stderr
