"""Trust: what a cloned repository may do to your shell (DESIGN §9).

``eval "$(buildpolicy env)"`` runs at every prompt and in ``.envrc`` files, so
the files of a project you just cloned must not be able to set ``PATH``,
``LD_PRELOAD``, ``BASH_ENV`` or ``PROMPT_COMMAND``, redirect buildpolicy's own
configuration, nor run code of their own.

- The ``builtin``, ``site`` and ``user`` layers are trusted.
- The ``project`` and ``pack`` layers may set and unset **build variables**
  freely: exact names and explicit patterns (``buildpolicy.policy.buildvars``
  says what is in the set and why), never bare prefixes:

  * namespaces: ``CARGO_*``, ``RUSTC_*``, ``SCCACHE_*``, ``CMAKE_*``;
  * names: ``RUSTC``, ``RUSTFLAGS``, ``RUSTDOCFLAGS``, ``RUSTUP_TOOLCHAIN``,
    ``TMPDIR``, ``MAKEFLAGS``, ``NUM_JOBS``, ``CRATE_CC_NO_DEFAULTS``;
  * the cc crate's C toolchain variables ``CC``, ``CFLAGS``, ``CXX``,
    ``CXXFLAGS``, ``AR``, ``ARFLAGS``, ``CXXSTDLIB`` as it looks them up:
    ``<VAR>``, ``<VAR>_<target>``, ``HOST_<VAR>``, ``TARGET_<VAR>``. So
    ``AR_aarch64_linux_android`` is a build variable and ``ARGV0`` (zsh's
    ``argv[0]`` for every command) is not.

  Anything else needs the user's ``buildpolicy allow``:

  * a rule ``env`` name or ``unset`` entry outside the set. Names are checked
    statically, on the template: ``CARGO_PROFILE_${cargo.profile_env}_X`` is a
    build variable because every name it can produce starts with ``CARGO_``,
    while a name that starts with ``${...}`` could become anything and is not.
    ``BUILDPOLICY_*`` is outside the set: those variables configure buildpolicy
    itself (knob variables, ``BUILDPOLICY_SITE_DIR``, the gate's and the
    remote host's bookkeeping);
  * a rule setting a knob's environment name (a declared alias such as
    ``CARGO_FAST_LINKER`` would otherwise pass as a build variable, and the
    next ``env`` would read it as the knob): see ``knob_name_findings``;
  * ``plugin_paths``: team-local plugin modules are Python code that would run
    inside buildpolicy at every prompt;
  * a value, or aliases, for a knob in :data:`SENSITIVE_KNOBS`: they name hosts
    buildpolicy connects to, an ssh configuration it runs ssh with (``Match
    exec`` and ``ProxyCommand`` run commands), or paths it creates, replaces
    and deletes.

- ``BUILDPOLICY_ENV_STATE``, the record ``env`` keeps of what it changed, may
  not be set or unset by any policy file, trusted or not: the next ``env``
  restores variables from it.
- ``buildpolicy allow`` records, in ``$XDG_STATE_HOME/buildpolicy/trust/``, a
  SHA-256 over the paths and contents of the profile file, the project's
  policy files, its pack files, its team-local plugin modules and the
  repository modules they import (:func:`hashed_files`). The digest of a
  policy file is taken from the very bytes that were compiled (the loader reads
  each file once), so a file that changes while ``env`` runs cannot be compiled
  in one version and vouched for in another; team plugin code likewise runs
  from bytes that match the recorded digests, never from a ``.pyc``
  (``buildpolicy.engine.teamcode``). Any edit, added or removed file needs a
  new ``allow``; ``buildpolicy deny`` removes the record.
- ``env`` and ``exec`` refuse (exit 2, stdout empty) while untrusted items
  exist and no matching record does, naming each item, its ``file:line:col``
  and the fix. ``check`` reports them as problems (exit 1) together with
  every other one. ``explain``, ``facts`` and ``doctor`` still run, with a
  warning, but do not load untrusted plugin modules nor use untrusted
  sensitive knob values. ``test`` runs the project's own test cases, hermetic
  and printing nothing to ``eval``, and loads its plugins as ``cargo test``
  runs a crate's code.

The check is cheap on the warm path: the untrusted items are found when the
policies are compiled and cached with them, together with the digests of the
compiled files; with no untrusted item, nothing else happens. With some, the
record's digest is compared with the cached digests (team plugin modules are
hashed again only when their stat changed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from buildpolicy.record import field, frozen
from buildpolicy.errors import BuildpolicyError, Diagnostic
from buildpolicy.filestate import stat_token
from buildpolicy.policy.buildvars import is_build_variable, is_build_variable_template

# Layers whose files need trust for anything beyond build variables.
UNTRUSTED_LAYERS = ("project", "pack")

# Knobs whose value from a project or pack file needs trust, and why.
SENSITIVE_KNOBS = {
    "remote_hosts": "makes buildpolicy connect to the hosts this file names",
    "remote_ssh_config": "makes buildpolicy run ssh with the configuration file this file names "
                         "(an ssh configuration can run commands)",
    "remote_dir": "names the directory buildpolicy syncs into, and deletes files in, on the build host",
    "gate_lock": "names a file buildpolicy creates (with its parent directories), replaces and deletes",
    "git_meta": "makes buildpolicy run git at every prompt, on a repository whose configuration the "
                "repository's authors may have written (a tarball or copied checkout)",
    **{f"git_meta_{part}_var": "names an environment variable buildpolicy sets (to a value from git)"
       for part in ("hash", "date", "describe", "dirty")},
    "build_tmpdir": "names a directory buildpolicy creates (with its parent directories) and points the build's "
                    "TMPDIR at",
    "sccache_backend": "names the shared cache sccache reads compiled code from, into your binaries, and "
                       "sends your compiled code to",
    "sccache_dist_scheduler": "names the compile farm that compiles your code and returns the objects linked into "
                              "your binaries",
    "sccache_dist_token": "names the file or variable whose secret buildpolicy sends to the sccache-dist scheduler",
}

RECORD_VERSION = 1
ALLOW_FIX = "buildpolicy allow"


def is_safe_name(name: str) -> bool:
    """Whether ``name`` is a build variable project and pack files may set or unset."""
    return is_build_variable(name)


def is_safe_name_template(template: str) -> bool:
    """Whether every name the env-name ``template`` can produce is a build variable."""
    return is_build_variable_template(template)


@frozen
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
    elif template.startswith("BUILDPOLICY_"):
        what = f"rule {rule_id!r} sets {template}, which configures buildpolicy itself, not the build"
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
    return Finding("knob", knob, file, line, col, f"knob {knob} is set here, which {SENSITIVE_KNOBS[knob]}")


def knob_alias_finding(knob: str, alias: str, file: str, line, col) -> Finding:
    """The finding for aliases given to a sensitive knob in a project or pack file:
    the file chooses which of your variables becomes the knob's value."""
    return Finding("knob-alias", knob, file, line, col,
                   f"knob {knob} gets the environment name {alias} here; the knob's value {SENSITIVE_KNOBS[knob]}")


