"""Issue 13 item 6: `explain` for people. The first screen is the profile, the exported
variables each with a one-line reason and one line per decision; knobs only when not at
their defaults (`--all`), the replay section behind `-v`, short paths, lines fitted to
the terminal, colour on a terminal (`--color`, `NO_COLOR`). Real `python -m buildpolicy`
runs; a pseudo-terminal where a terminal is the point."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LOW_MEMORY_LAPTOP, write

ESC = "\x1b["


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    write(root / "Cargo.toml", '[package]\nname = "demo"\nversion = "0.1.0"\n\n[profile.selfdev]\ninherits = "dev"\n')
    write(root / "buildpolicy.toml", 'policies = ["policies"]\n')
    write(root / "policies" / "p.toml",
          '[[rule]]\nid = "offline"\ndescription = "builds here never touch the network"\n'
          'env = { CARGO_NET_OFFLINE = "true" }\n\n'
          '[[rule]]\nid = "ci-only"\nwhen = "ci"\nenv = { CARGO_TERM_PROGRESS_WHEN = "never" }\n')
    return root


@pytest.fixture
def facts(tmp_path) -> Path:
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(LOW_MEMORY_LAPTOP))
    return path


def sections(text: str) -> dict[str, list[str]]:
    """The report's sections by title, each with its lines."""
    out = {}
    for block in text.split("\n\n"):
        lines = block.splitlines()
        out[lines[0]] = lines[1:]
    return out


def test_the_first_screen_is_profile_variables_and_decisions(cli, project, facts):
    proc = cli("explain", "--facts", str(facts), "--", "cargo", "build", "--profile", "selfdev", cwd=project, check=True)
    text = proc.stdout
    assert text.startswith("buildpolicy: profile selfdev · cargo build --profile selfdev\n")  # the header, on stdout
    assert "profile" not in proc.stderr
    titles = [block.splitlines()[0] for block in text.split("\n\n")]
    assert titles[1:3] == ["Environment", "Decisions"]
    assert titles.index("Knobs (not at their defaults)") < titles.index("Rules") < titles.index("Files read")
    found = sections(text)
    exported = json.loads(cli("explain", "--format", "json", "--facts", str(facts), "--", "cargo", "build", "--profile",
                              "selfdev", cwd=project, check=True).stdout)
    # Each exported variable: one entry, with its one-line reason beside it (or on the next
    # line, indented, when the name and value are too long to leave room).
    environment = found["Environment"]
    entries = [index for index, line in enumerate(environment) if not line.startswith("   ")]
    assert sorted(environment[index].split("=")[0].strip() for index in entries) == sorted(exported["env"])
    for position, index in enumerate(entries):
        end = entries[position + 1] if position + 1 < len(entries) else len(environment)
        reason = re.split(r" {2,}", environment[index].strip())[1:] if end == index + 1 else environment[index + 1:end]
        assert len(reason) == 1 and reason[0].strip(), environment[index:end]
    offline = next(line for line in environment if "CARGO_NET_OFFLINE" in line)
    assert "rule offline" in offline and "builds here never touch the network" in offline
    jobs = next(line for line in environment if line.startswith("  CARGO_BUILD_JOBS="))
    assert "jobs: " in jobs
    # One line per decision, its status and reason.
    decisions = found["Decisions"]
    assert len(decisions) == len(exported["decisions"])
    for name, decision in exported["decisions"].items():
        assert any(line.split()[:2] == [name, decision["status"].split()[0]] for line in decisions), name
    # Rules that did not match are counted, not listed; the replay section needs -v.
    assert found["Rules"][-1] == "  1 more did not match (-v lists them)"
    assert "ci-only" not in text and "Warm replay" not in text
    verbose = cli("explain", "-v", "--facts", str(facts), cwd=project, check=True).stdout
    assert "ci-only" in verbose and "\nWarm replay\n" in verbose
    assert any(line.startswith("  no ") and "ci-only" in line for line in verbose.splitlines())


def test_knobs_only_when_not_at_their_defaults(cli, project, facts):
    plain = sections(cli("explain", "--facts", str(facts), cwd=project, check=True).stdout)
    assert plain["Knobs (not at their defaults)"][0].startswith("  all ") and "--all" in plain["Knobs (not at their defaults)"][0]
    changed = sections(cli("explain", "--facts", str(facts), "--set", "jobs=3", cwd=project,
                           env={"BUILDPOLICY_LINKER": "system"}, check=True).stdout)
    knobs = changed["Knobs (not at their defaults)"]
    assert knobs[0].startswith("  jobs = 3") and "cli" in knobs[0]
    assert knobs[1].startswith("  linker = system") and "$BUILDPOLICY_LINKER" in knobs[1]
    assert re.fullmatch(r"  \d+ more at their defaults \(--all lists them\)", knobs[2])
    every = sections(cli("explain", "--all", "--facts", str(facts), cwd=project, check=True).stdout)["Knobs"]
    knob_names = json.loads(cli("explain", "--format", "json", "--facts", str(facts), cwd=project, check=True).stdout)["knobs"]
    assert [line.split()[0] for line in every] == sorted(knob_names)
    assert all(" default " in line for line in every)


