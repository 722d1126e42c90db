"""Run one command with the decided environment: what ``buildpolicy exec`` does.

The steps, in order:

1. evaluate: every decision, including where to build (``remote``);
2. plan: plugins may wrap the plan (``buildpolicy_wrap_exec``: the remote
   plugin turns a cargo build into sync/run/sync-back steps, or exits 75);
3. gate: a compile-heavy local cargo command takes the build gate, then the
   run is *evaluated again*, so the job count reflects the memory free after
   the wait (the remote choice is memoised for the whole exec, so the second
   pass neither probes again nor changes its mind);
4. sccache: with sccache-dist on, the build's toolchain is packaged once (and the run
   decided again when the client configuration did not list it yet); the private
   sccache server of the decided configuration is started; with a shared backend, a
   watch probes it while the command runs (``buildpolicy.run.cache``);
5. run: the command runs as a child that inherits stdin/stdout/stderr, with
   SIGINT/SIGTERM/SIGHUP/SIGQUIT forwarded (``buildpolicy.run.childproc``); exec
   exits with its status, or 128+N when signal N killed it;
6. log: one JSON line in the action log (``buildpolicy.run.actionlog``).

exec waits for the command because only a process that outlives it can log its
exit status and hold the gate exactly as long as it runs. With the knob
``action_log = off`` and no gate held, exec replaces itself with the command
(``os.execvpe``) instead.
"""

from __future__ import annotations

import json
import os
import sys
import time

from buildpolicy.errors import EXIT_REMOTE_UNAVAILABLE, BuildpolicyError
from buildpolicy.facts.cargo import is_cargo as _is_cargo_program
from buildpolicy.output.notes import print_warnings


def is_cargo(argv) -> bool:
    """Whether ``argv`` runs cargo (so its arguments are understood)."""
    return bool(argv) and _is_cargo_program(argv[0])


def _plan(request, cargo: bool, command_argv):
    """Evaluate ``request`` and let plugins wrap the plan: ``(result, plan)``."""
    from buildpolicy.engine.compose import EXEC_VAR
    from buildpolicy.engine.context import ExecPlan
    from buildpolicy.engine.pipeline import evaluate

    result = evaluate(request)
    argv = tuple(result.cargo_args) if cargo else tuple(command_argv)
    env = result.exec_env()
    env[EXEC_VAR] = str(os.getpid())  # a nested exec in the command adds no flag twice
    try:
        plan = result.plugins.wrap_exec(ExecPlan(argv=argv, env=env), result.context)
    except BuildpolicyError as exc:
        exc.result = result  # the decisions that led to a refusal, for the action log
        raise
    finally:
        # A plugin that failed in wrap_exec is reported after evaluate returned: pass it on.
        result.warnings.extend(w for w in result.plugins.warnings if w not in result.warnings)
    return result, plan


def _set_gate(result, status: str, reason: str) -> None:
    from buildpolicy.record import evolve

    decision = result.decisions.get("gate")
    if decision is not None:
        result.decisions["gate"] = evolve(decision, status=status, reason=reason)


def _gate_to_take(result, plan):
    """The gate decision when this exec must take the lock, else None.

    ``acquired`` before any lock is held means "to be taken"; a remote build
    needs no local gate (the compiling happens on the host).
    """
    decision = result.decisions.get("gate")
    if decision is None or decision.status != "acquired" or not decision.value:
        return None
    if plan.execution.get("mode") == "remote":
        _set_gate(result, "not-needed", f"the build runs on {plan.execution.get('host')}: the local gate guards this machine only")
        return None
    return decision


