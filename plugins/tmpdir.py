"""The ``tmpdir`` decision: keep big temporary files off a memory-backed /tmp (DESIGN §6).

rustc and linkers write large temporary files; on a tmpfs /tmp they eat the
very RAM the build needs.
"""

from __future__ import annotations

from buildpolicy import hookimpl
from buildpolicy.model import Decision

# Decisions depend only on what is read through the DecideContext (and the
# conditions and files declared there): a warm `env` may be replayed (buildpolicy.replay).
BUILDPOLICY_REPLAYABLE = True


@hookimpl
def buildpolicy_decide(ctx):
    """Decide TMPDIR: inherited, a disk-backed scratch dir, or the system default."""
    inherited = ctx.environ.get("TMPDIR")
    if inherited:
        return Decision("tmpdir", inherited, "inherited", f"TMPDIR={inherited} is set by the caller")
    memory_backed = ctx.fact("fs.tmp_is_memory")
    if memory_backed:
        from buildpolicy.filestate import unsafe_directory

        scratch = ctx.cache_dir / "tmp"
        # Checked before it is created (nothing is made in another user's directory) and after.
        unsafe = unsafe_directory(scratch)
        if unsafe is None:
            try:
                scratch.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                ctx.not_replayable(f"{scratch} cannot be created")
                return Decision("tmpdir", None, "system-default", f"/tmp is memory-backed but {scratch} cannot be created: {exc}")
            unsafe = unsafe_directory(scratch)
        if unsafe is not None:
            # Builds write and then read back temporary files: never where another user can swap them.
            ctx.not_replayable(f"{scratch} is not safe")
            return Decision("tmpdir", None, "system-default", f"/tmp is memory-backed but {scratch} is not safe: {unsafe}")
        ctx.depends_on_file(scratch)  # a warm replay re-checks that it still exists
        return Decision(
            "tmpdir", str(scratch), "disk-scratch",
            f"/tmp is memory-backed (tmpfs/ramfs): temporary files go to {scratch}",
            set_env={"TMPDIR": str(scratch)},
        )
    why = "/tmp is disk-backed" if memory_backed is False else "whether /tmp is memory-backed is unknown"
    return Decision("tmpdir", None, "system-default", why)
