"""Real shells evaluate render_env's output and must reproduce every byte.

bash, zsh, dash, sh and fish are run for real (pwsh is not available: its text
is checked structurally in test_render.py).  Each hypothesis example renders a
whole environment once and evaluates it in ONE shell process, which then
reports, NUL-separated on stdout:

* the exported environment before the evaluation (``env -0``),
* each set variable's value as the shell sees it, and whether each unset
  variable still exists (``${NAME+set}`` / ``set -q``),
* the exported environment after the evaluation - what cargo would inherit.

The after-environment must equal the before-environment with exactly our sets
applied and our unsets removed, and the before-environment must be the one we
started the shell with: nothing from rc files or the caller's environment
leaks in.  Shells start with a minimal environment (like ``env -i PATH=...
HOME=...``), with their rc files disabled (``bash --norc --noprofile``,
``zsh -f``, ``fish --no-config``) and with a HOME whose rc files would leak a
variable if they were read.

A missing shell skips its tests with the package to install - except under CI
(environment variable CI set, and not "false"/"0"), where it FAILS, so that a
broken setup cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buildpolicy.output.render import render_env

# shell under test -> (executable, apt package providing it, render_env shell)
SHELLS = {
    "bash": ("bash", "bash", "bash"),
    "zsh": ("zsh", "zsh", "zsh"),
    "dash": ("dash", "dash", "posix"),
    "sh": ("sh", "dash", "posix"),
    "fish": ("fish", "fish", "fish"),
}

# Flags that keep each shell from reading any startup file of the user's.
# (zsh still reads /etc/zsh/zshenv, which nothing can turn off.)
NO_RC = {
    "bash": ["--norc", "--noprofile"],
    "zsh": ["-f"],
    "dash": [],
    "sh": [],
    "fish": ["--no-config"],
}

# Variables a shell itself creates or updates in the environment it exports
# (zsh exports LOGNAME and fish USER when they are missing).
SHELL_MANAGED = {"PWD", "OLDPWD", "SHLVL", "_", "LOGNAME", "USER"}

END = b"BPT-END"  # ends an env -0 listing; has no '=' so it is no env record

LOCALES = {"C": {}, "C.UTF-8": {"LC_ALL": "C.UTF-8"}}


def in_ci() -> bool:
    """True when running under CI, where a missing shell must fail, not skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(executable: str, package: str) -> str:
    """Return the path of *executable*, or skip (fail under CI) naming the package."""
    path = shutil.which(executable)
    if path:
        return path
    message = (
        f"{executable} is not installed: install the {package!r} package "
        f"(apt-get install -y {package}) to run the real-shell tests"
    )
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A HOME whose every rc file would leak BPT_RC_LEAK (and print) if read."""
    home = tmp_path_factory.mktemp("home")
    poison = "export BPT_RC_LEAK=1\necho rc-file-was-read\n"
    for name in (".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshenv",
                 ".zprofile", ".zshrc", ".zlogin", ".shrc"):
        (home / name).write_text(poison)
    fish_dir = home / ".config" / "fish"
    fish_dir.mkdir(parents=True)
    (fish_dir / "config.fish").write_text("set -gx BPT_RC_LEAK 1\necho rc-file-was-read\n")
    (fish_dir / "conf.d").mkdir()
    (fish_dir / "conf.d" / "leak.fish").write_text("set -gx BPT_RC_LEAK 1\n")
    return home


def base_env(home, shell_path: str, locale: str) -> dict[str, str]:
    """The minimal starting environment: PATH, HOME, maybe a locale."""
    dirs = []
    tools = (shell_path, shutil.which("env"), shutil.which("cat"))
    for directory in [os.path.dirname(tool) for tool in tools if tool] + ["/usr/bin", "/bin"]:
        if directory not in dirs:
            dirs.append(directory)
    # ENV would be read by an interactive dash/sh; make sure it points at poison.
    return {"PATH": os.pathsep.join(dirs), "HOME": str(home), "ENV": str(home / ".shrc"),
            **LOCALES[locale]}


# -- drivers: the script each shell runs around the evaluation ---------------


def posix_dump(set_names, unset_names) -> str:
    lines = [f"printf '%s\\0' \"${name}\"" for name in set_names]
    lines += [f"printf '%s\\0' \"${{{name}+set}}\"" for name in unset_names]
    lines += ["env -0", f"printf '{END.decode()}\\0'"]
    return "\n".join(lines)


def posix_driver(set_names, unset_names) -> str:
    """Evaluate "$1" twice, each in a fresh subshell: by eval (the documented
    ``eval "$(buildpolicy env)"``) and by the dot command."""
    dump = posix_dump(set_names, unset_names)
    blocks = []
    for apply in ('eval "$(cat "$1")"', '. "$1"'):
        blocks.append(
            f"(\nenv -0\nprintf '{END.decode()}\\0'\n{apply} || exit 3\n{dump}\n) || exit $?"
        )
    return "\n".join(blocks) + "\n"


# The two documented ways to apply the output in fish; fish has no subshell, so
# each runs in a fresh fish process.
FISH_APPLY = ("cat $argv[1] | source", "eval (cat $argv[1])")


def fish_driver(set_names, unset_names, apply: str = FISH_APPLY[0]) -> str:
    """Evaluate $argv[1] with ``apply``: ``buildpolicy env ... | source`` or
    ``eval (buildpolicy env ...)``."""
    lines = ["env -0", f"printf '{END.decode()}\\0'", apply, "or exit 3"]
    lines += [f"printf '%s\\0' \"${name}\"" for name in set_names]
    lines += [f"if set -q {name}; printf 'set\\0'; else; printf '\\0'; end" for name in unset_names]
    lines += ["env -0", f"printf '{END.decode()}\\0'"]
    return "\n".join(lines) + "\n"


def parse_env(records: list[bytes]) -> dict[bytes, bytes]:
    env = {}
    for record in records:
        name, sep, value = record.partition(b"=")
        assert sep, f"not an environment record: {record!r}"
        env[name] = value
    return env


def parse_modes(stdout: bytes, n_set: int, n_unset: int):
    """Split the driver's output into (before, values, presence, after) per mode."""
    records = stdout.split(b"\0")
    assert records.pop() == b"", "output must end with a NUL"
    modes = []
    while records:
        end = records.index(END)
        before, records = parse_env(records[:end]), records[end + 1:]
        values, records = records[:n_set], records[n_set:]
        presence, records = records[:n_unset], records[n_unset:]
        end = records.index(END)
        after, records = parse_env(records[:end]), records[end + 1:]
        modes.append((before, values, presence, after))
    return modes