def execute(request, command_argv, *, dry_run: bool = False, quiet: bool = False) -> int:
    """Run ``command_argv`` as ``request`` decides (or print the plan with ``dry_run``);
    return its exit status. ``request.cargo_argv`` is the command when it runs cargo."""
    from buildpolicy.output.report import explain_json
    from buildpolicy.run.remote.session import probe_session
    from buildpolicy.run.remote.session import release as release_connections

    cargo = request.cargo_argv is not None
    started_at = time.time()
    clock = time.monotonic()  # the whole exec, gate wait included: the log's duration_ms

    def note(message: str) -> None:
        if not quiet:
            print(f"buildpolicy: note: {message}", file=sys.stderr, flush=True)

    with probe_session():
        try:
            result, plan = _plan(request, cargo, command_argv)
        except BuildpolicyError as exc:
            if exc.exit_code == EXIT_REMOTE_UNAVAILABLE and not dry_run and hasattr(exc, "result"):
                _log_refused(exc.result, request, command_argv, started_at, exc)
            raise
        gate = _gate_to_take(result, plan)
        if dry_run:
            if gate is not None:
                from buildpolicy.run.gate import GateLock, is_locked

                lock = GateLock(gate.value)
                now = f"held now ({lock.describe_holder()})" if is_locked(lock.path) else "free now"
                _set_gate(result, "acquired", f"dry run, nothing taken: exec would take {gate.value} ({now}) before deciding jobs")
            print_warnings(result.warnings, quiet)
            report = explain_json(result)
            report["argv"] = list(plan.argv)
            report["execution"] = dict(plan.execution)
            sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
            return 0

        lock = None
        waited = 0.0
        if gate is not None:
            lock, waited, result, plan = _take_gate(gate, request, result, plan, cargo, command_argv, note)
        if cargo and plan.execution.get("mode") != "remote":
            from buildpolicy.run.cache.toolchain import prepare

            if prepare(result, plan, request.cwd, note):  # sccache-dist: the client configuration now lists it
                result, plan = _plan(request, cargo, command_argv)
            _start_sccache(result, plan)
        governor = _governor_session(result, plan, request, quiet)
        if governor is None and _governor_on(result):  # it could not start: the static job count instead
            from buildpolicy.record import evolve

            result, plan = _plan(evolve(request, cli_sets=(*request.cli_sets, "governor=off")), cargo, command_argv)
            if gate is not None:
                _set_gate(result, "acquired", "taken before deciding jobs")
        if not quiet:  # a handled situation is said once per change, not at every build
            from buildpolicy.output.said import to_say_for

            print_warnings(to_say_for(result), quiet)
        if plan.execution.get("mode") != "remote":
            release_connections()  # ssh masters of the host probes serve a remote build only
        if not quiet:  # what was decided, in one line (-q silences it)
            from buildpolicy.output.summary import summary_line

            sys.stderr.write(summary_line(result))
            sys.stderr.flush()
        target = _target_dir(plan, request)
        _record_flags(result, plan, target)
        guard = _zero_tests_guard(result, plan)
        if (lock is None and governor is None and guard is None and plan.execution.get("mode") != "remote"
                and _knob(result, "action_log") == "off"):
            return _replace_process(plan)
        began = time.monotonic()
        summary = None
        from buildpolicy.run.cache.watch import start_for

        watch = start_for(result, plan)
        try:
            if plan.execution.get("mode") == "remote":
                from buildpolicy.run.remote.sync import run_plan

                status = run_plan(plan.execution, plan.env, note)
            else:
                from buildpolicy.run import childproc

                env = governor.open_env if governor is not None else plan.env
                status = childproc.run(plan.argv, env, watch=guard.feed if guard is not None else None)
                if guard is not None and status == 0 and guard.matched_nothing():
                    status = _zero_tests_failure(result)
        finally:
            if watch is not None and watch.stop() is not None:
                note(f"the sccache backend went down during the build ({watch.down.reason}): the remaining "
                     "compilations used the local cache")
            if governor is not None:
                summary = governor.close()
            if lock is not None:
                lock.release()
        duration = time.monotonic() - began
    _log(result, plan, started_at, time.monotonic() - clock, duration, waited, status, request, quiet, target, summary)
    return status


def _zero_tests_guard(result, plan):
    """A watch over the output of a filtered ``cargo test`` (``zero_tests`` on), else None."""
    from buildpolicy.record import evolve

    decision = result.decisions.get("zero_tests")
    if decision is None or not decision.status.startswith("on:"):
        return None
    if plan.execution.get("mode") == "remote":
        result.decisions["zero_tests"] = evolve(
            decision, status="not-applicable:remote", reason="the tests run on the build host; their output is not watched")
        return None
    from buildpolicy.run.testguard import ZeroTestsWatch

    return ZeroTestsWatch()


def _zero_tests_failure(result) -> int:
    """Say that the filter matched no test; the exit status to return instead of 0."""
    decision = result.decisions["zero_tests"]
    code = int(decision.value)
    # Printed even with -q: it is the reason the command fails.
    print(f"buildpolicy: error: the cargo test filter matched no test (every test binary ran 0 tests): exit {code}; "
          "check the test name or path, or allow it with --set zero_tests=allow (BUILDPOLICY_ZERO_TESTS=allow)",
          file=sys.stderr, flush=True)
    return code


