"""The position scanner behind ``buildpolicy.policy.tomlpos``: where every key and value
of a TOML text starts, by key path.

It only runs on text tomllib has accepted, so it can afford to be simple. A large policy
set is almost all one-line statements: ``[[rule]]``, ``name = "text"``, ``env = { A = "1",
B = "2" }``, ``rustflags = ["-Cx", "-Cy"]``. Each of those is read with one regular
expression (``_STATEMENTS_PATTERN``) and recorded exactly as the full grammar below records it;
anything else (dotted keys, multi-line strings or arrays, comments inside a value, dates,
floats…) takes the full grammar, statement by statement: the shortcuts only ever start
at a statement boundary the scan has reached, never inside a multi-line string.
``Scanner(text, shortcuts=False)`` is the full grammar alone, which the tests compare
the shortcuts with (``shortcuts=True``); by default a text takes the shortcuts from
``SHORTCUTS_FROM_CHARS`` on.
"""

from __future__ import annotations

import bisect
import functools
import re

Pos = tuple[int, int]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# One match instead of a loop over characters: a policy set of 10,000 rules has 80,000 strings.
# (Written as runs between escapes: an alternation per character is three times slower.)
_BASIC_STRING = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')
_WS = re.compile(r"[ \t]*")
_WS_COMMENTS_NEWLINES = re.compile(r"(?:[ \t\r\n]+|#[^\n]*(?:\n|\Z))*")
_SCALAR = re.compile(r"[^\s,\]}#]+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME_AFTER_SPACE = re.compile(r" \d{2}:")
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)", re.S)
_SIMPLE_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\", "e": "\x1b"}

# The shortcuts. A key: bare, or a one-line basic string. A simple value: a one-line basic
# string (not the `""` that opens `"""`), true, false or a decimal integer. Each is one
# unambiguous token, so a simple value found again inside a matched inline table or array
# (``_ENTRY``, ``_SIMPLE_VALUE``) is the very token the statement's match saw.
_KEY_PATTERN = r'[A-Za-z0-9_-]+|"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
_VALUE_PATTERN = r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"(?!")|true|false|-?[0-9]+'
_ENTRY_PATTERN = rf"(?:{_KEY_PATTERN})[ \t]*=[ \t]*(?:{_VALUE_PATTERN})"
# One statement, after the blank lines and comments before it.
_STATEMENTS_PATTERN = (
    r"(?:[ \t\r\n]+|#[^\n]*(?:\n|\Z))*"
    r"(?:(?P<array_open>\[\[)[ \t]*(?P<array_table>[A-Za-z0-9_-]+)[ \t]*\]\]"
    r"|(?P<table_open>\[)[ \t]*(?P<table>[A-Za-z0-9_-]+)[ \t]*\]"
    rf"|(?P<key>{_KEY_PATTERN})[ \t]*=[ \t]*(?:"
    rf"(?P<value>{_VALUE_PATTERN})"
    rf"|(?P<inline>\{{[ \t]*(?:{_ENTRY_PATTERN}(?:[ \t]*,[ \t]*{_ENTRY_PATTERN})*[ \t]*)?\}})"
    rf"|(?P<array>\[[ \t]*(?:(?:{_VALUE_PATTERN})(?:[ \t]*,[ \t]*(?:{_VALUE_PATTERN}))*[ \t]*,?[ \t]*)?\])"
    r"))[ \t]*(?=[#\r\n]|\Z)"
)
# An entry `name = "text"` (or a bool or an integer) of a statement the shortcuts did not
# take, e.g. an inline table with a dotted key.
_SIMPLE_KEYVAL_PATTERN = (rf"(?P<key>{_KEY_PATTERN})[ \t]*=[ \t]*(?P<value>{_VALUE_PATTERN})"
                          r"(?=[ \t]*(?:[\r\n#,}]|\Z))")
# The shortcuts pay for compiling their patterns (milliseconds: more than the full grammar
# spends on a file of a few rules, such as the one policy file a prompt after an edit reads)
# only from this size of text on; they are compiled on first use.
SHORTCUTS_FROM_CHARS = 8192


@functools.cache
def _shortcuts_compiled() -> tuple:
    """``(statements, entry, simple value, simple key = value)``, compiled once."""
    return (
        re.compile(_STATEMENTS_PATTERN),
        re.compile(rf"(?P<key>{_KEY_PATTERN})[ \t]*=[ \t]*(?P<value>{_VALUE_PATTERN})"),
        re.compile(_VALUE_PATTERN),
        re.compile(_SIMPLE_KEYVAL_PATTERN),
    )


class ScanError(Exception):
    """Text the scanner does not understand (it only sees text tomllib accepted)."""


