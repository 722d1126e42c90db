"""Trust: what a cloned repository may do to your shell (DESIGN §9).

``eval "$(buildpolicy env)"`` runs at every prompt and in ``.envrc`` files, so
the files of a project you just cloned must not be able to set ``PATH``,
``LD_PRELOAD``, ``BASH_ENV`` or ``PROMPT_COMMAND``, nor run code of their own.

- The ``builtin``, ``site`` and ``user`` layers are trusted.
- The ``project`` and ``pack`` layers may set and unset **build variables**
  freely (:data:`SAFE_PREFIXES`, :data:`SAFE_NAMES`). Anything else needs the
  user's ``buildpolicy allow``:

  * a rule ``env`` name or ``unset`` entry outside the safe set. Names are
    checked statically, on the template: ``CARGO_PROFILE_${cargo.profile_env}_X``
    is safe because every name it can produce starts with ``CARGO_``, while a
    name that starts with ``${...}`` could become anything and is not;
  * ``plugin_paths``: team-local plugin modules are Python code that would run
    inside buildpolicy at every prompt;
  * a value for a knob in :data:`SENSITIVE_KNOBS` (they make buildpolicy run
    ``ssh`` with a configuration file or connect to hosts the files name, and
    an ssh configuration can run any command through ``ProxyCommand``).

- ``buildpolicy allow`` records, in ``$XDG_STATE_HOME/buildpolicy/trust/``, a
  SHA-256 over the paths and contents of the profile file, the project's
  policy files, its pack files, its team-local plugin modules and the
  repository modules they import (:func:`hashed_files`). Any edit, added or
  removed file needs a new ``allow``; ``buildpolicy deny`` removes the record.
  Team plugin code runs from bytes that match the recorded digests, never from
  a ``.pyc`` (``buildpolicy.engine.teamcode``).
- ``env`` and ``exec`` refuse (exit 2, stdout empty) while untrusted items
  exist and no matching record does, naming each item, its ``file:line:col``
  and the fix. ``explain``, ``facts``, ``check`` and ``doctor`` still run, with
  a warning, but do not load untrusted plugin modules nor use untrusted
  sensitive knob values. ``test`` runs the project's own test cases, hermetic
  and printing nothing to ``eval``, and loads its plugins as ``cargo test``
  runs a crate's code.

The check is cheap on the warm path: the untrusted items are found when the
policies are compiled and cached with them; with none, nothing else happens.
With some, the record's stat tokens (inode, size, mtime, ctime) of every
hashed file are compared, and files are hashed again only when one changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import attrs

from buildpolicy.errors import BuildpolicyError, Diagnostic
from buildpolicy.filestate import stat_token

# Layers whose files need trust for anything beyond build variables.
UNTRUSTED_LAYERS = ("project", "pack")

# Variables matching NAME* (DESIGN §9), and exact names. BUILDPOLICY_ is the
# project's own knob prefix.
SAFE_PREFIXES = ("CARGO_", "RUSTC", "SCCACHE_", "CC", "CXX", "AR", "CFLAGS", "CXXFLAGS", "CMAKE_", "BUILDPOLICY_")
SAFE_NAMES = ("RUSTFLAGS", "RUSTDOCFLAGS", "RUSTUP_TOOLCHAIN", "TMPDIR", "MAKEFLAGS", "NUM_JOBS")

# Knobs whose value from a project or pack file needs trust: they make
# buildpolicy run ssh with a configuration file, or connect to hosts, named
# by the repository.
SENSITIVE_KNOBS = ("remote_hosts", "remote_ssh_config")

RECORD_VERSION = 1
ALLOW_FIX = "buildpolicy allow"


def is_safe_name(name: str) -> bool:
    """Whether ``name`` is a build variable project and pack files may set or unset."""
    return name in SAFE_NAMES or name.startswith(SAFE_PREFIXES)


def is_safe_name_template(template: str) -> bool:
    """Whether every name the env-name ``template`` can produce is a build variable.

    The literal text before the first ``${fact}`` must already match a safe
    prefix (``CARGO_PROFILE_${cargo.profile_env}_INCREMENTAL`` → ``CARGO_``); a
    template without ``${`` is checked as a plain name.
    """
    head, sep, _ = template.partition("${")
    head = head.replace("$$", "$")
    if not sep:
        return is_safe_name(head)
    return head.startswith(SAFE_PREFIXES)


@attrs.frozen
class Finding:
    """One item of a project or pack file that needs the user's trust."""

    kind: str  # "env", "unset", "plugin" or "knob"
    name: str  # the variable (template), plugin path or knob
    file: str
    line: int | None
    col: int | None
    what: str  # human description: "rule 'x' sets PATH, which is not a build variable"

    def diagnostic(self, suffix: str = "") -> Diagnostic:
        """This finding as ``file:line:col: what`` (plus ``suffix``)."""
        return Diagnostic(self.file, self.line, self.col, self.what + suffix)


def env_finding(rule_id: str, template: str, file: str, line, col) -> Finding:
    """The finding for a rule ``env`` name outside the safe set."""
    if "${" in template and not template.partition("${")[0]:
        what = f"rule {rule_id!r} sets {template}, a name made from facts that could be any variable"
    else:
        what = f"rule {rule_id!r} sets {template}, which is not a build variable"
    return Finding("env", template, file, line, col, what)


def unset_finding(rule_id: str, name: str, file: str, line, col) -> Finding:
    """The finding for a rule ``unset`` entry outside the safe set."""
    return Finding("unset", name, file, line, col, f"rule {rule_id!r} unsets {name}, which is not a build variable")


def plugin_finding(entry: str, file: str, line, col) -> Finding:
    """The finding for a ``plugin_paths`` entry (team-local code)."""
    return Finding("plugin", entry, file, line, col, f"plugin_paths loads {entry}, Python code that would run inside buildpolicy")


def knob_finding(knob: str, file: str, line, col) -> Finding:
    """The finding for a sensitive knob's value in a project or pack file."""
    return Finding("knob", knob, file, line, col,
                   f"knob {knob} is set here, which makes buildpolicy run ssh with what this file says")


# --------------------------------------------------------------------------- records


def _file_digest(path: str) -> str:
    import hashlib

    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return "missing"


def hashed_files(policy_set) -> list[str]:
    """Every file ``allow`` hashes: the profile, project, pack and team plugin files, plus
    the repository modules the team plugins import (``buildpolicy.policy.plugincode``)."""
    files = set(policy_set.trust_files)
    if policy_set.plugin_paths:
        from buildpolicy.policy.plugincode import code_files

        files.update(code_files(policy_set.plugin_paths, policy_set.project_root))
    return sorted(files)


def digest(files: Iterable[str]) -> tuple[str, dict[str, str]]:
    """SHA-256 over the paths and contents of ``files``; also each file's own digest.

    The overall digest hashes ``path NUL sha256(content)`` lines in path order,
    so adding, removing, renaming or editing any file changes it.
    """
    import hashlib

    each = {path: _file_digest(path) for path in sorted(set(files))}
    overall = hashlib.sha256()
    for path, file_digest in each.items():
        overall.update(path.encode("utf-8", "surrogateescape") + b"\0" + file_digest.encode() + b"\n")
    return overall.hexdigest(), each


def record_path(state_dir: Path, profile: str) -> Path:
    """Where the trust record of the project whose profile file is ``profile`` lives."""
    import hashlib

    key = hashlib.sha256(str(profile).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return state_dir / "trust" / f"{key}.json"


def _read_record(path: Path) -> dict | None:
    # A corrupt or unreadable record is ignored (treated as "not allowed"), never fatal;
    # so is one that is not a regular file of this user's in a directory only they can
    # write (filestate.read_state): a record planted by someone else would allow anything.
    from buildpolicy.filestate import load_state_json

    data = load_state_json(path)
    if not isinstance(data, dict) or data.get("version") != RECORD_VERSION or not isinstance(data.get("files"), dict):
        return None
    return data


def _write_record(path: Path, profile: str, overall: str, each: dict[str, str]) -> None:
    import time

    from buildpolicy.filestate import write_state

    record = {
        "version": RECORD_VERSION,
        "profile": profile,
        "sha256": overall,
        "files": {p: {"sha256": d, "stat": stat_token(p)} for p, d in each.items()},
        "allowed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_state(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


@attrs.frozen
class Verdict:
    """Whether the project is trusted, and if not, why (for the messages)."""

    trusted: bool
    allowed_before: bool = False  # a record exists but no longer matches
    changed: tuple[str, ...] = ()  # files edited, added or removed since `allow`
    # When trusted: each hashed file's SHA-256 as allowed, so team plugin code can be
    # run from bytes that match it (buildpolicy.engine.teamcode), not from a later edit.
    digests: dict[str, str] = attrs.field(factory=dict, eq=False)


def check(policy_set, state_dir: Path) -> Verdict:
    """Whether the user allowed the project's files as they are now.

    Stats every hashed file and compares with the record; hashes only when a
    stat differs (a checkout that rewrote identical content is still trusted,
    and the record's stat tokens are refreshed so the next run is cheap again).
    """
    if not policy_set.profile_path:
        return Verdict(True)
    path = record_path(state_dir, policy_set.profile_path)
    record = _read_record(path)
    if record is None:
        return Verdict(False)
    files = hashed_files(policy_set)
    recorded = record["files"]
    if list(sorted(recorded)) == files and all(
        isinstance(recorded[f], dict) and recorded[f].get("stat") == stat_token(f) for f in files
    ):
        return Verdict(True, digests={f: str(recorded[f].get("sha256")) for f in files})
    overall, each = digest(files)
    if overall == record.get("sha256"):
        try:
            _write_record(path, policy_set.profile_path, overall, each)
        except OSError:
            pass  # only the next run's speed depends on it
        return Verdict(True, digests=each)
    changed = sorted(
        {f for f in files if not isinstance(recorded.get(f), dict) or recorded[f].get("sha256") != each[f]}
        | {f for f in recorded if f not in each}
    )
    return Verdict(False, allowed_before=True, changed=tuple(changed))


def allow(policy_set, state_dir: Path) -> Path:
    """Record the hash of the project's files as they are now; return the record's path."""
    if not policy_set.profile_path:
        raise BuildpolicyError("no buildpolicy.toml here or in any parent directory: nothing to allow")
    overall, each = digest(hashed_files(policy_set))
    path = record_path(state_dir, policy_set.profile_path)
    try:
        _write_record(path, policy_set.profile_path, overall, each)
    except OSError as exc:
        raise BuildpolicyError(f"cannot write the trust record {path}: {exc.strerror or exc}") from None
    return path


def deny(profile: str, state_dir: Path) -> bool:
    """Remove the trust record of the project; return whether there was one."""
    path = record_path(state_dir, profile)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise BuildpolicyError(f"cannot remove the trust record {path}: {exc.strerror or exc}") from None
    return True


def refusal(policy_set, verdict: Verdict) -> BuildpolicyError:
    """The exit-2 error of ``env``/``exec``: every untrusted item, where it is, and the fix."""
    root = str(Path(policy_set.profile_path).parent)
    if verdict.allowed_before:
        why = "the project's files changed since `buildpolicy allow`"
    else:
        why = "the project's policy files are not trusted"
    messages: list = [f.diagnostic(f"; refused: {why}") for f in policy_set.trust_findings]
    if verdict.changed:
        messages.append("changed since `buildpolicy allow`: " + ", ".join(verdict.changed))
    messages.append(
        f"review them, then run `{ALLOW_FIX}` in {root} to trust buildpolicy.toml and its policy files as they are now "
        "(any edit needs a new `buildpolicy allow`; `buildpolicy deny` revokes it)"
    )
    return BuildpolicyError(messages)


def warnings_for(policy_set, verdict: Verdict) -> list[str]:
    """What commands that do not refuse say instead (one warning per untrusted item)."""
    state = "changed since `buildpolicy allow`" if verdict.allowed_before else "not trusted"
    out = [f"{f.diagnostic()} (project files {state}: `env`/`exec` refuse; run `{ALLOW_FIX}`)" for f in policy_set.trust_findings]
    skipped = [f.name for f in policy_set.trust_findings if f.kind == "plugin"]
    if skipped:
        out.append(f"team-local plugin(s) not loaded until `{ALLOW_FIX}`: {', '.join(skipped)}")
    return out
