"""What decision plugins see (``DecideContext``) and what ``exec`` runs (``ExecPlan``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

TYPE_CHECKING = False  # typing is not imported at run time: it costs a full `env` milliseconds
if TYPE_CHECKING:
    from typing import Any

from buildpolicy.record import field, frozen


class DecideContext:
    """Read-only view of one run for ``buildpolicy_decide`` and ``buildpolicy_wrap_exec``.

    Facts are probed lazily on first access, so a plugin only pays for the facts
    it reads. ``environ`` is the caller's environment (never ``os.environ``).
    """

    def __init__(
        self,
        *,
        facts,
        knobs: Mapping[str, Any],
        environ: Mapping[str, str],
        options: Mapping[str, Mapping[str, Any]],
        policy_decisions: Mapping[str, tuple[Any, str]],
        cargo_argv: tuple[str, ...] | None,
        command: str,
        feature_profiles: Mapping[str, tuple[str, ...]],
        cache_dir: Path,
        state_dir: Path,
        warnings: list[str],
    ):
        self.facts = facts
        self.knobs = knobs
        self.environ = environ
        self.options = options
        self.policy_decisions = policy_decisions
        self.cargo_argv = cargo_argv
        self.command = command
        self.feature_profiles = feature_profiles
        self.cache_dir = cache_dir
        self.state_dir = state_dir
        self._warnings = warnings
        # For the warm `env` replay (buildpolicy.replay): files plugins depend on, and
        # why a run may not be replayed.
        self.replay_files: list[tuple[str, str]] = []  # (path, stat token when declared)
        self.replay_blockers: list[str] = []
        self.replay_expires: float | None = None  # wall-clock time after which a replay must not be used
        self.options_read: set[str] = set()  # option tables plugins asked for (the others name no plugin)

    def fact(self, name: str) -> Any:
        """The value of fact ``name`` (None when unknown)."""
        return self.facts.get(name)

    def depends_on(self, name: str, op: str, constant: Any) -> None:
        """State that this plugin's decision depends on fact ``name`` only through
        ``name <op> constant`` (op: ``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``, ``in``),
        instead of on its exact value; call once per comparison.

        Reading a fact with ``fact()`` makes the decision depend on its exact value,
        which is always safe. A plugin whose decision changes only when a fact
        crosses thresholds says which ones, so a warm ``env`` at the next prompt can
        be replayed while free memory drifts (``buildpolicy.replay``).
        """
        from buildpolicy.policy.expr.ops import compare

        self.facts.relax(name, op, constant, compare(op, self.facts.peek(name), constant))

    def depends_on_file(self, path: str | Path) -> None:
        """State that this plugin's decision depends on the file (or directory listing)
        at ``path``, beyond facts, knobs and the environment: a warm ``env`` is replayed
        only while it stays as it is now (same inode, size and times; still missing if
        missing). Call it right after reading the file."""
        from buildpolicy.filestate import stat_token

        self.replay_files.append((str(path), stat_token(path)))

    def valid_until(self, when: float) -> None:
        """State that this run's decision holds only until ``when`` (seconds since the
        epoch, as ``time.time()``): a warm ``env`` after that decides from scratch. For
        decisions made from recorded results that age (probe results of build hosts)."""
        self.replay_expires = when if self.replay_expires is None else min(self.replay_expires, when)

    def not_replayable(self, reason: str) -> None:
        """State that this run's decision depends on something a warm ``env`` could not
        re-check (a network probe, the time): the next run decides from scratch."""
        self.replay_blockers.append(reason)

    def repository_binary_problem(self, *programs: str) -> str | None:
        """Why buildpolicy must not run (nor hand cargo) one of ``programs``: one found
        through a relative PATH entry lies in a directory the repository chose. None
        when all are the user's. Depends only on PATH and the working directory, which
        key the warm replay."""
        from buildpolicy.facts.tools import repository_binary_problem

        probe_ctx = getattr(self.facts, "ctx", None)
        if probe_ctx is None:
            return None
        return next((problem for program in programs
                     if (problem := repository_binary_problem(program, probe_ctx))), None)

    def knob(self, name: str) -> Any:
        """The effective value of knob ``name``."""
        return self.knobs[name].value

    def knob_source(self, name: str) -> str:
        """Where knob ``name``'s value came from, for reasons (``default``, ``$BUILDPOLICY_JOBS``…)."""
        provenance = self.knobs[name].provenance
        if provenance.layer == "default":
            return "default"
        if provenance.file:
            return provenance.where()
        return provenance.source

    def option(self, plugin: str, key: str, default: Any = None) -> Any:
        """A plugin option from the ``[<plugin>]`` table of the policy files."""
        self.options_read.add(plugin)
        entry = self.options.get(plugin, {}).get(key)
        return default if entry is None else entry.value

    def policy_decision(self, name: str) -> tuple[Any, str] | None:
        """``(value, rule_id)`` when a matched rule's ``decide`` set decision ``name``."""
        return self.policy_decisions.get(name)

    def warn(self, message: str) -> None:
        """Add a warning: printed on stderr and listed by ``explain``."""
        if message not in self._warnings:
            self._warnings.append(message)


@frozen
class ExecPlan:
    """What ``exec`` will run: argv, the full environment, and where."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    execution: Mapping[str, Any] = field(factory=lambda: {"mode": "local"})