def knob_value_alias_finding(knob: str, given, replacement, file: str, line, col) -> Finding:
    """The finding for a value alias given to a sensitive knob in a project or pack file:
    the file turns a value you set into one it chose. Same kind as ``knob_alias_finding``:
    both are dropped together while the file is untrusted."""
    return Finding("knob-alias", knob, file, line, col,
                   f"knob {knob} turns the value {given!r} into {replacement!r} here; the knob's value "
                   f"{SENSITIVE_KNOBS[knob]}")


def knob_name_findings(rules, env_names: Mapping[str, str]) -> list[Finding]:
    """Rules of project and pack files that set or unset a knob's environment name.

    ``env_names`` maps every knob environment name that is also a build
    variable (an alias such as ``CARGO_FAST_LINKER``; ``BUILDPOLICY_<KNOB>`` is
    never one) to its knob. A template matches when its literal head is a
    prefix of the name. Such a rule would hand the next ``env`` a knob value
    the project chose, which is what ``[knobs]`` in a project file needs
    ``allow`` for.
    """
    if not env_names:
        return []
    findings = []
    for rule in rules:
        if rule.layer not in UNTRUSTED_LAYERS:
            continue
        for entry in rule.env:
            head, sep, _ = entry.name.partition("${")
            hits = [name for name in env_names if (name.startswith(head) if sep else name == head)]
            for name in hits[:1]:
                findings.append(Finding("env", entry.name, rule.file, entry.line, entry.col,
                                        f"rule {rule.id!r} sets {entry.name}, the environment name of knob {env_names[name]}"
                                        + ("" if name == entry.name else f" (it can produce {name})")))
        for name in rule.unset:
            if name in env_names:
                line, col = rule.position(f"unset.{name}")
                findings.append(Finding("unset", name, rule.file, line, col,
                                        f"rule {rule.id!r} unsets {name}, the environment name of knob {env_names[name]}"))
    return findings


