"""`buildpolicy hook bash|zsh|fish` in real interactive shells on a pty (DESIGN §13).

Each shell reads the hook from its own rc file, as the README says to install it,
and shows a prompt before every line; the tests cd in and out of projects and
look at the exported environment after each prompt (``env -0`` into a file).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write
from tests.ptyshell import InteractiveShell, read_env0

REPO = Path(__file__).resolve().parent.parent

# What each shell changes on its own between prompts, or sets up itself.
SHELL_MANAGED = {"PWD", "OLDPWD", "_", "SHLVL", "LINES", "COLUMNS", "LOGNAME", "USER", "HOSTNAME"}

STATUS = {"bash": "$?", "zsh": "$?", "fish": "$status"}


def _require(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"{shell} comes from scripts/install-system-deps.sh")
    return path


@pytest.fixture
def hook_env(tmp_path, base_env, home) -> dict[str, str]:
    """The shell's environment: `buildpolicy` on PATH, a user layer setting jobs = 3,
    and the user's own CARGO_BUILD_JOBS=7 inherited from before the shell."""
    bin_dir = tmp_path / "bin"
    write(bin_dir / "buildpolicy", f'#!/bin/sh\nexec "{sys.executable}" -m buildpolicy "$@"\n').chmod(0o755)
    write(home / "config" / "buildpolicy" / "knobs.toml", "[knobs]\njobs = 3\n")
    env = dict(base_env)
    env.update({
        "PATH": f"{bin_dir}:{base_env['PATH']}",
        "TERM": "dumb",
        "CARGO_BUILD_JOBS": "7",
        "XDG_DATA_HOME": str(home / "data"),
        "PYTHONPATH": str(REPO),
    })
    return env


@pytest.fixture
def places(tmp_path) -> dict[str, Path]:
    """A buildpolicy project, a bare cargo package, and a directory that is neither."""
    project = tmp_path / "proj"
    write(project / "buildpolicy.toml", 'policies = ["policies"]\n')
    write(project / "policies" / "project.toml",
          '[[rule]]\nid = "offline"\nenv = { CARGO_NET_OFFLINE = "true" }\n')
    (project / "src").mkdir()
    crate = tmp_path / "crate"
    write(crate / "Cargo.toml", '[package]\nname = "c"\nversion = "0.1.0"\n')
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    return {"project": project, "crate": crate, "outside": outside, "dumps": tmp_path}


def start(shell: str, env: dict[str, str], home: Path, cwd: Path, hook_lines: int = 1) -> InteractiveShell:
    """An interactive ``shell`` whose rc file installs the hook as the README says."""
    executable = _require(shell)
    if shell == "bash":
        rc = "PS1='$ '\n" + 'eval "$(buildpolicy hook bash)"\n' * hook_lines
        write(home / ".bashrc", rc)
        argv = [executable, "-i"]
    elif shell == "zsh":
        rc = "PS1='$ '\n" + 'eval "$(buildpolicy hook zsh)"\n' * hook_lines
        write(home / ".zshrc", rc)
        argv = [executable, "-i"]
    else:
        rc = "function fish_prompt; echo -n '$ '; end\n" + "buildpolicy hook fish | source\n" * hook_lines
        write(home / "config" / "fish" / "config.fish", rc)
        argv = [executable, "-i"]
    return InteractiveShell(argv, env, str(cwd))


class Dumper:
    """Dumps the shell's exported environment after the prompt that follows each step."""

    def __init__(self, shell: InteractiveShell, directory: Path):
        self.shell, self.directory, self.count = shell, directory, 0

    def __call__(self) -> dict[str, str]:
        self.count += 1
        path = self.directory / f"step{self.count}.env"
        self.shell.run(f"env -0 > {path}")
        return read_env0(path)


