"""Output formats read back exactly by real loaders; errors say what is true (issue 10, item 16).

- dotenv: python-dotenv expanded ``${...}`` in our values and kept ``\\$`` as two
  characters; now every value reads back exactly with python-dotenv, and plain
  values with a shell's ``set -a; . ./file`` and direnv's ``dotenv`` too.
- An inherited value holding bytes that are not UTF-8 made json, dotenv and
  github output invalid UTF-8: json now escapes them, dotenv and github refuse.
- A user-layer write failure said "the site layer usually needs root".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

from tests.conftest import write

# Values a build variable can hold, chosen to break naive quoting.
NASTY = {
    "BP_BRACED": "${HOME}",
    "BP_DEFAULTED": "${NOPE:-fallback} and ${:-x}",
    "BP_DOLLARS": "$HOME $$ $ end$",
    "BP_ESCAPED_DOLLAR": "\\${HOME} \\$HOME",
    "BP_QUOTES": "it's \"quoted\" 'single'",
    "BP_BACKSLASHES": "C:\\dir\\\\sub\\n\\",
    "BP_LINES": "first\nsecond\r\nthird\r",
    "BP_HASH": "value # not a comment",
    "BP_SPACES": "  padded  ",
    "BP_EMPTY": "",
    "BP_UNICODE": "é ✓ \u2019",
    "BP_EQUALS": "a=b==c",
}
PLAIN = {name: value for name, value in NASTY.items()
         if name in ("BP_DOLLARS", "BP_HASH", "BP_SPACES", "BP_EMPTY", "BP_UNICODE", "BP_EQUALS")}


def user_rule(config_home: str, values: dict[str, str]) -> None:
    """A user-layer rule setting ``values`` (``$`` doubled: templates read ``$$`` as ``$``)."""
    entries = ", ".join(f"{name} = {json.dumps(value.replace('$', '$$'))}" for name, value in values.items())
    write(Path(config_home) / "buildpolicy" / "values.toml", f'[[rule]]\nid = "values"\nforce = true\nenv = {{ {entries} }}\n')


@pytest.fixture
def dotenv_file(cli, tmp_path):
    """``buildpolicy env --format dotenv`` for the NASTY values, written to a file."""
    user_rule(cli.env["XDG_CONFIG_HOME"], NASTY)
    proc = cli("env", "--format", "dotenv", cwd=tmp_path, check=True)
    path = tmp_path / "build.env"
    path.write_bytes(proc.stdout.encode())
    return path


def test_python_dotenv_reads_every_value_back_exactly(dotenv_file, monkeypatch):
    monkeypatch.setenv("HOME", "/home/should-not-appear")
    monkeypatch.setenv("NOPE", "should-not-appear")
    loaded = dotenv_values(dotenv_file)  # interpolation on: python-dotenv's default
    assert {name: loaded.get(name) for name in NASTY} == NASTY
    # load_dotenv in a fresh interpreter sees the same values in its environment.
    code = ("import json, os, sys; from dotenv import load_dotenv; load_dotenv(sys.argv[1]); "
            f"print(json.dumps({{n: os.environ.get(n) for n in {sorted(NASTY)!r}}}))")
    out = subprocess.run([sys.executable, "-c", code, str(dotenv_file)], capture_output=True, text=True, check=True,
                         timeout=60, env={"PATH": os.environ["PATH"], "HOME": "/elsewhere"}).stdout
    assert json.loads(out) == NASTY


@pytest.fixture
def plain_dotenv_file(cli, tmp_path):
    """``buildpolicy env --format dotenv`` when every value is plain: single-quoted lines only."""
    user_rule(cli.env["XDG_CONFIG_HOME"], PLAIN)
    proc = cli("env", "--format", "dotenv", cwd=tmp_path, check=True)
    assert all(line.split("=", 1)[1].startswith("'") for line in proc.stdout.splitlines())
    path = tmp_path / "plain.env"
    path.write_bytes(proc.stdout.encode())
    return path


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_a_shell_reads_plain_values_back_exactly(plain_dotenv_file, shell):
    if shutil.which(shell) is None:
        pytest.skip(f"needs {shell}")
    proc = subprocess.run([shell, "-c", 'set -a; . "$1"; env -0', shell, str(plain_dotenv_file)], capture_output=True,
                          check=True, timeout=60, env={"PATH": os.environ["PATH"], "HOME": "/elsewhere"})
    seen = dict(item.decode().split("=", 1) for item in proc.stdout.split(b"\0") if item)
    assert {name: seen.get(name) for name in PLAIN} == PLAIN


def test_direnv_reads_plain_values_back_exactly(plain_dotenv_file, tmp_path):
    if shutil.which("direnv") is None:
        pytest.skip("needs direnv")
    proc = subprocess.run(["direnv", "dotenv", "json", str(plain_dotenv_file)], capture_output=True, text=True,
                          check=True, timeout=60, env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    assert {name: value for name, value in json.loads(proc.stdout).items() if name in PLAIN} == PLAIN


# --------------------------------------------------------------- bytes that are not UTF-8

RAW = b"x\xff\xfe-\xc3"  # an inherited value no UTF-8 decoder accepts


@pytest.fixture
def inherited_bytes(cli, tmp_path):
    """A rule value built from an inherited variable holding RAW (os.environ's surrogateescape)."""
    write(Path(cli.env["XDG_CONFIG_HOME"]) / "buildpolicy" / "raw.toml",
          '[[rule]]\nid = "raw"\nenv = { CARGO_RAW = "${env.RAW_INPUT}" }\n')
    return {"RAW_INPUT": os.fsdecode(RAW)}


def _run_bytes(cli, tmp_path, env, *args) -> subprocess.CompletedProcess:
    full = dict(cli.env, **env)
    return subprocess.run([sys.executable, "-m", "buildpolicy", "env", *args], cwd=tmp_path, capture_output=True,
                          env={k.encode(): os.fsencode(v) for k, v in full.items()}, timeout=60)


def test_json_escapes_undecodable_bytes_and_stays_valid_utf8(cli, tmp_path, inherited_bytes):
    proc = _run_bytes(cli, tmp_path, inherited_bytes, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode("utf-8")  # strict: raises on invalid UTF-8
    value = json.loads(text)["set"]["CARGO_RAW"]
    assert value.encode("utf-8", "surrogateescape") == RAW


@pytest.mark.parametrize("fmt", ["dotenv", "github"])
def test_dotenv_and_github_refuse_undecodable_bytes(cli, tmp_path, inherited_bytes, fmt):
    proc = _run_bytes(cli, tmp_path, inherited_bytes, "--format", fmt)
    assert proc.returncode == 2 and proc.stdout == b""
    stderr = proc.stderr.decode("utf-8", "replace")
    assert "CARGO_RAW" in stderr and "not UTF-8" in stderr and "--format sh" in stderr
    assert "Traceback" not in stderr


def test_the_shell_format_still_carries_the_exact_bytes(cli, tmp_path, inherited_bytes):
    proc = _run_bytes(cli, tmp_path, inherited_bytes, "--shell", "bash")
    assert proc.returncode == 0, proc.stderr
    shown = subprocess.run(["bash", "-c", 'eval "$1"; printf %s "$CARGO_RAW"', "bash", os.fsdecode(proc.stdout)],
                           capture_output=True, timeout=60, check=True).stdout
    assert shown == RAW


# --------------------------------------------------------------- set/unset error messages


def _without_root_powers(cli, args, cwd):
    """Run the CLI as root without the capability to ignore file permissions."""
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("needs setpriv and root")
    return subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m",
                           "buildpolicy", *args], cwd=cwd, env=cli.env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [["set", "jobs", "2"], ["unset", "jobs"]])
def test_a_user_layer_write_failure_does_not_blame_the_site_layer(cli, tmp_path, command):
    user_dir = Path(cli.env["XDG_CONFIG_HOME"]) / "buildpolicy"
    write(user_dir / "knobs.toml", "[knobs]\njobs = 4\n")
    user_dir.chmod(0o555)
    try:
        proc = _without_root_powers(cli, [*command, "--layer", "user"], tmp_path)
    finally:
        user_dir.chmod(0o755)
    assert proc.returncode == 2 and "Permission denied" in proc.stderr, proc.stderr
    assert str(user_dir / "knobs.toml") in proc.stderr
    assert "site layer" not in proc.stderr and "needs root" not in proc.stderr


def test_a_site_layer_write_failure_still_says_it_usually_needs_root(cli, tmp_path):
    site = Path(cli.env["BUILDPOLICY_SITE_DIR"])
    site.chmod(0o555)
    try:
        proc = _without_root_powers(cli, ["set", "jobs", "2", "--layer", "site"], tmp_path)
    finally:
        site.chmod(0o755)
    assert proc.returncode == 2 and "the site layer usually needs root" in proc.stderr, proc.stderr