def run_shell(shell: str, script_text: str, set_env, unset, start_env, home, locale,
              *, interactive_input: str | None = None):
    """Render nothing; evaluate *script_text* in *shell* and check every byte.

    Returns the parsed modes after asserting them against *set_env*/*unset*.
    """
    executable, package, _ = SHELLS[shell]
    path = require(executable, package)
    script = home / f"env-{shell}.txt"
    script.write_bytes(script_text.encode("utf-8"))
    set_names, unset_names = sorted(set_env), sorted(unset)
    env = {**base_env(home, path, locale), **start_env}
    if interactive_input is None and shell == "fish":
        stdout = b""
        for apply in FISH_APPLY:
            argv = [path, *NO_RC[shell], "-c", fish_driver(set_names, unset_names, apply), str(script)]
            proc = subprocess.run(argv, env=env, cwd=home, capture_output=True, timeout=60)
            assert proc.stderr == b"", (apply, proc.stderr.decode("utf-8", "replace"))
            assert proc.returncode == 0, (apply, proc.returncode)
            stdout += proc.stdout
        proc = subprocess.CompletedProcess(argv, 0, stdout, b"")
    elif interactive_input is None:
        driver = posix_driver(set_names, unset_names)
        argv = [path, *NO_RC[shell], "-c", driver, "driver", str(script)]  # "driver" is $0
        proc = subprocess.run(argv, env=env, cwd=home, capture_output=True, timeout=60)
        assert proc.stderr == b"", proc.stderr.decode("utf-8", "replace")
    else:
        argv = [path, *NO_RC[shell], "-i"]
        proc = subprocess.run(argv, env=env, cwd=home, capture_output=True, timeout=60,
                              input=interactive_input.replace("$SCRIPT", str(script)).encode())
    assert proc.returncode == 0, (proc.returncode, proc.stderr.decode("utf-8", "replace"))
    assert b"rc-file-was-read" not in proc.stdout + proc.stderr

    modes = parse_modes(proc.stdout, len(set_names), len(unset_names))
    assert modes, "the driver reported nothing"
    expected_start = {k.encode(): v.encode() for k, v in env.items()}
    for before, values, presence, after in modes:
        # Nothing leaked in from rc files or elsewhere: the shell exported
        # exactly what we started it with (plus its own bookkeeping variables).
        unmanaged = {k: v for k, v in before.items() if k.decode() not in SHELL_MANAGED}
        started = {k: v for k, v in expected_start.items() if k.decode() not in SHELL_MANAGED}
        if shell == "fish" and locale == "C":
            # fish in the C locale re-encodes non-ASCII values it inherited
            # (U+0080 comes back as C3 82 C2 80): its own import quirk, not
            # ours, so compare only which variables came in.
            unmanaged, started = set(unmanaged), set(started)
        assert unmanaged == started
        # Every value, byte for byte, as the shell holds it ...
        assert values == [set_env[name].encode("utf-8") for name in set_names]
        # ... every unset variable gone from the shell ...
        assert presence == [b""] * len(unset_names)
        # ... and what a child process (cargo) inherits: before + sets - unsets.
        expected_after = dict(before)
        expected_after.update({k.encode(): v.encode("utf-8") for k, v in set_env.items()})
        for name in unset_names:
            expected_after.pop(name.encode(), None)
        expected_after.pop(b"_", None)
        assert {k: v for k, v in after.items() if k != b"_"} == expected_after
    return modes