def test_paths_are_short(cli, project, facts, home):
    write(home / "config" / "buildpolicy" / "mine.toml", "[knobs]\nmib_per_job = 2048\n")
    text = cli("explain", "-v", "--facts", str(facts), cwd=project, env={"HOME": str(home)}, check=True).stdout
    assert str(project) not in text and str(home) not in text
    found = sections(text)
    assert "  project  policies/p.toml" in found["Files read"]
    assert "  user     ~/config/buildpolicy/mine.toml" in found["Files read"]
    assert any(line.startswith("  builtin  <builtin>/") for line in found["Files read"])
    assert any("~/config/buildpolicy/mine.toml:2" in line for line in found["Knobs (not at their defaults)"])
    assert any("policies/p.toml:1" in line for line in found["Rules"])


@pytest.mark.parametrize("columns", [50, 80, 120])
def test_lines_fit_the_terminal_width(cli, project, facts, columns):
    for extra in ((), ("-v", "--all")):
        text = cli("explain", *extra, "--facts", str(facts), "--", "cargo", "build", "--profile", "selfdev",
                   cwd=project, env={"COLUMNS": str(columns), "RUSTFLAGS": "-g"}, check=True).stdout
        too_wide = [line for line in text.splitlines() if len(line) > columns]
        assert too_wide == [], too_wide
        assert "would shadow" in text  # the warning is there, wrapped


def test_a_pipe_gets_whole_lines(cli, project, facts):
    text = cli("explain", "-v", "--facts", str(facts), cwd=project, env={"RUSTFLAGS": "-g"}, check=True).stdout
    assert "RUSTFLAGS is set by the caller and would shadow CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS;" in text
    assert ESC not in text


def _on_a_terminal(argv: list[str], env: dict, cwd: Path) -> str:
    """Run ``argv`` with stdout on a pseudo-terminal (80 columns); return what it printed."""
    main, secondary = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(argv, stdout=secondary, stderr=subprocess.PIPE, env=env, cwd=cwd)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_colour_on_a_terminal_unless_no_color_and_by_flag(cli, project, facts, base_env):
    argv = [sys.executable, "-m", "buildpolicy", "explain", "--facts", str(facts)]
    env = {k: v for k, v in base_env.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm"
    shown = _on_a_terminal(argv, env, project)
    assert f"{ESC}1mbuildpolicy: profile dev{ESC}0m" in shown and f"{ESC}36mCARGO_NET_OFFLINE=true{ESC}0m" in shown
    # The terminal's own width (80 columns), without COLUMNS.
    assert max(len(re.sub(r"\x1b\[[0-9;]*m", "", line)) for line in shown.splitlines()) <= 80
    assert ESC not in _on_a_terminal(argv, {**env, "NO_COLOR": "1"}, project)
    assert ESC not in _on_a_terminal([*argv, "--color", "never"], env, project)
    assert ESC in _on_a_terminal(argv, {**env, "NO_COLOR": ""}, project)  # empty: not set (no-color.org)
    forced = cli("explain", "--color", "always", "--facts", str(facts), cwd=project, env={"NO_COLOR": "1"}, check=True)
    assert f"{ESC}1mEnvironment{ESC}0m" in forced.stdout
    assert ESC not in cli("explain", "--facts", str(facts), cwd=project, check=True).stdout  # a pipe


def test_one_name_shows_everything_about_it(cli, project, facts):
    text = cli("explain", "jobs", "--facts", str(facts), cwd=project, env={"COLUMNS": "60"}, check=True).stdout
    found = sections(text)
    assert found["Decisions"][0].split()[0] == "jobs" and "[plugin jobs]" in text
    assert found["Knobs"][0].startswith("  jobs = unset") and "default" in found["Knobs"][0]
    rule = sections(cli("explain", "ci-only", "--facts", str(facts), cwd=project, check=True).stdout)["Rules"]
    assert rule[0].split()[:2] == ["no", "ci-only"] and "ci=false" in rule[0]


def test_verbose_gives_whole_reasons_wrapped_where_the_first_screen_cuts_them(cli, project, facts):
    reason = json.loads(cli("explain", "--format", "json", "--facts", str(facts), cwd=project,
                            check=True).stdout)["decisions"]["jobs"]["reason"]
    short = cli("explain", "--facts", str(facts), cwd=project, env={"COLUMNS": "60"}, check=True).stdout
    jobs = [line for line in sections(short)["Environment"] if line.startswith("  CARGO_BUILD_JOBS=")]
    assert len(jobs) == 1 and jobs[0].endswith("…") and len(jobs[0]) <= 60
    verbose = cli("explain", "-v", "--facts", str(facts), cwd=project, env={"COLUMNS": "60"}, check=True).stdout
    environment = sections(verbose)["Environment"]
    start = next(i for i, line in enumerate(environment) if line.startswith("  CARGO_BUILD_JOBS="))
    end = next((i for i in range(start + 1, len(environment)) if not environment[i].startswith("   ")), len(environment))
    joined = " ".join(" ".join(environment[start:end]).split()[1:])
    assert joined == f"jobs: {' '.join(reason.split())}"
