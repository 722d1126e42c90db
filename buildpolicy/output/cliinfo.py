"""The command line as data, read from the argparse parser: what completions and the man page
are generated from, so neither can drift from the options the commands really take.

An option's values are its ``choices``, else an action's ``completion_choices`` (set by a
command whose option checks its values itself), else files for a ``FILE`` metavar and
directories for ``DIR``.
"""

from __future__ import annotations

import argparse

from buildpolicy.record import frozen


@frozen
class Option:
    """One option (``-q``/``--quiet``) or positional argument."""

    flags: tuple[str, ...]  # empty for a positional
    name: str  # the metavar or dest, for people
    help: str
    takes_value: bool
    repeatable: bool = False
    choices: tuple[str, ...] = ()
    kind: str = ""  # "file", "dir" or "" (anything)
    optional: bool = True  # a positional's nargs allows none
    many: bool = False  # a positional taking several words


@frozen
class Command:
    """A subcommand, or the program itself (``name`` "")."""

    name: str
    help: str
    usage: str
    options: tuple[Option, ...]
    positionals: tuple[Option, ...]
    subcommands: tuple[Command, ...] = ()


def _clean(text: str | None) -> str:
    if not text or text == argparse.SUPPRESS:
        return ""
    return " ".join(text.split()).replace("%%", "%")


def _option(action: argparse.Action) -> Option:
    takes_value = action.nargs != 0
    metavar = action.metavar if isinstance(action.metavar, str) else None
    name = metavar or (action.dest.upper() if action.option_strings else action.dest)
    choices = tuple(str(c) for c in (action.choices or getattr(action, "completion_choices", ()) or ()))
    kind = "file" if name in ("FILE", "PATH") or name.endswith("_FILE") else "dir" if name == "DIR" else ""
    return Option(
        flags=tuple(action.option_strings),
        name=name,
        help=_clean(action.help),
        takes_value=takes_value,
        repeatable=isinstance(action, argparse._AppendAction),
        choices=choices,
        kind=kind,
        optional=action.nargs in ("?", "*") or bool(action.option_strings),
        many=action.nargs in ("*", "+"),
    )


def _usage(parser: argparse.ArgumentParser) -> str:
    return " ".join(parser.format_usage().removeprefix("usage:").split())


def describe(parser: argparse.ArgumentParser, name: str = "", help: str = "") -> Command:
    """``parser`` (the program's, or a subcommand's) as a ``Command``."""
    options, positionals, subcommands = [], [], []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: _clean(choice.help) for choice in action._choices_actions}
            subcommands += [describe(sub, command, helps.get(command, "")) for command, sub in action.choices.items()]
        elif action.option_strings:
            options.append(_option(action))
        else:
            positionals.append(_option(action))
    return Command(name, help or _clean(parser.description), _usage(parser), tuple(options), tuple(positionals),
                   tuple(subcommands))