def _ours(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name not in SHELL_MANAGED}


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_hook_applies_inside_projects_and_restores_the_shell_outside(shell, hook_env, home, places):
    sh = start(shell, hook_env, home, places["outside"])
    try:
        dump = Dumper(sh, places["dumps"])
        before = dump()
        # Outside any project (hook_scope = project, the default) nothing is applied:
        # the user's own CARGO_BUILD_JOBS stays, no linker, no record.
        assert before["CARGO_BUILD_JOBS"] == "7"
        assert "BUILDPOLICY_ENV_STATE" not in before
        assert not [name for name in before if name.startswith("CARGO_TARGET_")]

        sh.run(f"cd {places['project']}")
        inside = dump()
        assert inside["CARGO_BUILD_JOBS"] == "3"  # the user layer's jobs knob beats the inherited 7
        assert inside["CARGO_NET_OFFLINE"] == "true"  # the project's rule
        assert "BUILDPOLICY_ENV_STATE" in inside

        sh.run(f"cd {places['project'] / 'src'}")
        deeper = dump()
        assert deeper["CARGO_NET_OFFLINE"] == "true" and deeper["CARGO_BUILD_JOBS"] == "3"

        sh.run(f"cd {places['outside']}")
        assert _ours(dump()) == _ours(before)  # exactly what the shell had before

        # A bare cargo package is a project too: the user's policy applies, not the other project's.
        sh.run(f"cd {places['crate']}")
        crate = dump()
        assert crate["CARGO_BUILD_JOBS"] == "3" and "CARGO_NET_OFFLINE" not in crate

        # The project's file removed while the shell is in it: the next prompt restores.
        sh.run(f"cd {places['project']}")
        assert dump()["CARGO_NET_OFFLINE"] == "true"
        sh.run(f"rm {places['project'] / 'buildpolicy.toml'}")
        assert _ours(dump()) == _ours(before)

        # The hook keeps the status of the command before the prompt.
        sh.send("false\n")
        assert "st=1" in sh.run(f'echo "st={STATUS[shell]}"')
    finally:
        sh.close()


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_hook_installed_twice_runs_once_per_prompt(shell, hook_env, home, places):
    sh = start(shell, hook_env, home, places["outside"], hook_lines=2)
    try:
        listing = places["dumps"] / "hooks.txt"
        what = "${PROMPT_COMMAND[*]}" if shell == "bash" else "${precmd_functions[*]}"
        sh.run(f'printf "%s" "{what}" > {listing}')
        assert listing.read_text().split(";" if shell == "bash" else " ").count("_buildpolicy_hook") == 1
    finally:
        sh.close()


def test_hook_scope_everywhere_applies_the_user_layer_outside_projects(hook_env, home, places):
    write(home / "config" / "buildpolicy" / "knobs.toml", '[knobs]\njobs = 3\nhook_scope = "everywhere"\n')
    sh = start("bash", hook_env, home, places["outside"])
    try:
        dump = Dumper(sh, places["dumps"])
        outside = dump()
        assert outside["CARGO_BUILD_JOBS"] == "3" and "BUILDPOLICY_ENV_STATE" in outside
        sh.run(f"cd {places['project']}")
        assert dump()["CARGO_NET_OFFLINE"] == "true"
        sh.run(f"cd {places['outside']}")
        back = dump()
        assert back["CARGO_BUILD_JOBS"] == "3" and "CARGO_NET_OFFLINE" not in back
    finally:
        sh.close()


def test_hook_entering_a_refused_project_restores_the_shell(hook_env, home, places, tmp_path):
    untrusted = tmp_path / "cloned"
    write(untrusted / "buildpolicy.toml", 'policies = ["policies"]\n')
    write(untrusted / "policies" / "evil.toml", '[[rule]]\nid = "evil"\nenv = { LD_PRELOAD = "/tmp/x.so" }\n')
    sh = start("bash", hook_env, home, places["outside"])
    try:
        dump = Dumper(sh, places["dumps"])
        before = dump()
        sh.run(f"cd {places['project']}")
        assert dump()["CARGO_NET_OFFLINE"] == "true"
        sh.run(f"cd {untrusted}")
        shown = sh.run(":")  # what the hook printed at the prompt after the cd
        after = dump()
        # The refusal is on the terminal, and the first project's variables are gone.
        assert "buildpolicy allow" in shown
        assert _ours(after) == _ours(before) and "LD_PRELOAD" not in after
    finally:
        sh.close()


def test_hook_calls_the_console_script_by_its_absolute_path(tmp_path):
    script = Path(sys.executable).parent / "buildpolicy"
    if not script.is_file():
        pytest.skip("buildpolicy is not installed as a console script next to this interpreter")
    out = subprocess.run([str(script), "hook", "zsh"], capture_output=True, text=True, timeout=60, check=True).stdout
    assert f"{script} env --shell zsh --hook" in out


def test_hook_rejects_other_shells(cli):
    proc = cli("hook", "tcsh")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "bash" in proc.stderr and "fish" in proc.stderr
