"""The one user-facing error type and the exit codes of the design (DESIGN §7)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_PROBLEMS = 1  # check/test found problems
EXIT_USAGE = 2  # usage, policy or knob error
EXIT_IO_ERROR = 74  # sysexits EX_IOERR: stdout closed or full
EXIT_REMOTE_UNAVAILABLE = 75


class Diagnostic:
    """One located problem: ``file:line:col: message`` plus optional extra lines.

    ``line`` and ``col`` are 1-based; either may be None when unknown.
    ``detail`` holds extra lines (an expression with a caret under the fault).
    """

    __slots__ = ("file", "line", "col", "message", "detail")

    def __init__(self, file, line, col, message, detail=()):
        self.file = None if file is None else str(file)
        self.line = line
        self.col = col
        self.message = message
        self.detail = tuple(detail)

    def location(self) -> str:
        """Return ``file:line:col`` (as much of it as is known)."""
        parts = [self.file or "<input>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)

    def __str__(self) -> str:
        head = f"{self.location()}: {self.message}"
        return "\n".join((head, *self.detail))

    def __repr__(self) -> str:
        return f"Diagnostic({str(self)!r})"

    def sort_key(self):
        return (self.file or "", self.line or 0, self.col or 0, self.message)


class BuildpolicyError(Exception):
    """A mistake by the user or in their files: printed without a traceback.

    Carries one or more messages (strings or Diagnostics), the exit code, and
    cargo-style ``notes`` (context) and ``helps`` (the fix), printed once after
    the messages as ``note:`` and ``help:`` lines rather than as more errors.
    """

    def __init__(self, messages, exit_code: int = EXIT_USAGE, *, notes=(), helps=()):
        if isinstance(messages, (str, Diagnostic)):
            messages = [messages]
        self.messages = list(messages)
        self.exit_code = exit_code
        self.notes = list(notes)
        self.helps = list(helps)
        super().__init__("\n".join([*(str(m) for m in self.messages), *(f"note: {n}" for n in self.notes),
                                     *(f"help: {h}" for h in self.helps)]))

    def lines(self, program: str = "buildpolicy") -> list[str]:
        """What is printed on stderr: one ``error:`` line per message, then the notes and helps."""
        return [*(f"{program}: error: {m}" for m in self.messages), *(f"  note: {n}" for n in self.notes),
                *(f"  help: {h}" for h in self.helps)]

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [m for m in self.messages if isinstance(m, Diagnostic)]


def closest(word: str, choices) -> str | None:
    """The one known name closest to a misspelt ``word``, for "did you mean …?" hints, or None."""
    import difflib  # only on error paths

    matches = difflib.get_close_matches(word, [str(choice) for choice in choices], n=1, cutoff=0.6)
    return matches[0] if matches else None
