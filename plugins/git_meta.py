"""The ``git_meta`` decision: export the commit a binary is built from (off by default).

A program that prints its version often embeds the git hash and date through a
build script (``cargo:rustc-env=…``) or ``env!``/``option_env!``. Asking git from
the build script means watching ``.git`` (every ``git status`` touches it) or
embedding a stale hash. Exporting the *values* instead keeps them in lockstep
with HEAD: a build script that declares ``cargo:rerun-if-env-changed=<var>``
runs again exactly when HEAD moves.

Only the variables named by the knobs get the values: never rustflags and never
a ``CARGO_*``/``RUSTC*`` variable, which cargo or sccache fingerprint for every
crate (the knob check refuses such names), so a new commit rebuilds the crate
that reads the hash, not the world.

Statuses: ``hash=<short hash>``; ``external:<value>`` when the caller already
exports the hash variable (a release pipeline); ``git-not-found``; ``no-head``
(not a repository, or no commit yet); ``disabled`` (knob ``git_meta = off``).
"""

from __future__ import annotations

from buildpolicy import hookimpl
from buildpolicy.model import Decision, KnobSpec

# Decisions depend only on what is read through the DecideContext (and the
# conditions and files declared there): a warm `env` may be replayed (buildpolicy.replay).
BUILDPOLICY_REPLAYABLE = True

# What this plugin exported last time (a JSON object, name → value): see _previously_exported.
MARK_VAR = "BUILDPOLICY_GIT_META_EXPORTED"
# Names cargo or sccache fold into every crate's fingerprint or cache key, and buildpolicy's own.
_FINGERPRINTED = ("CARGO_", "RUSTC", "RUSTFLAGS", "RUSTDOCFLAGS", "SCCACHE_", "BUILDPOLICY_")
_VARIABLES = (
    ("git_meta_hash_var", "BUILD_GIT_HASH", "git.head", "the short commit hash of HEAD"),
    ("git_meta_date_var", "BUILD_GIT_DATE", "git.commit_date", "HEAD's committer date (git log --format=%ci)"),
    ("git_meta_describe_var", "", "git.describe", "git describe --tags --always"),
    ("git_meta_dirty_var", "", "git.dirty", "true/false: the work tree differs from HEAD (git status on every run: "
                                            "a prompt that uses it is never replayed, and it flips with every edit)"),
)


def check_variable_name(value: str) -> str | None:
    """Why ``value`` cannot name a git_meta variable, or None (empty: not exported)."""
    if value == "":
        return None
    if not (value[0].isalpha() or value[0] == "_") or not all(c.isalnum() or c == "_" for c in value) or not value.isascii():
        return "a variable name is letters, digits and _, not starting with a digit"
    if value.upper().startswith(_FINGERPRINTED):
        return (f"{value} would change what cargo and sccache fingerprint for every crate (they hash CARGO_* and "
                "RUSTC*/RUSTFLAGS variables): each commit would rebuild everything; pick a name of your own")
    return None


@hookimpl
def buildpolicy_declare_knobs():
    """Declare ``git_meta`` (on|off) and the names of the variables it exports."""
    knobs = [KnobSpec("git_meta", "enum", default="off", values=("on", "off"),
                      description="export HEAD's commit hash and date for the build to embed")]
    for name, default, _fact, what in _VARIABLES:
        knobs.append(KnobSpec(name, "string", default=default, check=check_variable_name,
                              description=f"variable git_meta sets to {what}; empty: not exported"))
    return knobs


def _watch_head(ctx) -> None:
    """A warm replay re-reads HEAD anyway (git.head is re-probed); the files HEAD is read
    from are recorded too, so a commit or checkout is noticed from their stat alone."""
    from pathlib import Path

    from buildpolicy.facts.git import head_files

    cwd = getattr(getattr(ctx.facts, "ctx", None), "cwd", None)
    if cwd is not None:
        for path in head_files(Path(cwd).resolve(), ctx.environ):
            ctx.depends_on_file(path)


def _previously_exported(ctx) -> dict[str, str]:
    """The variables an earlier run exported that still hold the value it gave them.

    The env-state record only speaks for build variables; these names are the
    knobs' choice, so ``MARK_VAR`` lists what was exported. Whatever wrote it, it
    can only make this decision recompute a name the knobs give from git, or unset a
    variable that holds the very value this plugin would have exported.
    """
    if not ctx.environ.get(MARK_VAR):
        return {}  # the usual case: nothing exported before (and json not imported at the prompt)
    import json

    try:
        previous = json.loads(ctx.environ[MARK_VAR])
    except ValueError:
        return {}
    if not isinstance(previous, dict):
        return {}
    return {name: value for name, value in previous.items()
            if isinstance(name, str) and isinstance(value, str) and ctx.environ.get(name) == value}


def _decision(ctx, status: str, value, reason: str, ours: dict[str, str], exported: dict[str, str]) -> Decision:
    """The decision, with the bookkeeping: ``MARK_VAR`` lists what is exported now, and
    what an earlier run exported but this one does not is unset."""
    stale = tuple(sorted(name for name in ours if name not in exported))
    set_env = dict(exported)
    if exported:
        import json  # only when something is exported: the knob is off by default

        set_env[MARK_VAR] = json.dumps(exported, sort_keys=True, separators=(",", ":"))
    unset = stale + ((MARK_VAR,) if not exported and MARK_VAR in ctx.environ else ())
    # force: each name exported here is either not in the caller's environment or holds
    # the value an earlier run exported (the caller's own values are left out above).
    return Decision("git_meta", value, status, reason, set_env=set_env, unset=unset, force=True)


@hookimpl
def buildpolicy_decide(ctx):
    """Export the commit's facts into the variables the knobs name."""
    ours = _previously_exported(ctx)
    if ctx.knob("git_meta") == "off":
        return _decision(ctx, "disabled", None, f"knob git_meta = off ({ctx.knob_source('git_meta')})", ours, {})
    hash_var = ctx.knob("git_meta_hash_var")
    inherited = ctx.environ.get(hash_var) if hash_var and hash_var not in ours else None
    if inherited:
        return _decision(ctx, f"external:{inherited}", inherited,
                         f"{hash_var}={inherited} is set by the caller (a release pipeline's value wins)", ours, {})
    if ctx.fact("tool.git") is None:
        return _decision(ctx, "git-not-found", None, "git is not on PATH: nothing exported", ours, {})
    _watch_head(ctx)
    head = ctx.fact("git.head")
    if head is None:
        return _decision(ctx, "no-head", None, "no commit to describe: not a git repository, or no commit yet", ours, {})
    exported: dict[str, str] = {}
    notes: list[str] = []
    for knob, _default, fact, _what in _VARIABLES:
        name = ctx.knob(knob)
        if not name:
            continue
        if name in ctx.environ and name not in ours:
            notes.append(f"{name} is set by the caller and kept")
            continue
        value = ctx.fact(fact)
        if value is None:
            notes.append(f"{fact} is unknown ({name} not set)")
            continue
        exported[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    shown = ", ".join(f"{name}={value}" for name, value in exported.items()) or "nothing"
    reason = f"HEAD is {head}: exported {shown}" + (f"; {'; '.join(notes)}" if notes else "")
    return _decision(ctx, f"hash={head}", head, reason, ours, exported)