def check(shell: str, set_env, unset, start_env, home, locale):
    """Render for *shell*, then evaluate and verify in the real shell."""
    text = render_env(set_env, unset, shell=SHELLS[shell][2])
    return run_shell(shell, text, set_env, unset, start_env, home, locale)


# -- strategies ----------------------------------------------------------------

# Pieces that break naive quoting in at least one of the shells (or PowerShell,
# or fish's internal encodings: U+F600.. and U+FDD0.. are private markers there).
PIECES = [
    "'", '"', "\\", "$", "$(echo INJECTED)", "`echo INJECTED`", "$((1+1))", "${HOME}",
    "$HOME", "$0", "$1", "$argv", "(echo INJECTED)", "\n", "\n\n", "\t", "\r", "\r\n",
    "!", "!!", "!$", "!-1", "^a^b", "%", "%s", "%%", "%n", "~", "*", "?", "[a]", "{a,b}",
    "#", ";", "&", "|", "<", ">", " ", "-", "--", "-e", "-n", "-gx", "=", ":", "::",
    "\\'", "'\\''", "\\\\", "\\n", "\\0", "\\x41", "\\u0041", "''", "'''", "\"'\"",
    "é", "e\u0301", "a\u0308\u0323", "\U0001f600", "\U00010348", "\U0010ffff", "\u00a0",
    "\u2028", "\u2018", "\u2019", "\ufeff", "\uf600", "\uf6ff", "\ufdd0", "\ufdef",
    "\ufffe", "\uffff", "\ue000", "\x7f", "\x1b", "\x01", "\x85", "ß", "中文",
]
# Any character except NUL (not allowed in the environment); the utf-8 codec
# already rules out lone surrogates, which cannot be encoded.
ANY_CHAR = st.characters(codec="utf-8", exclude_characters="\0")
VALUES = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(ANY_CHAR, max_size=3)), max_size=8
).map("".join)

# Names get a BPT prefix so that they never hit a shell's special variables
# (zsh's `status`, fish's read-only `version`, ...), which a cargo environment
# does not use anyway; fish "path variables" (ending in PATH) are included.
NAMES = st.one_of(
    st.tuples(
        st.sampled_from(["BPT_", "bpt_", "_bpt", "Bpt9"]),
        st.from_regex(r"[A-Za-z0-9_]{0,6}", fullmatch=True),
    ).map("".join),
    st.sampled_from(["BPT_PATH", "bpt_LIBRARY_PATH", "BPTPATH"]),
)


@st.composite
def scenarios(draw):
    """(set_env, unset, start_env): disjoint sets and unsets plus the starting
    environment, which holds most unset variables and some old values."""
    names = draw(st.lists(NAMES, unique=True, max_size=7))
    set_env, unset, start_env = {}, [], {}
    for name in names:
        if draw(st.booleans()):
            set_env[name] = draw(VALUES)
            if draw(st.booleans()):
                start_env[name] = draw(VALUES)  # an old value to overwrite
        else:
            unset.append(name)
            if draw(st.integers(0, 3)):  # usually present, so unset has work to do
                start_env[name] = draw(VALUES)
    return set_env, unset, start_env


