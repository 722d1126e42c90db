"""Render a computed environment as text for a shell or a file format (DESIGN §7).

``buildpolicy env`` prints the result of :func:`render_env` on stdout so that
``eval "$(buildpolicy env)"`` (or ``buildpolicy env --shell fish | source``, ...)
applies it.  The contract is byte-exactness: after evaluation every variable
holds exactly the value we computed - quotes, newlines (including trailing
ones), ``$(...)``, backticks, backslashes, ``!``, ``%`` and any unicode - and
every variable to unset is gone.

Output shape, for every format:

* One entry per variable, sorted by name.  In the ``sh`` format the sets and
  the unsets form ONE merged list sorted by name (a name is either set or
  unset, never both, so the order cannot change the result, and a reader finds
  a variable at one predictable place).
* Text that is not empty ends with a newline; an empty environment renders as
  the empty string - except ``json``, which always prints a complete document.

Formats:

``sh``
    Depends on the shell.  ``bash``, ``zsh``, ``posix``:
    ``export NAME='value'`` / ``unset NAME``.  ``fish``: ``set -gx NAME 'value';``
    / ``set -e NAME; or true;``, a line break in a value written ``'\\n'`` (so
    ``| source`` and ``eval (...)`` both work).  ``powershell``: ``$Env:NAME = 'value'`` /
    ``Remove-Item Env:NAME -ErrorAction SilentlyContinue``.
``json``
    ``{"set": {NAME: value}, "unset": [NAME, ...]}``, keys sorted.
``dotenv``
    ``NAME='value'`` for a plain value: one without ``'``, ``${``, a line
    break, two backslashes in a row or a trailing backslash.  Every other
    value is written as python-dotenv reads it: ``NAME="..."`` with
    ``\\\\``, ``\\"``, ``\\n`` and ``\\r`` escapes, and each ``${`` written
    ``${:-$}{`` (python-dotenv expands ``${...}`` in any value and has no
    escape for ``$``; ``${:-$}`` is the default of a variable with an empty
    name, which no environment holds: a literal ``$``).
``github``
    The ``$GITHUB_ENV`` file format: ``NAME=value`` or, for values with a
    newline, ``NAME<<DELIMITER`` / value / ``DELIMITER``.

Which loaders read a ``dotenv`` file back exactly: python-dotenv
(``dotenv_values``, ``load_dotenv``; with its default interpolation) every
value; direnv's ``dotenv`` and a POSIX shell's ``set -a; . ./file`` the plain
values (docker compose documents single-quoted values as literal too).
On Windows runners GitHub reads CRLF as a line end, so there a value whose CR
comes right before a newline loses that CR.

Bytes that are not UTF-8 (an inherited value decoded with ``surrogateescape``)
reach the shell formats as they are, which reproduces them exactly.  ``json``
writes each as a ``\\udcXX`` escape, so the document is valid UTF-8 and a reader
that encodes with ``surrogateescape`` (Python's own convention for such
bytes) gets them back.  ``dotenv`` and ``github`` files have no way to write
them: rendering refuses, naming the variable.

``dotenv`` and ``github`` cannot express "unset this variable": unsets are
left out of them (see :data:`FORMATS_WITHOUT_UNSET`; the CLI warns on stderr).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping

from buildpolicy.errors import BuildpolicyError
from buildpolicy.model import check_name, check_value

SHELLS = ("bash", "zsh", "fish", "posix", "powershell")
FORMATS = ("sh", "json", "dotenv", "github")

# Formats in which an unset cannot be written down; render_env leaves the unsets
# out of them and the caller is expected to warn about each one it dropped.
FORMATS_WITHOUT_UNSET = ("dotenv", "github")

# File formats that cannot hold bytes that are not UTF-8: a value holding some
# (as lone surrogates, Python's surrogateescape) is refused.
FORMATS_WITHOUT_BYTES = ("dotenv", "github")


@functools.cache
def _surrogate():
    """Lone surrogates (bytes that were not UTF-8); compiled on first use: the pattern is
    slow to compile and only the json and bytes-less formats need it."""
    return re.compile("[\ud800-\udfff]")


# PowerShell treats the typographic single quotes exactly like the ASCII one
# inside a '...' string (its tokenizer's IsSingleQuote), so every one of them
# must be doubled too, or a value containing U+2019 would end the string early.
_PWSH_SINGLE_QUOTES = ("'", "\u2018", "\u2019", "\u201a", "\u201b")


def render_env(
    set_env: Mapping[str, str],
    unset: Iterable[str],
    *,
    shell: str = "bash",
    fmt: str = "sh",
) -> str:
    """Return the text that applies *set_env* and *unset* in *shell* / *fmt*.

    *set_env* maps names to their new values; *unset* names variables to remove
    (duplicates are ignored).  *shell* is one of :data:`SHELLS` and only matters
    when *fmt* is ``"sh"``; *fmt* is one of :data:`FORMATS`.  See the module
    docstring for each format's exact shape.

    Raises :class:`BuildpolicyError` listing every problem at once: an unknown
    shell or format, an invalid name, a value with a NUL character, or a name
    that is both set and unset.
    """
    problems: list[str] = []
    if shell not in SHELLS:
        problems.append(f"unknown shell {shell!r}; expected one of: {', '.join(SHELLS)}")
    if fmt not in FORMATS:
        problems.append(f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")

    set_env = dict(set_env)
    if isinstance(unset, str):
        # A lone string is iterable too, and would unset one variable per letter.
        problems.append(f"unset must be a collection of names, not the string {unset!r}")
        unset = ()
    unset_names = sorted(set(unset), key=str)
    for name, value in sorted(set_env.items(), key=lambda item: str(item[0])):
        _collect(problems, check_name, name)
        _collect(problems, check_value, str(name), value)
    for name in unset_names:
        _collect(problems, check_name, name)
    both = sorted(set(set_env).intersection(unset_names), key=str)
    if both:
        problems.append(f"variables both set and unset: {', '.join(map(str, both))}")
    if problems:
        raise BuildpolicyError(problems)

    if fmt in FORMATS_WITHOUT_BYTES:
        undecodable = [name for name, value in sorted(set_env.items()) if _surrogate().search(value)]
        if undecodable:
            raise BuildpolicyError(
                f"the {fmt} format cannot carry bytes that are not UTF-8, and {', '.join(undecodable)} "
                f"hold{'s' if len(undecodable) == 1 else ''} some (inherited from the environment?): "
                "use --format sh (exact bytes) or json (\\udcXX escapes)"
            )
    if fmt == "json":
        # Always a whole document, even when empty: a JSON consumer cannot parse "".
        document = {"set": set_env, "unset": unset_names}
        import json  # only for --format json: a prompt prints shell syntax

        text = json.dumps(document, sort_keys=True, ensure_ascii=False)
        # Undecodable bytes (surrogateescape) as \udcXX escapes: valid UTF-8 out.
        return _surrogate().sub(lambda match: f"\\u{ord(match.group()):04x}", text) + "\n"

    # A name is in exactly one of the two, so sorting the union sorts everything.
    entries = sorted(
        [*set_env.items(), *((name, None) for name in unset_names)],
        key=lambda entry: entry[0],
    )
    if fmt == "sh":
        line = _SH_LINE[shell]
    elif fmt == "dotenv":
        line = _dotenv_line
    else:
        line = _github_line
    lines = [text for name, value in entries if (text := line(name, value)) is not None]
    return "".join(text + "\n" for text in lines)


def _collect(problems: list[str], check, *args) -> None:
    """Run one check, appending its messages to *problems* instead of raising."""
    try:
        check(*args)
    except BuildpolicyError as error:
        problems.extend(str(message) for message in error.messages)


# -- sh: one line per variable; value None means "unset" ---------------------


def _posix_quote(value: str) -> str:
    """Quote for bash/zsh/dash: inside '...' every byte is literal except ',
    which cannot be escaped there, so close the quote, add \\', reopen.

    Single quotes also stop bash/zsh history expansion of ``!`` and ``$``/
    backtick substitution, and keep trailing newlines (no command substitution
    of our own strips them).
    """
    return "'" + value.replace("'", "'\\''") + "'"


def _posix_line(name: str, value: str | None) -> str:
    if value is None:
        return f"unset {name}"
    return f"export {name}={_posix_quote(value)}"


def fish_quote(value: str) -> str:
    """Quote for fish so that both ``... | source`` and ``eval (...)`` read it back.

    Inside '...' only \\\\ and \\' are escapes (a backslash before anything else is
    literal), so doubling every backslash and escaping every quote is exact -
    including a value that ends in a backslash. A line break cannot stay inside
    the quotes: ``eval (cmd)`` splits the output into lines and joins them with
    spaces, so each one closes the quote and is written as fish's unquoted
    ``\\n``, which the same word continues (``'two'\\n'lines'``), as direnv does.
    """
    quoted = value.replace("\\", "\\\\").replace("'", "\\'")
    return "'" + quoted.replace("\n", "'\\n'") + "'"


def _fish_line(name: str, value: str | None) -> str:
    # Every statement ends with `;`: `eval (buildpolicy env --shell fish)` joins the
    # lines into one, where a bare line end would make the next `set` arguments of
    # this one (direnv ends its fish statements the same way).
    if value is None:
        # Erases the innermost definition: the global one imported from the
        # environment (or made by an earlier `set -gx`).  `set -e` of an absent
        # variable returns 4; `or true` keeps that from becoming the status of
        # `... | source` (and from skipping `; and cargo build`), as `unset` of
        # an absent variable succeeds in POSIX shells.
        return f"set -e {name}; or true;"
    # A quoted word is one list element; fish "path variables" (names ending in
    # PATH) split on ':' but export joined with ':' again, which is the same bytes.
    return f"set -gx {name} {fish_quote(value)};"


def _pwsh_quote(value: str) -> str:
    """Quote for PowerShell: inside '...' nothing expands and a quote character
    is written by doubling it (for all five quote characters PowerShell
    accepts, see _PWSH_SINGLE_QUOTES); newlines may appear literally."""
    for quote in _PWSH_SINGLE_QUOTES:
        value = value.replace(quote, quote + quote)
    return "'" + value + "'"


def _pwsh_line(name: str, value: str | None) -> str:
    if value is None:
        # Removing an absent variable is not an error worth stopping for.
        return f"Remove-Item Env:{name} -ErrorAction SilentlyContinue"
    return f"$Env:{name} = {_pwsh_quote(value)}"


_SH_LINE = {
    "bash": _posix_line,
    "zsh": _posix_line,
    "posix": _posix_line,
    "fish": _fish_line,
    "powershell": _pwsh_line,
}


# -- files --------------------------------------------------------------------

# Inside single quotes python-dotenv decodes only \\ and \', so these plain
# values read back exactly there, in a shell and in direnv (which read single
# quotes literally); a line break is not plain because direnv reads one line.
_NOT_PLAIN = re.compile(r"['\n\r]|\\\\|\$\{|\\$")
# Everything python-dotenv decodes in double quotes that a value may hold. A raw
# CR would be turned into a line break by a reader in text mode, so it is escaped.
_DOTENV_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})


def _dotenv_line(name: str, value: str | None) -> str | None:
    if value is None:
        return None  # dotenv has no way to say "unset"; the CLI warns.
    if not _NOT_PLAIN.search(value):
        return f"{name}='{value}'"
    # python-dotenv expands ${...} after decoding the escapes, in every value, and has
    # no escape for $: ${:-$} (an empty-named variable's default) is a literal $.
    quoted = value.translate(_DOTENV_ESCAPES).replace("${", "${:-$}{")
    return f'{name}="{quoted}"'


def _github_line(name: str, value: str | None) -> str | None:
    if value is None:
        return None  # $GITHUB_ENV has no way to say "unset"; the CLI warns.
    if "\n" not in value:
        # The runner splits the line at the first '=', so '=' and '<<' inside
        # the value are harmless (a name contains neither).
        return f"{name}={value}"
    # Heredoc form.  The runner takes everything between the header line and
    # the line equal to the delimiter, minus the newline before that line, so
    # "value\n" + delimiter reproduces trailing newlines too.  A random
    # delimiter (like @actions/core's) that is checked against the value can
    # neither end the value early nor be forged by it.
    delimiter = _github_delimiter()
    while delimiter in value:
        delimiter = _github_delimiter()
    return f"{name}<<{delimiter}\n{value}\n{delimiter}"


def _github_delimiter() -> str:
    import secrets  # only for multi-line github values

    return "ghadelimiter_" + secrets.token_hex(16)