def _start_sccache(result, plan) -> None:
    """Start the private sccache server of the decided configuration before cargo (one server per
    socket, even when cargo's first compilations or two execs would start it at once)."""
    from buildpolicy.run.cache.server import UDS_VAR, ensure_running

    decision = result.decisions.get("sccache")
    ours = decision is not None and decision.status.startswith(("enabled", "fallback-local:"))  # not external:
    if not ours or not decision.value or not plan.env.get(UDS_VAR) or not plan.env.get("RUSTC_WRAPPER"):
        return
    try:
        ensure_running(str(decision.value), plan.env)
    except Exception as exc:  # noqa: BLE001 - cargo's first compilation starts it then
        result.warnings.append(f"the private sccache server could not be started before cargo ({exc}); "
                               "cargo's first compilation starts it")


def _governor_on(result) -> bool:
    decision = result.decisions.get("governor")
    return decision is not None and decision.status.startswith("on:")


def _governor_session(result, plan, request, quiet):
    """The memory governor for this build, opened (``.open_env`` is the build's
    environment), or None when it does not apply or cannot start (a warning says why)."""
    from buildpolicy.record import evolve

    if not _governor_on(result):
        return None
    decision = result.decisions["governor"]
    if plan.execution.get("mode") == "remote":
        result.decisions["governor"] = evolve(
            decision, status="not-applicable:remote",
            reason=f"the build runs on {plan.execution.get('host')}: the governor watches this machine's memory")
        return None
    from buildpolicy.facts.cargo import parse_cargo_argv
    from buildpolicy.run.governor.session import GovernorSession
    from buildpolicy.run.workspace import manifest_path_arg, workspace_root

    manifest = manifest_path_arg(plan.argv)
    start = (request.cwd / manifest).parent if manifest else request.cwd
    workspace = workspace_root(start) or start

    def say(message: str) -> None:
        if not quiet:
            print(f"buildpolicy: governor: {message}", file=sys.stderr, flush=True)

    session = GovernorSession(
        state_dir=result.paths.state_dir, workspace=str(workspace), profile=result.profile,
        check=parse_cargo_argv(plan.argv).command in ("check", "clippy"), max_jobs=int(decision.value),
        prior_mib=int(_knob(result, "mib_per_job") or 1792), note=say,
    )
    try:
        session.open_env = session.open(dict(plan.env), cwd=request.cwd, argv=plan.argv)
    except OSError as exc:
        result.warnings.append(f"the memory governor cannot start ({exc.strerror or exc}): using the static job count")
        return None
    return session


def _knob(result, name: str):
    kv = result.knobs.get(name)
    return None if kv is None else kv.value


def _replace_process(plan) -> int:
    """Become the command (``os.execvpe``): no log to write and no gate to hold."""
    from buildpolicy.run import childproc

    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(plan.argv[0], list(plan.argv), dict(plan.env))
    except FileNotFoundError:
        print(f"buildpolicy: error: {plan.argv[0]}: command not found", file=sys.stderr)
        return childproc.EXIT_NOT_FOUND
    except OSError as exc:
        print(f"buildpolicy: error: {plan.argv[0]}: {exc.strerror or exc}", file=sys.stderr)
        return childproc.EXIT_CANNOT_RUN
    return 0  # not reached: the process is the command now


def _target_dir(plan, request) -> str | None:
    """The local target directory of a cargo command (where a remote build's artifacts land)."""
    if plan.execution.get("mode") == "remote":
        return plan.execution.get("target_dir")
    if not is_cargo(plan.argv):
        return None
    from buildpolicy.run.workspace import target_dir

    return str(target_dir(plan.argv, plan.env, request.cwd))


def _record_flags(result, plan, target: str | None) -> None:
    """Record a local build's flags for ``doctor``'s ``flags-changed`` check (never fatal).

    A remote build compiles into the host's target directory, not this one.
    """
    from buildpolicy.facts.cargo import parse_cargo_argv
    from buildpolicy.run.gate import COMPILE_COMMANDS

    if target is None or plan.execution.get("mode") == "remote":
        return
    if parse_cargo_argv(plan.argv).command not in COMPILE_COMMANDS:
        return
    from buildpolicy.run.fingerprints import record_build_flags

    record_build_flags(result, target)