def _unescape(raw: str) -> str:
    def sub(match: re.Match) -> str:
        code = match.group(1)
        if code[0] in "uU" and len(code) > 1:
            return chr(int(code[1:], 16))
        return _SIMPLE_ESCAPES.get(code, code)

    return _ESCAPE.sub(sub, raw) if "\\" in raw else raw


def _key_name(token: str) -> str:
    """The key a bare or basic-string key token names."""
    return _unescape(token[1:-1]) if token[0] == '"' else token


class Scanner:
    """Walk TOML text, recording the index of every key and value by key path.

    ``shortcuts=False`` reads every statement with the full grammar (for tests).
    """

    def __init__(self, text: str, shortcuts: bool | None = None):
        self.s = text
        self.i = 0
        self.shortcuts = len(text) >= SHORTCUTS_FROM_CHARS if shortcuts is None else shortcuts
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.keys: dict[tuple, int] = {}
        self.values: dict[tuple, int] = {}
        self.implicit: set[tuple] = set()  # paths recorded from a dotted prefix only
        self.aot: dict[tuple, int] = {}  # array-of-tables path -> elements so far

    def coords(self, index: int) -> Pos:
        """(line, col), both 1-based, of index ``index`` of the text."""
        line = bisect.bisect_right(self.line_starts, index)
        return line, index - self.line_starts[line - 1] + 1

    # -- recording

    def _define(self, path: tuple, key_at: int, value_at: int) -> None:
        """Record an explicit definition (first one wins over later ones)."""
        if path not in self.keys or path in self.implicit:
            self.keys[path] = key_at
            self.values[path] = value_at
            self.implicit.discard(path)

    def _implicit(self, path: tuple, key_at: int) -> None:
        """Record a table created implicitly by a dotted key or header prefix."""
        if path not in self.keys:
            self.keys[path] = key_at
            self.values[path] = key_at
            self.implicit.add(path)

    # -- lexing helpers

    def skip_ws(self) -> None:
        self.i = _WS.match(self.s, self.i).end()

    def skip_ws_comments_newlines(self) -> None:
        self.i = _WS_COMMENTS_NEWLINES.match(self.s, self.i).end()

    def expect(self, text: str) -> None:
        if not self.s.startswith(text, self.i):
            raise ScanError(f"expected {text!r} at {self.i}")
        self.i += len(text)

    # -- grammar

    def document(self) -> None:
        """Scan the whole text."""
        table: tuple = ()
        s = self.s
        n = len(s)
        skip = _WS_COMMENTS_NEWLINES.match
        while True:
            self.i = skip(s, self.i).end()
            if self.i >= n:
                return
            if self.shortcuts:
                table = self._shortcuts(table)
                if self.i >= n:
                    return
            if s[self.i] == "[":
                table = self.header()
            else:
                self.keyval(table)
            self.skip_ws()
            if self.i < n and s[self.i] not in "#\r\n":
                raise ScanError(f"unexpected {s[self.i]!r} at {self.i}")

    def _shortcuts(self, table: tuple) -> tuple:
        """Record the one-line statements from ``self.i`` on, as the full grammar would,
        up to the first statement that needs the full grammar (or the end of the text).
        Returns the table the next statement belongs to."""
        s = self.s
        statements, entry_re, simple_value_re, _ = _shortcuts_compiled()
        for match in statements.finditer(s, self.i):
            if match.start() != self.i:
                break  # not a statement of ours right here: finditer skipped over it
            self.i = match.end()
            kind = match.lastgroup
            if kind == "array_table":
                table = self._header_path([(match[kind], match.start(kind))], True, match.start("array_open"))
                continue
            if kind == "table":
                table = self._header_path([(match[kind], match.start(kind))], False, match.start("table_open"))
                continue
            path = (*table, _key_name(match["key"]))
            start = match.start(kind)
            self._define(path, match.start("key"), start)
            if kind == "value":
                continue
            end = match.end(kind) - 1
            if kind == "inline":
                for entry in entry_re.finditer(s, start + 1, end):
                    self._define((*path, _key_name(entry["key"])), entry.start(), entry.start("value"))
            else:
                for index, element in enumerate(simple_value_re.finditer(s, start + 1, end)):
                    self._define((*path, index), element.start(), element.start())
        self.i = _WS_COMMENTS_NEWLINES.match(s, self.i).end()
        return table

    def header(self) -> tuple:
        start = self.i
        is_array = self.s.startswith("[[", start)
        self.i += 2 if is_array else 1
        self.skip_ws()
        segments = self.key()
        self.skip_ws()
        self.expect("]]" if is_array else "]")
        return self._header_path(segments, is_array, start)

    def _header_path(self, segments: list[tuple[str, int]], is_array: bool, start: int) -> tuple:
        """Record the tables of a ``[a.b]`` or ``[[a.b]]`` header opening at ``start``; return its path."""
        path: tuple = ()
        last = len(segments) - 1
        for n, (name, at) in enumerate(segments):
            path += (name,)
            if n == last and is_array:
                count = self.aot.get(path, 0)
                self.aot[path] = count + 1
                self._define(path, at, start)
                path += (count,)
                self._define(path, start, start)
            elif n == last:
                self._define(path, at, start)
            elif path in self.aot:
                path += (self.aot[path] - 1,)
            else:
                self._implicit(path, at)
        return path

    def keyval(self, table: tuple) -> None:
        simple = _shortcuts_compiled()[3].match(self.s, self.i) if self.shortcuts else None
        if simple is not None:
            path = (*table, _key_name(simple.group("key")))
            value_at = simple.start("value")
            self._define(path, self.i, value_at)
            self.values.setdefault(path, value_at)
            self.i = simple.end()
            return
        segments = self.key()
        self.skip_ws()
        self.expect("=")
        self.skip_ws()
        path = table
        last = len(segments) - 1
        for n, (name, at) in enumerate(segments):
            path += (name,)
            if n < last:
                self._implicit(path, at)
            else:
                self._define(path, at, self.i)
        self.value(path)

    def key(self) -> list[tuple[str, int]]:
        """Parse a (possibly dotted) key; return its segments with their indexes."""
        s = self.s
        segments = []
        while True:
            self.skip_ws()
            at = self.i
            c = s[at] if at < len(s) else ""
            if c == '"':
                self.basic_string()
                segments.append((_unescape(s[at + 1 : self.i - 1]), at))
            elif c == "'":
                self.literal_string()
                segments.append((s[at + 1 : self.i - 1], at))
            else:
                match = _BARE_KEY.match(s, at)
                if not match:
                    raise ScanError(f"expected a key at {at}")
                self.i = match.end()
                segments.append((match.group(), at))
            self.skip_ws()
            if self.i < len(s) and s[self.i] == ".":
                self.i += 1
                continue
            return segments

    def value(self, path: tuple) -> None:
        s = self.s
        at = self.i
        self.values.setdefault(path, at)
        c = s[at]
        if c == '"':
            if s.startswith('"""', at):
                self.multiline_string('"""')
            else:
                self.basic_string()
        elif c == "'":
            if s.startswith("'''", at):
                self.multiline_string("'''")
            else:
                self.literal_string()
        elif c == "[":
            self.array(path)
        elif c == "{":
            self.inline_table(path)
        else:
            match = _SCALAR.match(s, at)
            if not match:
                raise ScanError(f"expected a value at {at}")
            end = match.end()
            # A local date-time may separate date and time with a space.
            if _DATE.fullmatch(match.group()) and _TIME_AFTER_SPACE.match(s, end):
                end = _SCALAR.match(s, end + 1).end()
            self.i = end

    def basic_string(self) -> None:
        match = _BASIC_STRING.match(self.s, self.i)
        if match is None:
            raise ScanError("newline in a string, or no closing quote")
        self.i = match.end()

    def literal_string(self) -> None:
        end = self.s.find("'", self.i + 1)
        if end < 0:
            raise ScanError("unterminated literal string")
        self.i = end + 1

    def multiline_string(self, delim: str) -> None:
        s = self.s
        quote = delim[0]
        i = self.i + 3
        while True:
            c = s[i]
            if c == "\\" and quote == '"':
                i += 2
            elif s.startswith(delim, i):
                # Up to two quotes right before the closing delimiter belong to the
                # content: the delimiter is the last three of the run.
                run = 3
                while run < 5 and i + run < len(s) and s[i + run] == quote:
                    run += 1
                self.i = i + run
                return
            else:
                i += 1

    def array(self, path: tuple) -> None:
        s = self.s
        self.i += 1
        index = 0
        while True:
            self.skip_ws_comments_newlines()
            if s[self.i] == "]":
                self.i += 1
                return
            element = path + (index,)
            self._define(element, self.i, self.i)
            self.value(element)
            index += 1
            self.skip_ws_comments_newlines()
            if s[self.i] == ",":
                self.i += 1
            elif s[self.i] == "]":
                self.i += 1
                return
            else:
                raise ScanError(f"expected ',' or ']' at {self.i}")

    def inline_table(self, path: tuple) -> None:
        s = self.s
        self.i += 1
        while True:
            self.skip_ws_comments_newlines()
            if s[self.i] == "}":
                self.i += 1
                return
            self.keyval(path)
            self.skip_ws_comments_newlines()
            if s[self.i] == ",":
                self.i += 1
            elif s[self.i] == "}":
                self.i += 1
                return
            else:
                raise ScanError(f"expected ',' or '}}' at {self.i}")
