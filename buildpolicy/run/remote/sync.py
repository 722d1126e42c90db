"""The remote exec plan: sync the tree to the host, run cargo there, bring artifacts back."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from buildpolicy.record import frozen
from buildpolicy.errors import EXIT_REMOTE_UNAVAILABLE, BuildpolicyError
from buildpolicy.run.remote.control import session_control
from buildpolicy.run.remote.hosts import ENV_NAME_PATTERN, NAME_PATTERN, host_problem, run_cwd, settings_from
from buildpolicy.run.remote.probe import assess

SYNC_BACK_COMMANDS = frozenset({"build"})
OUTSIDE_TARGET = ".buildpolicy-target"  # remote target dir when the local one is outside the tree
ROOT_VAR = "bp_root"  # shell variable of the remote script holding the remote tree
# Intermediate build files that stay on the host when artifacts come back.
SYNC_BACK_EXCLUDES = ("incremental/", ".fingerprint/", "build/", "deps/", ".cargo-lock")


# ------------------------------------------------------------------ the exec plan


def wrap_exec(plan, ctx):
    """Turn ``plan`` into a remote plan when a host was chosen; raise exit 75 per fallback.

    A non-cargo command is left alone: it runs here with ``BUILDPOLICY_REMOTE_HOST``
    set, for a wrapper script that does its own remote work.
    """
    result = assess(ctx)
    if result.host is None:
        if result.unavailable and ctx.knob("remote_fallback") == "error":
            raise BuildpolicyError(
                f"a remote build is required (remote_fallback = error) but no build host is usable: {result.reason}",
                EXIT_REMOTE_UNAVAILABLE,
            )
        return None
    if ctx.cargo_argv is None:
        return None
    return remote_plan(plan, ctx, result.host)


def _sync_root(cwd: Path, start: Path, environ: Mapping[str, str], git: str | None) -> Path:
    from buildpolicy.run.workspace import workspace_root

    workspace = workspace_root(start) or start
    if git:
        from buildpolicy.facts.subproc import run_text

        code, out, _ = run_text([git, "-C", str(start), "rev-parse", "--show-toplevel"], env=environ, cwd=cwd)
        top = Path(out.strip()) if code == 0 and out.strip() else None
        home = environ.get("HOME")
        # A dotfiles repository in $HOME would make "the tree" the whole home directory.
        if top is not None and top != Path("/") and (not home or top != Path(home)) and _inside(workspace, top):
            return top
    return workspace


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def project_dir_name(root: Path) -> str:
    """``<name>-<hash>``: readable, and unique per machine and tree (worktrees differ)."""
    import hashlib
    import socket

    name = re.sub(r"[^A-Za-z0-9_.-]", "_", root.name) or "root"
    if name[0] in ".-":
        name = "p" + name
    digest = hashlib.sha256(f"{socket.gethostname()}:{root}".encode()).hexdigest()[:12]
    return f"{name}-{digest}"


def _root_pattern(root: Path) -> re.Pattern:
    # The tree's path as a whole path component: /src/app must not match /src/application.
    return re.compile(re.escape(str(root)) + r"(?=$|[/:\s=,;])")


def quote_with_root(value: str, root: Path) -> str:
    """Quote ``value`` for the remote shell, with the local tree's path turned into ``"$bp_root"``."""
    import shlex

    parts = _root_pattern(root).split(value)
    if len(parts) == 1:
        return shlex.quote(value)
    return f'"${ROOT_VAR}"'.join(shlex.quote(part) if part else "" for part in parts)


@frozen
class RemoteEnv:
    """The environment sent to the host: what to export and unset, and what was left out."""

    exports: dict[str, str]  # name -> value (local paths still in it; quote_with_root rewrites)
    unset: tuple[str, ...]
    programs: dict[str, str]  # name -> program name, kept only if the host has that program
    dropped: dict[str, str]  # name -> why it is not sent