def _take_gate(gate, request, result, plan, cargo, command_argv, note):
    """Take the gate lock, then evaluate again: ``(lock, seconds waited, result, plan)``."""
    from buildpolicy.record import evolve

    from buildpolicy.run.gate import GATE_VAR, GateLock, format_marker

    lock = GateLock(gate.value)
    interval = float(result.knobs["gate_note_interval"].value) if "gate_note_interval" in result.knobs else 30.0
    try:
        waited = lock.acquire(note, interval, argv=plan.argv, cwd=str(request.cwd))
    except OSError as exc:
        # A gate that cannot be opened must not stop the build: run ungated, and say so.
        _set_gate(result, "disabled", f"cannot use the gate lock {gate.value}: {exc.strerror or exc}; running without it")
        result.warnings.append(f"build gate {gate.value} unusable ({exc.strerror or exc}): running without it")
        return None, 0.0, result, plan
    # Jobs are decided after the gate: evaluate again, the marker telling the
    # gate plugin (and every nested exec) that this process holds it.
    environ = dict(request.environ)
    environ[GATE_VAR] = format_marker(lock.path, os.getpid())
    try:
        result, plan = _plan(evolve(request, environ=environ), cargo, command_argv)
    except BaseException:
        lock.release()
        raise
    how = f"after waiting {waited:.1f}s" if waited >= 0.05 else "without waiting"
    _set_gate(result, "acquired", f"took {lock.path} {how}; jobs were decided after that")
    return lock, waited, result, plan


def _rustflags(result) -> tuple[str | None, str]:
    """The rustflags variable buildpolicy composed, and its value."""
    for name, value in result.set_env.items():
        if name == "RUSTFLAGS" or (name.startswith("CARGO_TARGET_") and name.endswith("_RUSTFLAGS")):
            return name, value
    return None, ""


def _repository(request, plan) -> dict:
    """Where the run happened: the cargo workspace root (else the working directory) and
    the git remote URL of that checkout (credentials redacted), or None without one."""
    from buildpolicy.facts.git import remote_url
    from buildpolicy.run.workspace import manifest_path_arg, workspace_root

    manifest = manifest_path_arg(plan.argv) if is_cargo(plan.argv) else None
    start = (request.cwd / manifest).parent if manifest else request.cwd
    root = workspace_root(start) or request.cwd
    try:
        remote = remote_url(root, request.environ)
    except OSError:
        remote = None
    return {"root": str(root), "remote": remote}


def _log(result, plan, started_at, total, duration, waited, status, request, quiet, target, governor=None) -> None:
    """Append this run to the action log; a failure to log only warns.

    ``total`` is the whole exec (evaluation and gate wait included), ``duration``
    the command's own run time, ``waited`` the gate wait, all in seconds."""
    from buildpolicy.run import actionlog
    from buildpolicy.facts.cargo import parse_cargo_argv

    cargo = parse_cargo_argv(plan.argv)
    is_cargo_run = is_cargo(plan.argv)
    execution = dict(plan.execution)
    if execution.get("mode") == "remote":
        execution = {"mode": "remote", "host": execution.get("host")}
    else:
        execution = {"mode": execution.get("mode", "local")}  # "none": refused, nothing ran
    var, flags = _rustflags(result)
    entry = {
        "v": actionlog.VERSION,
        "started_at": _iso(started_at),
        "duration_ms": round(total * 1000, 1),
        "execution_duration_ms": round(duration * 1000, 1),
        "gate_wait_ms": round(waited * 1000, 1),
        "exit_code": status,
        "success": status == 0,
        "action": (cargo.command or "cargo") if is_cargo_run else os.path.basename(plan.argv[0]),
        "profile": result.profile,
        "execution": execution,
        "target_dir": target,
        "rustflags": flags,
        "rustflags_var": var,
        "decisions": {name: d.status for name, d in result.decisions.items()},
        "argv": actionlog.redact_argv(plan.argv),  # the log outlives the command: no tokens in it
        "cwd": str(request.cwd),
        "workspace": str(actionlog.project_root(request.cwd)),  # for `buildpolicy log --project`
        "repository": _repository(request, plan),
    }
    if governor:
        entry["governor"] = governor
    try:
        actionlog.append(result.paths.state_dir, entry)
    except OSError as exc:
        if not quiet:
            print(f"buildpolicy: warning: cannot write the action log: {exc.strerror or exc}", file=sys.stderr)


def _log_refused(result, request, command_argv, started_at, exc) -> None:
    """Log an exec refused with exit 75 (no usable host and remote_fallback = error)."""
    from buildpolicy.engine.context import ExecPlan

    plan = ExecPlan(argv=tuple(result.cargo_args) or tuple(command_argv), env=result.exec_env(),
                    execution={"mode": "none"})
    _log(result, plan, started_at, max(0.0, time.time() - started_at), 0.0, 0.0, exc.exit_code, request, True, None)


def _iso(epoch: float) -> str:
    import datetime

    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
