"""The zero-tests guard: ``exec -- cargo test <filter>`` whose filter matched no test fails.

``cargo test parse_header`` after the test was renamed runs nothing and exits 0:
a typo in a filter passes as green. With an explicit filter (a positional word
for the test binaries, before or after ``--``) ``exec`` watches the output: when
every test binary reported ``running 0 tests`` and none ran any, the run exits
with the ``zero_tests_exit`` knob's code (97, the wrapper's) instead of 0, and
says why. A run that failed keeps its own status; ``zero_tests = allow`` turns
the guard off.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from buildpolicy.facts.cargo import command_index, parse_cargo_argv

# `cargo test` options that take a value (a word after them is that value, not a filter).
CARGO_TEST_VALUE_OPTIONS = frozenset({
    "--bench", "--bin", "--example", "--test", "--features", "-F", "--manifest-path", "--message-format",
    "--package", "-p", "--exclude", "--profile", "--target", "--target-dir", "--jobs", "-j", "--color",
    "--config", "-Z", "--lockfile-path", "--artifact-dir",
})
# Options of the libtest harness (after `--`) that take a value.
LIBTEST_VALUE_OPTIONS = frozenset({
    "--test-threads", "--skip", "--format", "--color", "--logfile", "-Z", "--shuffle-seed",
})
# libtest's header for each test binary: "running 0 tests", "running 1 test".
_RUNNING = re.compile(rb"^running (\d+) tests?\r?$", re.MULTILINE)


def _positional(words: Sequence[str], takes_value: frozenset[str]) -> list[str]:
    found: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word.startswith("-"):
            skip = word in takes_value  # `--opt value`; `--opt=value` carries its own
            continue
        found.append(word)
    return found


def test_filters(argv: Sequence[str]) -> list[str]:
    """The test-name filters of a ``cargo test`` argv (empty for any other command)."""
    if parse_cargo_argv(argv).command != "test":
        return []
    argv = list(argv)
    start = command_index(argv)
    if start is None:
        return []
    end = argv.index("--") if "--" in argv else len(argv)
    filters = _positional(argv[start + 1:end], CARGO_TEST_VALUE_OPTIONS)
    if end < len(argv):
        filters += _positional(argv[end + 1:], LIBTEST_VALUE_OPTIONS)
    return filters


class ZeroTestsWatch:
    """Fed the command's stdout; tells whether every test binary ran zero tests."""

    def __init__(self) -> None:
        self.binaries = 0
        self.tests = 0
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        """Scan ``chunk`` (output in any pieces: a line may span two chunks)."""
        data = self._tail + chunk
        complete, newline, self._tail = data.rpartition(b"\n")
        if newline:
            self._count(complete + newline)
        if len(self._tail) > 4096:  # a line that long is no libtest header
            self._tail = b""

    def _count(self, text: bytes) -> None:
        for match in _RUNNING.finditer(text):
            self.binaries += 1
            self.tests += int(match.group(1))

    def matched_nothing(self) -> bool:
        """Whether test binaries ran and not one test among them."""
        self._count(self._tail)
        self._tail = b""
        return self.binaries > 0 and self.tests == 0
