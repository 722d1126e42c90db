"""The ``tmpdir`` decision: keep big temporary files off a memory-backed /tmp (DESIGN §6).

rustc and linkers write large temporary files; on a tmpfs /tmp they eat the
very RAM the build needs. In order of precedence:

- ``explicit``: the ``build_tmpdir`` knob names the directory (it beats an
  inherited ``TMPDIR``, as the wrapper's ``JCODE_BUILD_TMPDIR`` did);
- ``inherited``: the caller's ``TMPDIR``;
- ``system-default``: /tmp is disk-backed (or whether it is memory-backed is unknown);
- ``disk-scratch``: /tmp is memory-backed: ``<cache dir>/tmp``;
- ``target-scratch``: that one is unusable: ``<target dir>/buildpolicy-tmp`` of the project;
- ``fallback-system-default``: no directory chosen above could be made or is safe
  to use: the system default, and the reason says why.
"""

from __future__ import annotations

import os
from pathlib import Path

from buildpolicy import hookimpl
from buildpolicy.model import Decision, KnobSpec

# Decisions depend only on what is read through the DecideContext (and the
# conditions and files declared there): a warm `env` may be replayed (buildpolicy.replay).
BUILDPOLICY_REPLAYABLE = True

TARGET_SCRATCH = "buildpolicy-tmp"


@hookimpl
def buildpolicy_declare_knobs():
    """Declare ``build_tmpdir``: a directory for the build's temporary files."""
    return [KnobSpec("build_tmpdir", "string", default="",
                     description="directory for the build's temporary files (TMPDIR), created when missing; "
                                 "beats an inherited TMPDIR; empty: decide from /tmp")]


def _prepare(directory: Path, *, cache: bool = False) -> str | None:
    """Create ``directory`` if needed; None when it is usable, else why not.

    Only a refused directory of the cache dir is also reported as such on stderr:
    for the others the decision's reason says it."""
    from buildpolicy.filestate import unsafe_directory

    # Checked before it is created (nothing is made in another user's directory) and after:
    # builds write and then read back temporary files, never where another user can swap them.
    unsafe = unsafe_directory(directory, warn=cache)
    if unsafe is None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"{directory} cannot be created: {exc.strerror or exc}"
        unsafe = unsafe_directory(directory, warn=cache)
    return None if unsafe is None else f"{directory} is not safe: {unsafe}"


def _use(ctx, directory: Path, status: str, why: str, *, force: bool = False) -> Decision:
    ctx.depends_on_file(directory)  # a warm replay re-checks that it still exists
    return Decision("tmpdir", str(directory), status, why, set_env={"TMPDIR": str(directory)}, force=force)


def _cwd(ctx) -> Path:
    cwd = getattr(getattr(ctx.facts, "ctx", None), "cwd", None)
    return Path(os.path.abspath(cwd if cwd is not None else "."))


def _explicit(ctx, configured: str) -> Decision:
    home = ctx.environ.get("HOME")  # the caller's home, not this process's
    path = os.path.join(home, configured[2:]) if configured.startswith("~/") and home else configured
    problem = None
    if os.path.isabs(path):
        directory = Path(os.path.abspath(path))
    else:
        # Relative to the cargo workspace, never to wherever the prompt happens to be.
        from buildpolicy.run.workspace import workspace_root

        root = workspace_root(_cwd(ctx))
        directory = Path(os.path.abspath(root / path)) if root is not None else None
        if directory is None:
            problem = f"{configured!r} is relative and {_cwd(ctx)} is in no cargo workspace to resolve it in"
    problem = problem or _prepare(directory)
    if problem:
        ctx.not_replayable(problem)
        return Decision("tmpdir", None, "fallback-system-default",
                        f"build_tmpdir ({ctx.knob_source('build_tmpdir')}): {problem}; using the system default")
    inherited = ctx.environ.get("TMPDIR")
    beats = f" (it beats the inherited TMPDIR={inherited})" if inherited and inherited != str(directory) else ""
    return _use(ctx, directory, "explicit", f"build_tmpdir = {configured} ({ctx.knob_source('build_tmpdir')}){beats}",
                force=True)


def _target_scratch(ctx) -> Path | None:
    """``<target dir>/buildpolicy-tmp`` of the project, or None outside a cargo project."""
    from buildpolicy.run.workspace import target_dir, workspace_root

    cwd = _cwd(ctx)
    if workspace_root(cwd) is None:
        return None
    # The target dir comes from cargo's configuration files, which the replay does not record.
    ctx.not_replayable("the scratch directory is under the target dir")
    return target_dir(tuple(ctx.cargo_argv or ()), ctx.environ, cwd) / TARGET_SCRATCH


@hookimpl
def buildpolicy_decide(ctx):
    """Decide TMPDIR with the statuses in this module's docstring."""
    configured = ctx.knob("build_tmpdir")
    if configured:
        return _explicit(ctx, configured)
    inherited = ctx.environ.get("TMPDIR")
    if inherited:
        return Decision("tmpdir", inherited, "inherited", f"TMPDIR={inherited} is set by the caller")
    memory_backed = ctx.fact("fs.tmp_is_memory")
    if not memory_backed:
        why = "/tmp is disk-backed" if memory_backed is False else "whether /tmp is memory-backed is unknown"
        return Decision("tmpdir", None, "system-default", why)
    scratch = ctx.cache_dir / "tmp"
    problem = _prepare(scratch, cache=True)
    if problem is None:
        return _use(ctx, scratch, "disk-scratch", f"/tmp is memory-backed (tmpfs/ramfs): temporary files go to {scratch}")
    ctx.not_replayable(problem)
    fallback = _target_scratch(ctx)
    second = _prepare(fallback) if fallback is not None else "not in a cargo project, so there is no target dir"
    if second is None:
        return _use(ctx, fallback, "target-scratch",
                    f"/tmp is memory-backed and {problem}: temporary files go to the target dir, {fallback}")
    return Decision("tmpdir", None, "fallback-system-default",
                    f"/tmp is memory-backed, but {problem}, and {second}: using the system default")