# --------------------------------------------------------------------------- records


def _file_digest(path: str) -> str:
    """SHA-256 of a regular file's bytes, or ``missing`` (a FIFO or device never hangs ``env``)."""
    from buildpolicy.filestate import read_bounded, sha256_hex
    from buildpolicy.policy.plugincode import MAX_CODE_BYTES

    try:
        return sha256_hex(read_bounded(path, MAX_CODE_BYTES))
    except OSError:
        return "missing"


def plugin_code_files(policy_set) -> list[str]:
    """The team plugin modules and the repository modules they import
    (``buildpolicy.policy.plugincode``), as absolute paths."""
    if not policy_set.plugin_paths:
        return []
    from buildpolicy.policy.plugincode import code_files

    return code_files(policy_set.plugin_paths, policy_set.project_root)


TOOLCHAIN_FILES = ("rust-toolchain", "rust-toolchain.toml")


def toolchain_files(policy_set) -> list[str]:
    """The project's own rust-toolchain files (beside its profile file): ``allow`` vouches
    for them too, and only then may they pick a toolchain that is not an installed one
    (``buildpolicy.facts.rust.toolchain_file_trusted``)."""
    if not policy_set.project_root:
        return []
    candidates = (os.path.join(policy_set.project_root, name) for name in TOOLCHAIN_FILES)
    return [path for path in candidates if os.path.lexists(path)]


def hashed_files(policy_set) -> list[str]:
    """Every file ``allow`` hashes: the profile, project, pack and team plugin files, the
    repository modules the team plugins import, and the project's rust-toolchain files."""
    return sorted({*policy_set.trust_files, *plugin_code_files(policy_set), *toolchain_files(policy_set)})


def overall_digest(each: Mapping[str, str]) -> str:
    """SHA-256 over ``path NUL sha256(content)`` lines in path order.

    Adding, removing, renaming or editing any file changes it.
    """
    from buildpolicy.filestate import sha256_hex

    return sha256_hex(b"".join(
        path.encode("utf-8", "surrogateescape") + b"\0" + each[path].encode() + b"\n" for path in sorted(each)))