def remote_environment(env: Mapping[str, str], baseline: Mapping[str, str], ctx, extra: Sequence[str]) -> RemoteEnv:
    """Choose the variables the remote build gets.

    Only what buildpolicy decided travels (the difference between the exec
    environment and the caller's), plus the caller's variables named by the
    ``remote_env`` knob. Values made for this machine are handled:

    - ``BUILDPOLICY_*``: local bookkeeping (env state, remote host, gate), never sent;
    - ``TMPDIR``: a scratch directory under this machine's cache dir; the host
      uses its own temporary directory;
    - ``CARGO_BUILD_JOBS``: sized from this machine's memory and CPUs, so it is
      dropped unless the ``jobs`` knob set it on purpose (then it is sent);
    - ``CARGO_TARGET_DIR``/``CARGO_BUILD_TARGET_DIR``: replaced by the remote
      target directory the script exports;
    - a value that is the path of a program on this machine
      (``RUSTC_WRAPPER=/usr/bin/sccache``, ``CARGO_TARGET_<T>_LINKER=/usr/bin/clang``):
      sent as the program name, looked up on the host's PATH, and the variable
      is unset there when the host lacks the program (no sccache there means
      an unwrapped build, not a failed one);
    - any other value naming this machine's cache or state directory: dropped;
    - the local tree's path inside a value or argument becomes the remote tree's.
    """
    exports: dict[str, str] = {}
    programs: dict[str, str] = {}
    dropped: dict[str, str] = {}
    local_dirs = [str(ctx.cache_dir), str(ctx.state_dir)]
    jobs_knob = ctx.knobs["jobs"].value if "jobs" in ctx.knobs else None
    candidates = {name: value for name, value in env.items() if baseline.get(name) != value}
    for name in extra:
        if name in env:
            candidates[name] = env[name]
    for name, value in sorted(candidates.items()):
        if name.startswith("BUILDPOLICY_"):
            continue
        if not ENV_NAME_PATTERN.fullmatch(name):
            dropped[name] = "not a portable variable name"
        elif name == "TMPDIR":
            dropped[name] = "a directory on this machine; the host uses its own temporary directory"
        elif name == "CARGO_BUILD_JOBS" and jobs_knob is None:
            dropped[name] = "sized for this machine's memory and CPUs; cargo on the host picks its own (set the jobs knob to send one)"
        elif name in ("CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"):
            dropped[name] = "replaced by the remote target directory"
        elif _is_local_program(value):
            program = os.path.basename(value)
            if NAME_PATTERN.fullmatch(program):
                programs[name] = program
            else:
                dropped[name] = f"{value} is a program path on this machine"
        elif any(d and d in value for d in local_dirs):
            dropped[name] = f"{value!r} names this machine's buildpolicy cache or state directory"
        else:
            exports[name] = value
    unset = tuple(
        sorted(name for name in baseline if name not in env and not name.startswith("BUILDPOLICY_") and ENV_NAME_PATTERN.fullmatch(name))
    )
    return RemoteEnv(exports, unset, programs, dropped)


def _is_local_program(value: str) -> bool:
    """Whether ``value`` is the absolute path of an executable file here (``/usr/bin/sccache``)."""
    return os.path.isabs(value) and os.path.isfile(value) and os.access(value, os.X_OK)


def _rsync_e(argv: Sequence[str]) -> str:
    """Join an ssh command line for rsync's ``-e``, which splits on spaces and honours quotes."""
    words = []
    for word in argv:
        if word and not any(c in word for c in " \t'\""):
            words.append(word)
        elif "'" not in word:
            words.append(f"'{word}'")
        elif '"' not in word:
            words.append(f'"{word}"')
        else:
            raise BuildpolicyError(f"cannot pass {word!r} to rsync -e: it holds both quote characters")
    return " ".join(words)


def _rsync_host(host: str) -> str:
    user, at, name = host.rpartition("@")
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"  # an IPv6 address: rsync's host:path needs the brackets
    return f"{user}{at}{name}"


def _escape_pattern(path: str) -> str:
    # rsync matches a pattern literally unless it holds a wildcard; then a
    # backslash escapes. Git paths with *?[ need every special character escaped.
    if any(c in path for c in "*?["):
        return re.sub(r"([*?\[\\])", r"\\\1", path)
    return path


