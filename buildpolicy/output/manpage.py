"""``buildpolicy.1``: the man page, written out from the parser (``cliinfo``) like the completions.

The commands, their usage lines and options come from the parser; the few sections a
parser cannot know (exit status, environment, files) are the design's contract, kept
here beside it.
"""

from __future__ import annotations

from buildpolicy.errors import EXIT_IO_ERROR, EXIT_PROBLEMS, EXIT_REMOTE_UNAVAILABLE, EXIT_USAGE
from buildpolicy.output.cliinfo import Command, Option

EXIT_STATUS = (
    ("0", "success"),
    (str(EXIT_PROBLEMS), "check, test or doctor found problems"),
    (str(EXIT_USAGE), "a usage, policy or knob error (nothing is printed on standard output)"),
    (str(EXIT_IO_ERROR), "the environment could not be written (standard output closed or full)"),
    (str(EXIT_REMOTE_UNAVAILABLE), "a build host is required (remote_fallback = error) but none is up"),
    ("", "exec otherwise exits with the command's own status (128+N when signal N ended it)"),
)

ENVIRONMENT = (
    ("BUILDPOLICY_<KNOB>", "the value of a knob (environment layer), e.g. BUILDPOLICY_JOBS=4"),
    ("BUILDPOLICY_SITE_DIR", "the site layer's directory (default /etc/buildpolicy)"),
    ("BUILDPOLICY_REPLAY", "off turns the warm replay of env off"),
    ("BUILDPOLICY_ENV_STATE", "the record of what the last env changed in this shell; written by env, never by hand"),
    ("XDG_CONFIG_HOME, XDG_STATE_HOME, XDG_CACHE_HOME", "where the user layer, state (trust records, logs) and caches live"),
    ("NO_COLOR", "when set and not empty, explain does not colour (unless --color always)"),
    ("COLUMNS", "the width explain fits its lines to"),
)

FILES = (
    ("buildpolicy.toml", "the project's profile file, found walking up from the working directory"),
    ("policies/*.toml", "the project's policy files; policies/tests/*.toml its policy test cases"),
    ("$XDG_CONFIG_HOME/buildpolicy/*.toml", "the user layer"),
    ("/etc/buildpolicy/*.toml", "the site layer"),
    ("$XDG_STATE_HOME/buildpolicy/trust/", "the records of buildpolicy allow"),
)


def _escape(text: str) -> str:
    """``text`` safe in roff: backslashes, hyphens of options, a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def _usage(usage: str) -> str:
    """A usage line, filled to the page's width but never broken inside a ``[...]`` group."""
    out, depth = [], 0
    for char in _escape(usage):
        depth += (char == "[") - (char == "]")
        out.append("\\~" if char == " " and depth > 0 else char)
    return "".join(out)


def _option_head(option: Option) -> str:
    flags = ", ".join(f"\\fB{_escape(flag)}\\fR" for flag in option.flags)
    if not option.flags:
        flags = f"\\fI{_escape(option.name)}\\fR" + ("..." if option.many else "")
    elif option.takes_value:
        value = "{" + ",".join(option.choices) + "}" if option.choices else option.name
        flags += f" \\fI{_escape(value)}\\fR"
    return flags


def _option_lines(option: Option) -> list[str]:
    text = option.help or ""
    if option.choices and not option.flags:
        text = (text + " " if text else "") + f"One of: {', '.join(option.choices)}."
    return [".TP", _option_head(option), _escape(text)]


def _table(rows) -> list[str]:
    lines = []
    for key, text in rows:
        lines += [".TP", f"\\fB{_escape(key)}\\fR" if key else "\\(em", _escape(text)]
    return lines


def man_page(program: Command, version: str, date: str) -> str:
    """The roff source of buildpolicy(1)."""
    lines = [
        f'.TH BUILDPOLICY 1 "{date}" "buildpolicy {_escape(version)}" "User Commands"',
        ".SH NAME",
        f"buildpolicy \\- {_escape(program.help.rstrip('.').lower() or 'build policy for cargo')}",
        ".SH SYNOPSIS",
        f".B buildpolicy\n{_escape(program.usage.removeprefix('buildpolicy').strip())}",
        ".SH DESCRIPTION",
        _escape("buildpolicy evaluates declarative TOML rules over a probed model of the machine, lets plugins "
                "decide what needs code, and prints an environment that is safe to eval for cargo builds: "
                'eval "$(buildpolicy env)" at a prompt, buildpolicy exec -- cargo build for one build, '
                "buildpolicy explain for why every value is what it is."),
        ".SH OPTIONS",
    ]
    for option in program.options:
        lines += _option_lines(option)
    lines.append(".SH COMMANDS")
    for command in program.subcommands:
        lines += [".SS " + _escape(command.name), _escape(command.help) + ".", ".PP", _usage(command.usage)]
        options = [option for option in command.options if "--help" not in option.flags]  # said once, above
        if options or command.positionals:
            lines.append(".RS")
            for option in (*command.positionals, *options):
                lines += _option_lines(option)
            lines.append(".RE")
    lines += [".SH EXIT STATUS", *_table(EXIT_STATUS)]
    lines += [".SH ENVIRONMENT", *_table(ENVIRONMENT)]
    lines += [".SH FILES", *_table(FILES)]
    lines += [".SH SEE ALSO", "\\fBcargo\\fR(1), \\fBdirenv\\fR(1)"]
    return "\n".join(lines) + "\n"