def record_path(state_dir: Path, profile: str) -> Path:
    """Where the trust record of the project whose profile file is ``profile`` lives."""
    from buildpolicy.filestate import sha256_hex

    key = sha256_hex(str(profile).encode("utf-8", "surrogateescape"))[:32]
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
        "files": {p: {"sha256": d, "stat": stat_token(p)} for p, d in sorted(each.items())},
        "allowed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    import json  # `allow` writes records; a prompt only reads them (filestate)

    write_state(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


def _current_digests(policy_set, recorded: Mapping) -> tuple[dict[str, str], bool]:
    """Each trusted file's digest now, and whether a team plugin module had to be hashed.

    Policy files: the digest of the bytes that were compiled into ``policy_set``
    (never read again here). Team plugin modules and the repository modules they
    import are loaded later (from bytes checked against these digests), and the
    project's rust-toolchain files are read by probes, so those are hashed as they
    are now, unless their stat is the one recorded.
    """
    each = dict(policy_set.trust_digests)
    hashed = False
    for module in (*plugin_code_files(policy_set), *toolchain_files(policy_set)):
        entry = recorded.get(module)
        if isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and entry.get("stat") == stat_token(module):
            each[module] = entry["sha256"]
        else:
            each[module] = _file_digest(module)
            hashed = True
    return each, hashed


@frozen
class Verdict:
    """Whether the project is trusted, and if not, why (for the messages)."""

    trusted: bool
    allowed_before: bool = False  # a record exists but no longer matches
    changed: tuple[str, ...] = ()  # files edited, added or removed since `allow`
    # When trusted: each hashed file's SHA-256 as allowed, so team plugin code can be
    # run from bytes that match it (buildpolicy.engine.teamcode), not from a later edit.
    digests: dict[str, str] = field(factory=dict, eq=False)


def check(policy_set, state_dir: Path) -> Verdict:
    """Whether the user allowed the project's files as they are in ``policy_set``.

    Compares the record with the digests of the compiled files (and of the
    team plugin modules, hashed only when their stat changed; the record's stat
    tokens are then refreshed so the next run is cheap again).
    """
    if not policy_set.profile_path:
        return Verdict(True)
    path = record_path(state_dir, policy_set.profile_path)
    record = _read_record(path)
    if record is None:
        return Verdict(False)
    recorded = record["files"]
    each, hashed = _current_digests(policy_set, recorded)
    if overall_digest(each) == record.get("sha256"):
        if hashed:
            try:
                _write_record(path, policy_set.profile_path, record["sha256"], each)
            except OSError:
                pass  # only the next run's speed depends on it
        return Verdict(True, digests=each)
    changed = sorted(
        {f for f in each if not isinstance(recorded.get(f), dict) or recorded[f].get("sha256") != each[f]}
        | {f for f in recorded if f not in each}
    )
    return Verdict(False, allowed_before=True, changed=tuple(changed))


def allow(policy_set, state_dir: Path) -> Path:
    """Record the digest of the project's files as compiled into ``policy_set``; return the record's path."""
    if not policy_set.profile_path:
        raise BuildpolicyError("no buildpolicy.toml here or in any parent directory: nothing to allow")
    each, _ = _current_digests(policy_set, {})
    path = record_path(state_dir, policy_set.profile_path)
    try:
        _write_record(path, policy_set.profile_path, overall_digest(each), each)
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


def refusal(findings, policy_set, verdict: Verdict, refused: bool = True) -> BuildpolicyError:
    """The error of ``env``/``exec`` (exit 2): every untrusted item, where it is (one error
    each), what changed (a note) and the fix (a help).

    With ``refused=False`` (``check``) each item says that ``env`` and ``exec``
    would refuse it, rather than that this command does.
    """
    root = str(Path(policy_set.profile_path).parent)
    if verdict.allowed_before:
        why = "the project's files changed since `buildpolicy allow`"
    else:
        why = "the project's policy files are not trusted"
    verb = "refused" if refused else "`env` and `exec` refuse it"
    messages: list = [f.diagnostic(f"; {verb}: {why}") for f in findings]
    notes = ["changed since `buildpolicy allow`: " + ", ".join(verdict.changed)] if verdict.changed else []
    fix = (f"review them, then run `{ALLOW_FIX}` in {root} to trust buildpolicy.toml and its policy files as they are now "
           "(any edit needs a new `buildpolicy allow`; `buildpolicy deny` revokes it)")
    return BuildpolicyError(messages, notes=notes, helps=[fix])


def warnings_for(findings, verdict: Verdict) -> list[str]:
    """What commands that do not refuse say instead (one warning per untrusted item)."""
    state = "changed since `buildpolicy allow`" if verdict.allowed_before else "not trusted"
    out = [f"{f.diagnostic()} (project files {state}: `env`/`exec` refuse; run `{ALLOW_FIX}`)" for f in findings]
    skipped = [f.name for f in findings if f.kind == "plugin"]
    if skipped:
        out.append(f"team-local plugin(s) not loaded until `{ALLOW_FIX}`: {', '.join(skipped)}")
    return out
