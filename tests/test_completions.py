"""Issue 13 item 11: `buildpolicy completions bash|zsh|fish` and `buildpolicy man`, both
written out from the argparse parser. Each script is loaded into the real shell and asked
to complete; zsh through an interactive shell on a pseudo-terminal, typing TAB. The man
page is rendered by man(1) or groff, with their warnings on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from buildpolicy.cli import COMMANDS, build_parser
from tests.conftest import write
from tests.ptyshell import InteractiveShell
from tests.test_hook import _require

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def zsh_env(base_env, home, tmp_path) -> dict[str, str]:
    """`buildpolicy` on PATH as this interpreter, for the rc file; zsh reads $ZDOTDIR/.zshrc."""
    bin_dir = tmp_path / "bin"
    write(bin_dir / "buildpolicy", f'#!/bin/sh\nexec "{sys.executable}" -m buildpolicy "$@"\n').chmod(0o755)
    return {**base_env, "PATH": f"{bin_dir}:{base_env['PATH']}", "PYTHONPATH": str(REPO), "TERM": "dumb",
            "ZDOTDIR": str(home)}


def completions(cli, shell: str) -> str:
    proc = cli("completions", shell, check=True)
    assert proc.stderr == ""
    return proc.stdout


def bash_complete(cli, tmp_path, line: str) -> list[str]:
    """What the bash completion function offers for ``line`` (the word being typed is its last)."""
    script = tmp_path / "completion.bash"
    script.write_text(completions(cli, "bash"))
    words = line.split(" ")
    program = (f"source {script}\ncomplete -p buildpolicy\n"
               f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; COMP_LINE={line!r}\n"
               "_buildpolicy buildpolicy; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    proc = subprocess.run([_require("bash"), "--norc", "-c", program], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    registered, *offered = proc.stdout.splitlines()
    assert registered == "complete -o default -F _buildpolicy buildpolicy"
    return offered


def test_bash_completes_commands_options_and_values(cli, tmp_path):
    assert bash_complete(cli, tmp_path, "buildpolicy ex") == ["exec", "explain"]
    assert set(bash_complete(cli, tmp_path, "buildpolicy ")) == set(COMMANDS)
    assert bash_complete(cli, tmp_path, "buildpolicy explain --co") == ["--color"]
    assert bash_complete(cli, tmp_path, "buildpolicy explain --color a") == ["auto", "always"]
    assert bash_complete(cli, tmp_path, "buildpolicy env --shell f") == ["fish"]
    assert bash_complete(cli, tmp_path, "buildpolicy -C /tmp --profile dev hook z") == ["zsh"]
    assert bash_complete(cli, tmp_path, "buildpolicy set --layer p") == ["project"]
    (tmp_path / "facts-file.json").write_text("{}")
    assert bash_complete(cli, tmp_path, "buildpolicy explain --facts facts-") == ["facts-file.json"]


def test_fish_completes_commands_options_and_values(cli, tmp_path):
    fish = _require("fish")
    script = tmp_path / "buildpolicy.fish"
    script.write_text(completions(cli, "fish"))

    def complete(line: str) -> list[str]:
        proc = subprocess.run([fish, "--no-config", "-c", f"source {script}; complete -C {line!r}"], capture_output=True,
                              text=True, timeout=60, cwd=tmp_path)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        return [entry.split("\t")[0] for entry in proc.stdout.splitlines()]

    assert complete("buildpolicy ex") == ["exec", "explain"]
    assert set(complete("buildpolicy ")) >= set(COMMANDS)
    assert complete("buildpolicy explain --col") == ["--color"]
    assert set(complete("buildpolicy explain --color ")) == {"auto", "always", "never"}
    assert complete("buildpolicy env --shell p") == ["posix", "powershell"]
    assert complete("buildpolicy completions z") == ["zsh"]
    described = subprocess.run([fish, "--no-config", "-c", f"source {script}; complete -C 'buildpolicy expl'"],
                               capture_output=True, text=True, timeout=60).stdout
    assert described == "explain\twhy every value is what it is\n"


def test_zsh_completes_by_tab_in_an_interactive_shell(cli, zsh_env, home, tmp_path):
    zsh = _require("zsh")
    write(home / ".zshrc", "PS1='$ '\nautoload -U compinit && compinit -u\nsource <(buildpolicy completions zsh)\n")
    shell = InteractiveShell([zsh, "-i"], zsh_env, str(tmp_path))
    try:
        shell.run("true")  # the rc file has run
        assert "_buildpolicy" in shell.run("print -r -- ${_comps[buildpolicy]}")
        # TAB completes the command; the completed line then runs (its --help shows which one).
        assert "usage: buildpolicy explain" in shell.run("buildpolicy expl\t--help | head -1")
        # An option of that command, then a value from its choices.
        shown = shell.run("buildpolicy completions --he\t | head -1")
        assert "usage: buildpolicy completions" in shown
        assert "# fish completion for buildpolicy" in shell.run("buildpolicy completions fi\t | head -1")
    finally:
        shell.close()


def test_every_command_and_option_is_in_every_script(cli):
    parser = build_parser()
    subcommands = next(a for a in parser._actions if hasattr(a, "_name_parser_map")).choices
    scripts = {shell: completions(cli, shell) for shell in ("bash", "zsh", "fish")}
    for name, sub in subcommands.items():
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in scripts["bash"] and flag in scripts["zsh"], (name, flag)
                fish_flag = f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}"
                assert fish_flag in scripts["fish"], (name, flag)
        for shell, text in scripts.items():
            assert name in text, (shell, name)


def _man_source(cli, tmp_path) -> Path:
    page = tmp_path / "buildpolicy.1"
    proc = cli("man", env={"SOURCE_DATE_EPOCH": "1767225600"}, check=True)
    page.write_text(proc.stdout)
    return page


def test_the_man_page_renders_without_warnings(cli, tmp_path):
    page = _man_source(cli, tmp_path)
    source = page.read_text()
    assert source.startswith('.TH BUILDPOLICY 1 "2026-01-01" "buildpolicy ')
    groff = _require("groff")
    lint = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0 and lint.stderr == "", lint.stderr
    if shutil.which("man"):
        shown = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, timeout=60,
                               env={"MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat", "PATH": "/usr/bin:/bin",
                                    "LANG": "C.UTF-8"})
    else:
        shown = subprocess.run([groff, "-man", "-Tutf8", str(page)], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    import re

    text = re.sub(".\b", "", text)  # overstrike (bold, underline) when no pager removed it
    for heading in ("NAME", "SYNOPSIS", "OPTIONS", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "FILES"):
        assert f"\n{heading}\n" in text, heading
    words = " ".join(text.split())
    for name in COMMANDS:
        assert f"\n   {name}\n" in text and f"buildpolicy {name} [-h]" in words, name  # its section, its usage
    assert "--color {auto,always,never}" in text
    assert "NO_COLOR" in text and "75" in text
