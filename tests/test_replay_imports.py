"""What a prompt imports (DESIGN §10, issue 13): the warm replay none of the modules that
made it slower than a bash wrapper, a full evaluation none of the heavy dependencies it
does not need.

Run as a user runs it: the ``buildpolicy`` script pip installs (``bin/buildpolicy``, not
pip's generated entry-point wrapper, which imports ``re``), from a non-editable install.
The interpreter runs without ``site`` (``-S``) and finds everything through PYTHONPATH,
which processes no ``.pth`` file: the development environment's own ``.pth`` files (an
editable install's finder) import ``re`` and ``pathlib`` before anything of ours runs.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Each was imported by every replayed prompt before issue 13 (with `enum`, `functools`,
# `collections` and `urllib.parse` behind `re` and `pathlib`).
NOT_ON_THE_REPLAY = ("re", "enum", "functools", "collections", "pathlib", "fnmatch", "json", "urllib.parse",
                     "importlib", "operator", "typing", "math", "pluggy", "attrs", "attr")
# Dependencies a full evaluation with warm caches has no use for.
NOT_ON_THE_FULL_RUN = ("jsonschema", "tomlkit", "cattrs", "attrs", "attr", "psutil", "importlib.metadata", "rich")

# Plugins are pluggy plugins, registered without pluggy (engine/hookregistry.py reads its markers).
NOT_ON_THE_FULL_RUN += ("pluggy",)
# Standard modules that cost a full evaluation milliseconds each for nothing (issue 13): attrs
# and pluggy brought `inspect`; annotations brought `typing`; digests `hashlib`; a lock
# `threading`; state files `json`.
NOT_ON_THE_FULL_RUN += ("inspect", "typing", "hashlib", "threading", "json")

# Prints the modules loaded when the program exits (sys.exit runs atexit handlers);
# `atexit` itself is a built-in module.
_RUN_SCRIPT = """\
import atexit, sys
atexit.register(lambda: sys.stderr.write("\\nmodules: " + repr(sorted(sys.modules)) + "\\n"))
script = sys.argv[1]
sys.argv = sys.argv[1:]
exec(compile(open(script).read(), script, "exec"), {"__name__": "__main__"})
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``pip install .`` of this checkout into a target directory (no dependencies)."""
    target = tmp_path_factory.mktemp("installed")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--target", str(target), str(REPO)],
        check=True, capture_output=True, cwd=target,
    )
    assert (target / "bin" / "buildpolicy").is_file()
    return target


def run_env(installed: Path, base_env: dict, cwd: Path, args: list[str], **extra: str) -> tuple[str, set[str]]:
    """``buildpolicy env ARGS`` through the installed script; its stdout and the modules it loaded."""
    site_packages = sysconfig.get_paths()["purelib"]  # attrs, pluggy, … of this interpreter
    env = {**base_env, "PYTHONPATH": os.pathsep.join([str(installed), site_packages]), **extra}
    proc = subprocess.run([sys.executable, "-S", "-c", _RUN_SCRIPT, str(installed / "bin" / "buildpolicy"), "env", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stderr.splitlines() if line.startswith("modules: "))
    return proc.stdout, set(ast.literal_eval(line[len("modules: "):]))


def test_the_interpreter_alone_imports_none_of_them(installed, base_env, tmp_path):
    """Otherwise the test below could not tell anything."""
    proc = subprocess.run([sys.executable, "-S", "-c", "import sys; print(sorted(sys.modules))"], env=base_env,
                          capture_output=True, text=True, check=True, cwd=tmp_path)
    loaded = set(ast.literal_eval(proc.stdout))
    assert not loaded & {*NOT_ON_THE_REPLAY, *NOT_ON_THE_FULL_RUN}


# Plain `env`, and the selfdev profile, where the front-end plugin asks for rust.nightly:
# the replay then lists the installed toolchains again.
@pytest.mark.parametrize("args", [[], ["--", "cargo", "build", "--profile", "selfdev"]], ids=["env", "env-selfdev"])
def test_a_replayed_env_imports_none_of_the_slow_modules(installed, base_env, tmp_path, args):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "Cargo.toml").write_text('[package]\nname = "p"\nversion = "0.1.0"\nedition = "2021"\n\n'
                                        '[profile.selfdev]\ninherits = "dev"\nincremental = true\n')
    (project / "src" / "main.rs").write_text("fn main() {}\n")
    (project / "buildpolicy.toml").write_text('default_profile = "dev"\n')
    rustup = tmp_path / "rustup"  # no nightly: one that would not run (no rustc here) is not replayable
    (rustup / "toolchains" / "stable-x86_64-unknown-linux-gnu" / "bin").mkdir(parents=True)
    base_env = {**base_env, "RUSTUP_HOME": str(rustup)}

    full, full_modules = run_env(installed, base_env, project, args)
    assert "buildpolicy.engine.pipeline" in full_modules and "pluggy" not in full_modules  # a full run: it records
    replayed, modules = run_env(installed, base_env, project, args)
    assert replayed == full
    assert "buildpolicy.replay.check" in modules and "buildpolicy.engine.pipeline" not in modules
    assert sorted(modules & set(NOT_ON_THE_REPLAY)) == []
    # What it does import: the replay, the probes it re-runs, and the few light modules they need.
    assert {"buildpolicy.facts.memory", "buildpolicy.facts.system"} <= modules
    if args:
        assert "buildpolicy.facts.rust" in modules

    # A full evaluation with warm caches (the replay switched off): no schema validation,
    # no TOML editing, no structuring, no psutil (Linux reads /proc), no entry-point scan,
    # no pluggy (buildpolicy's own registry reads pluggy's markers).
    again, full_modules = run_env(installed, base_env, project, args, BUILDPOLICY_REPLAY="off")
    assert again == full
    assert "buildpolicy.engine.pipeline" in full_modules
    assert sorted(full_modules & set(NOT_ON_THE_FULL_RUN)) == []