def ignored_paths(git: str, root: Path, environ: Mapping[str, str]) -> list[str] | None:
    """What git ignores under ``root`` (directories end in ``/``), or None without git."""
    import subprocess

    try:
        proc = subprocess.run(
            [git, "-C", str(root), "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"],
            env=dict(environ), stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return [p.decode("utf-8", "surrogateescape") for p in proc.stdout.split(b"\0") if p]


def remote_plan(plan, ctx, host: str):
    """The remote ``ExecPlan``: sync, run and sync-back steps, shown by ``exec --dry-run``."""
    import shlex

    from buildpolicy.engine.context import ExecPlan
    from buildpolicy.facts import parse_cargo_argv
    from buildpolicy.filestate import atomic_write
    from buildpolicy.run.workspace import manifest_path_arg, target_dir, target_dir_arg

    problem = host_problem(host)
    if problem:  # checked when the knob was read; checked again where it is used
        raise BuildpolicyError(f"remote host {problem}")
    cwd = run_cwd(ctx)
    argv = list(plan.argv)
    manifest = manifest_path_arg(argv)
    start = (cwd / manifest).parent.resolve() if manifest else cwd
    git = ctx.fact("tool.git")
    root = _sync_root(cwd, start, ctx.environ, git)
    remote_root = f"{ctx.knob('remote_dir').rstrip('/')}/{project_dir_name(root)}"
    workdir = os.path.relpath(cwd, root) if _inside(cwd, root) else "."

    local_target = target_dir(argv, plan.env, cwd)
    target_rel = os.path.relpath(local_target, root) if _inside(local_target, root) else OUTSIDE_TARGET
    # The remote script exports CARGO_TARGET_DIR itself; a --target-dir argument would fight it.
    _, spans = target_dir_arg(argv)
    args = [arg for index, arg in enumerate(argv) if index not in spans]

    renv = remote_environment(plan.env, ctx.environ, ctx, tuple(ctx.knob("remote_env") or ()))
    settings = settings_from(ctx, ctx.fact("tool.ssh"))
    # Every step rides the connection the preflight opened (one login per exec).
    control = session_control(ctx.environ)
    shared = control.options(settings.ssh, settings.ssh_options(), settings.ssh_config, host) if control else []
    ssh_base = [settings.ssh, *settings.ssh_options(), *shared]
    interactive = all(_isatty(fd) for fd in (0, 1, 2))
    # Bytes, rate and files of a sync for a person watching; nothing in a log or a pipe.
    progress = ["--info=progress2"] if _isatty(2) else []
    exports = dict(renv.exports)
    if not interactive and _isatty(2) and "CARGO_TERM_COLOR" not in plan.env:
        exports["CARGO_TERM_COLOR"] = "always"  # cargo sees a pipe over ssh -T, but our stderr is a terminal

    q = shlex.quote
    lines = [
        f"{ROOT_VAR}={q(remote_root)}",
        f'case ${ROOT_VAR} in /*) ;; *) {ROOT_VAR}=$HOME/${ROOT_VAR} ;; esac',
        'if [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi',
        f'cd "${ROOT_VAR}"' + ("" if workdir == "." else "/" + q(workdir)) + " || exit 1",
    ]
    if renv.unset:
        lines.append("unset " + " ".join(renv.unset))
    lines += [f"export {name}={quote_with_root(value, root)}" for name, value in sorted(exports.items())]
    lines.append(f'export CARGO_TARGET_DIR="${ROOT_VAR}"/{q(target_rel)}')
    for name, program in sorted(renv.programs.items()):
        note = f"buildpolicy: note: {program} is not installed on {host}: building without {name}"
        lines.append(
            f"if command -v {q(program)} >/dev/null 2>&1; then export {name}={q(program)}; "
            f"else unset {name}; echo {q(note)} >&2; fi"
        )
    command = ["cargo", *args[1:]] if args else ["cargo"]
    lines.append("exec " + " ".join(quote_with_root(arg, root) for arg in command))
    script = "\n".join(lines)

    rsync = ctx.fact("tool.rsync")
    rsync_e = _rsync_e(ssh_base)
    target = _rsync_host(host)
    sync = [rsync, "-a", "--delete", *progress, "-e", rsync_e, f"--rsync-path=mkdir -p {q(remote_root)} && rsync", "--exclude=.git"]
    if target_rel != OUTSIDE_TARGET:
        sync.append(f"--exclude=/{_escape_pattern(target_rel)}/")
    sync.append(f"--exclude=/{OUTSIDE_TARGET}/")
    # A Cargo.lock the host generated (the tree has none) survives --delete, so the
    # host does not resolve dependencies again at every build.
    sync.append("--filter=P Cargo.lock")
    ignored = ignored_paths(git, root, ctx.environ) if git and (root / ".git").exists() else None
    if ignored is not None:
        exclude_file = Path(ctx.cache_dir) / "remote" / f"{project_dir_name(root)}.exclude"
        atomic_write(exclude_file, b"".join(b"/" + _escape_pattern(p).encode("utf-8", "surrogateescape") + b"\0" for p in ignored))
        sync += ["--from0", f"--exclude-from={exclude_file}"]
        ignore_rule = f"git ls-files --ignored ({len(ignored)} paths, listed in {exclude_file})"
    else:
        sync.append("--filter=:- .gitignore")
        ignore_rule = "rsync --filter=':- .gitignore' (no git work tree)"
    sync += ["--", f"{root}/", f"{target}:{remote_root}/"]

    run = [*ssh_base, "-tt" if interactive else "-T", "--", host, script]

    cargo_command = parse_cargo_argv(argv).command
    mode = ctx.knob("remote_sync_back")
    sync_back = mode == "on" or (mode == "auto" and cargo_command in SYNC_BACK_COMMANDS)
    steps = [{"name": "sync", "argv": sync}, {"name": "run", "argv": run}]
    if sync_back:
        back = [rsync, "-a", *progress, "-e", rsync_e, *(f"--exclude={p}" for p in SYNC_BACK_EXCLUDES),
                "--", f"{target}:{remote_root}/{target_rel}/", f"{local_target}/"]
        steps.append({"name": "sync-back", "argv": back})
    execution = {
        "mode": "remote",
        "host": host,
        "root": str(root),
        "remote_dir": remote_root,
        "workdir": workdir,
        "target_dir": str(local_target),
        "remote_target_dir": f"{remote_root}/{target_rel}",
        "ignored": ignore_rule,
        "sync_back": sync_back,
        "env": dict(sorted(exports.items())),
        "unset": list(renv.unset),
        "programs": dict(renv.programs),
        "dropped": dict(renv.dropped),
        "script": script,
        "steps": steps,
    }
    return ExecPlan(argv=plan.argv, env=plan.env, execution=execution)


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def run_plan(execution: Mapping[str, Any], env: Mapping[str, str], note) -> int:
    """Run a remote plan's steps; return the build's exit status (or a failed step's).

    rsync's own output goes to stderr: stdout carries only the build's (``cargo
    run`` output must stay pipeable). Artifacts come back only after a
    successful build.
    """
    from buildpolicy.run import childproc

    host = execution["host"]
    steps = {step["name"]: step["argv"] for step in execution["steps"]}
    status = childproc.run(steps["sync"], env, stdout=2, label="rsync")
    if status != 0:
        note(f"error: sending {execution['root']} to {host} failed (rsync exit status {status})")
        return status
    status = childproc.run(steps["run"], env, label="ssh")
    if status != 0 or "sync-back" not in steps:
        return status
    try:
        Path(execution["target_dir"]).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        note(f"error: cannot create {execution['target_dir']}: {exc.strerror or exc}")
        return 1
    back = childproc.run(steps["sync-back"], env, stdout=2, label="rsync")
    if back != 0:
        note(f"error: built on {host}, but bringing the artifacts back failed (rsync exit status {back})")
        return back
    return 0