PROPERTY = settings(
    max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("locale", list(LOCALES))
@pytest.mark.parametrize("shell", list(SHELLS))
def test_shell_reproduces_every_byte(shell, locale, home):
    require(*SHELLS[shell][:2])  # skip/fail before hypothesis starts

    @PROPERTY
    @given(scenarios())
    def prop(scenario):
        set_env, unset, start_env = scenario
        check(shell, set_env, unset, start_env, home, locale)

    prop()


# -- fixed examples -----------------------------------------------------------

NASTY = {
    "BPT_QUOTES": "it's \"quoted\" '' '\\'' \\",
    "BPT_SUBST": "$(echo INJECTED) `echo INJECTED` ${HOME} $HOME (echo INJECTED)",
    "BPT_HIST": "!! !$ !-1 !# ^a^b\n^x^y\n!!",
    "BPT_TRAILING": "ends with newlines\n\n\n",
    "BPT_BACKSLASH_END": "ends with a backslash\\",
    "BPT_EMPTY": "",
    "BPT_UNICODE": "é e\u0301 \U0001f600 中文 \u2019 \ufdd0 \uf600",
    "BPT_DASH": "-e",
    "BPT_PATH": "/a:/b::/c:",
}


@pytest.mark.parametrize("locale", list(LOCALES))
@pytest.mark.parametrize("shell", list(SHELLS))
def test_fixed_nasty_values(shell, locale, home):
    start = {"BPT_GONE": "old", "BPT_QUOTES": "old value", "BPT_GONE_EMPTY": ""}
    modes = check(shell, NASTY, ["BPT_GONE", "BPT_GONE_EMPTY", "BPT_NEVER_SET"], start,
                  home, locale)
    assert len(modes) == 2  # eval and the dot command; in fish `| source` and `eval (...)`


@pytest.mark.parametrize("shell", list(SHELLS))
def test_empty_output_changes_nothing(shell, home):
    assert render_env({}, []) == ""
    check(shell, {}, [], {"BPT_KEEP": "kept"}, home, "C.UTF-8")


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_interactive_history_expansion_does_not_touch_values(shell, home):
    # History expansion is on in interactive bash/zsh; it must not reach the
    # values, whether the output is eval'ed or sourced.  (The next test shows
    # that such a session really expands "!!", so this one is not vacuous.)
    set_env = {"BPT_HIST": "a!!b !$ !-1 ^a^b\n!!\n^a^b", "BPT_OTHER": "!"}
    text = render_env(set_env, ["BPT_GONE"], shell=shell)
    dump = posix_dump(sorted(set_env), ["BPT_GONE"])
    session = (
        f"( env -0; printf '{END.decode()}\\0'; eval \"$(cat $SCRIPT)\"\n{dump}\n)\n"
        f"( env -0; printf '{END.decode()}\\0'; . $SCRIPT\n{dump}\n)\n"
        "exit 0\n"
    )
    executable, package, _ = SHELLS[shell]
    require(executable, package)
    run_shell(shell, text, set_env, ["BPT_GONE"], {"BPT_GONE": "x"}, home, "C.UTF-8",
              interactive_input=session)


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_interactive_history_expansion_is_really_on(shell, home):
    # The control for the test above: the same kind of session expands "!!".
    path = require(*SHELLS[shell][:2])
    proc = subprocess.run(
        [path, *NO_RC[shell], "-i"],
        input=b'true BPT_MARK\nprintf "<%s>" "!!"\nexit 0\n',
        env=base_env(home, path, "C.UTF-8"), cwd=home, capture_output=True, timeout=60,
    )
    assert proc.stdout == b"<true BPT_MARK>"


def test_fish_source_file_too(home):
    # `source FILE` (instead of a pipe) must give the same result.
    path = require("fish", "fish")
    script = home / "env-fish-file.txt"
    script.write_text(render_env(NASTY, ["BPT_GONE"], shell="fish"), encoding="utf-8")
    names = sorted(NASTY)
    driver = "source $argv[1]\nor exit 3\n" + "".join(
        f"printf '%s\\0' \"${name}\"\n" for name in names
    ) + "if set -q BPT_GONE; printf 'still set'; end\n"
    proc = subprocess.run(
        [path, "--no-config", "-c", driver, str(script)],
        env={**base_env(home, path, "C.UTF-8"), "BPT_GONE": "x"},
        cwd=home, capture_output=True, timeout=60,
    )
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert proc.stdout.split(b"\0")[:-1] == [NASTY[n].encode() for n in names]
    assert not proc.stdout.split(b"\0")[-1]


@pytest.mark.parametrize("shell", list(SHELLS))
def test_status_is_zero_even_when_unsetting_absent_variables(shell, home):
    # `buildpolicy env | source; and cargo build` must not stop at an unset of
    # a variable that was never there (fish's `set -e` returns 4 for it).
    executable, package, render_shell = SHELLS[shell]
    path = require(executable, package)
    script = home / f"status-{shell}.txt"
    script.write_text(render_env({"BPT_A": "1"}, ["BPT_ZZ_ABSENT"], shell=render_shell))
    if shell == "fish":
        argv = [path, "--no-config", "-c", "cat $argv[1] | source", str(script)]
    else:
        argv = [path, *NO_RC[shell], "-c", 'eval "$(cat "$1")"', "driver", str(script)]
    proc = subprocess.run(argv, env=base_env(home, path, "C"), cwd=home,
                          capture_output=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (0, b"")


def test_missing_shell_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y zsh"):
        require("bpt-no-such-shell", "zsh")


def test_missing_shell_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install the 'fish' package"):
        require("bpt-no-such-shell", "fish")
