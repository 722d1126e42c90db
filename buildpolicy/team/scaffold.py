"""``buildpolicy init``: the files of a new project, never overwriting existing ones.

Layout::

    buildpolicy.toml                   the profile file
    policies/project.toml              an example rule (active, harmless) and a commented-out one
    policies/tests/example.toml        policy test cases that `buildpolicy test` runs
    .buildpolicy/schema/*.schema.json  copies of the JSON Schemas, for editors
    .envrc                             with --direnv

The ``#:schema`` line of each file points at the copies in ``.buildpolicy/schema``
by a path relative to the file (taplo and Even Better TOML resolve it against
the file's directory). Copies, rather than the installed files' absolute paths,
because the files are committed and shared: an absolute path into one
developer's virtualenv means nothing on another machine or in CI. The copies
can be refreshed with ``buildpolicy schema policy > .buildpolicy/schema/policy.schema.json``.
"""

from __future__ import annotations

from pathlib import Path

SCHEMA_DIR = Path(".buildpolicy") / "schema"

PROFILE = """\
#:schema .buildpolicy/schema/profile.schema.json
# buildpolicy profile: how this project's cargo builds are configured.
# `buildpolicy explain` shows what it decides and why; `buildpolicy check` validates;
# `buildpolicy test` runs the cases in policies/tests/.

# Policy files and directories, relative to this file (directories load their *.toml in order).
policies = ["policies"]

# The cargo profile `buildpolicy env` decides for when no cargo command says otherwise.
default_profile = "dev"

# Shared policies below this project's own: a path, or pack:<name> for an installed pack.
# extends = ["pack:acme-rust"]

# Named feature sets, chosen with BUILDPOLICY_FEATURES=<name> or `--set features=<name>`.
# [feature_profiles]
# minimal = ["--no-default-features"]

# Knob defaults for everyone working on this project (`buildpolicy set --layer project` edits them).
[knobs]
# mib_per_job = 2048
"""

POLICY = """\
#:schema ../.buildpolicy/schema/policy.schema.json
# Project rules. They sit above the shipped rules (a rule with the same id
# replaces a shipped one; `enabled = false` switches it off) and below the
# site and user layers.

[[rule]]
id = "ci-no-progress-bars"
description = "CI logs are files, not terminals: no progress bars"
# An expression over facts (`buildpolicy facts` lists them); `ci` is true when CI is set.
when = "ci"
# A value already in the caller's environment wins, unless the rule says `force = true`.
env = { CARGO_TERM_PROGRESS_WHEN = "never" }

# Another example, switched off (remove the leading '# ' to use it):
# [[rule]]
# id = "lean-dev-debuginfo"
# description = "Line tables only on small machines: faster links, a smaller target/"
# when = "cargo.profile == 'dev' and memory.total < 16GiB"
# knob = "lean_debuginfo"   # BUILDPOLICY_LEAN_DEBUGINFO=on|off|auto overrides `when`
# env = { "CARGO_PROFILE_${cargo.profile_env}_DEBUG" = "line-tables-only" }
"""

CASES = """\
#:schema ../../.buildpolicy/schema/tests.schema.json
# Policy test cases: `buildpolicy test` (or `pytest --buildpolicy policies/tests`).
# The facts given are the only machine facts, and `env` is the whole caller
# environment, so a case means the same on every machine.

[[case]]
name = "16 GiB laptop without swap under earlyoom gets the low-memory settings"
args = ["--", "cargo", "build"]
facts = { os = "linux", "process.earlyoom" = true, "swap.total" = 0, "memory.total" = "16GiB", "memory.available" = "6GiB", "cpu.count" = 8 }
env = {}
expect.env = { CARGO_INCREMENTAL = "1", CARGO_PROFILE_DEV_CODEGEN_UNITS = "256", CARGO_BUILD_JOBS = "3" }
expect.absent = ["RUSTC_WRAPPER", "CARGO_TERM_PROGRESS_WHEN"]
expect.decisions = { low_memory = "enabled:incremental=true,codegen-units=256", sccache = "disabled-by-policy:low-memory-incremental" }

[[case]]
name = "CI builds print no progress bars"
args = ["--", "cargo", "build"]
facts = { os = "linux", "memory.total" = "64GiB", "memory.available" = "48GiB", "cpu.count" = 16 }
env = { CI = "true" }
expect.env = { CARGO_TERM_PROGRESS_WHEN = "never", CARGO_BUILD_JOBS = "16" }
expect.decisions = { low_memory = "auto-not-needed" }
"""

ENVRC = """\
# direnv: the cargo build environment buildpolicy decides for this project.
# Reloaded when anything `buildpolicy env` reads from files changes: the profile, the
# policy files (watched as directories, so new files count), Cargo.toml, cargo's
# configuration, the rust-toolchain file, your user and site layers, and the trust
# records `buildpolicy allow` and `deny` write.
watch_file buildpolicy.toml Cargo.toml .cargo/config.toml .cargo/config rust-toolchain rust-toolchain.toml
watch_file "${CARGO_HOME:-$HOME/.cargo}/config.toml" "${CARGO_HOME:-$HOME/.cargo}/config"
# watch_dir needs an existing directory; a missing one is watched until it appears.
_buildpolicy_watch_dir() { if [ -d "$1" ]; then watch_dir "$1"; else watch_file "$1"; fi; }
_buildpolicy_watch_dir policies
_buildpolicy_watch_dir "${XDG_CONFIG_HOME:-$HOME/.config}/buildpolicy"
_buildpolicy_watch_dir "${BUILDPOLICY_SITE_DIR:-/etc/buildpolicy}"
_buildpolicy_watch_dir "${XDG_STATE_HOME:-$HOME/.local/state}/buildpolicy/trust"
eval "$(buildpolicy env)"
"""


def plan(root: Path, direnv: bool = False) -> list[tuple[Path, str]]:
    """Every file ``init`` writes under ``root``, with its content."""
    from buildpolicy.data import schema_dir

    files = [
        (root / "buildpolicy.toml", PROFILE),
        (root / "policies" / "project.toml", POLICY),
        (root / "policies" / "tests" / "example.toml", CASES),
    ]
    for kind in ("profile", "policy", "tests"):
        name = f"{kind}.schema.json"
        files.append((root / SCHEMA_DIR / name, (schema_dir() / name).read_text(encoding="utf-8")))
    if direnv:
        files.append((root / ".envrc", ENVRC))
    return files


def scaffold(root: Path, direnv: bool = False) -> list[tuple[Path, bool]]:
    """Write the files of :func:`plan` that do not exist yet; return ``(path, written)`` for each.

    An existing file is never touched, whatever its content.
    """
    import os

    from buildpolicy.errors import BuildpolicyError

    results = []
    for path, content in plan(root, direnv):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BuildpolicyError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
        try:
            # O_EXCL: a file created between a check and the write is not overwritten either.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            results.append((path, False))
            continue
        except OSError as exc:
            raise BuildpolicyError(f"cannot create {path}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        results.append((path, True))
    return results
