"""``buildpolicy status``: trust, profile, replay state and the last build here, in five lines (as ``direnv status``)."""

from __future__ import annotations

import json
import os
import sys

from buildpolicy.errors import BuildpolicyError

HELP = "show this project's trust, profile, warm-replay state and last build (five lines)"

# The argument lists of the `env` runs a prompt makes: the hook's, then a plain `eval "$(buildpolicy env)"`.
PROMPT_INVOCATIONS = (("env", "--shell", "bash", "--hook"), ("env", "--shell", "zsh", "--hook"),
                      ("env", "--shell", "fish", "--hook"), ("env",))


def add_arguments(parser) -> None:
    """This command's arguments."""
    parser.add_argument("path", nargs="?", metavar="PATH", help="the project directory (default: here)")
    parser.add_argument("--format", default="text", help="text (default) or json")


def run(args, command_argv) -> int:
    """Print the five lines (or JSON); a broken project is reported in them, not as an error."""
    from buildpolicy.commands.common import project_dir

    if command_argv is not None:
        raise BuildpolicyError("status takes no command after `--`")
    if args.format not in ("text", "json"):
        raise BuildpolicyError(f"status: unknown --format {args.format!r}; allowed: text, json")
    directory = project_dir(args.path)
    environ = dict(os.environ)
    report = {"directory": str(directory), **_policy_state(directory, environ), "replay": _replay_state(directory),
              "last_build": _last_build(directory, environ)}
    if args.format == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    trust = report["trust"]
    last = report["last_build"]
    lines = [
        f"project:    {report['project'] or 'none here (built-in, site and user policies only)'}",
        f"trust:      {trust['summary']}",
        f"profile:    {report['profile']['summary']}",
        f"replay:     {report['replay']['summary']}",
        f"last build: {last['summary'] if last else 'none logged for this project (`buildpolicy log --all` lists every one)'}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _policy_state(directory, environ) -> dict:
    """The project, its trust and the profile ``env`` decides for (a load error is reported in them)."""
    from buildpolicy.engine.pipeline import Request, prepare
    from buildpolicy.paths import find_profile
    from buildpolicy.policy import trust

    try:
        profile_file = find_profile(directory)
        prepared = prepare(Request(cwd=directory, environ=environ, command="status"))
    except BuildpolicyError as exc:
        first = str(exc.messages[0]).splitlines()[0] if exc.messages else str(exc)
        error = f"cannot tell: the policies do not load ({first}; `buildpolicy check` lists every problem)"
        return {"project": None, "trust": {"allowed": False, "summary": error, "needs_allow": None, "changed": []},
                "profile": {"name": None, "summary": error}}
    policy_set = prepared.policy_set
    needs = len(prepared.trust_findings)
    changed: list[str] = []
    if profile_file is None:
        state = {"allowed": None, "summary": "nothing to allow (user and site policies are trusted)"}
    else:
        verdict = trust.check(policy_set, prepared.paths.state_dir)
        changed = list(verdict.changed)
        if verdict.trusted and trust.record_path(prepared.paths.state_dir, str(profile_file)).exists():
            summary = "allowed"
        elif verdict.allowed_before:
            summary = (f"not allowed: {len(changed)} file(s) changed since `buildpolicy allow` "
                       f"({', '.join(os.path.basename(f) for f in changed[:3])}{', …' if len(changed) > 3 else ''})")
        else:
            summary = "not allowed"
        if summary != "allowed":
            summary += (f"; {needs} setting(s) need it, so `env`/`exec` refuse until `buildpolicy allow`" if needs
                        else "; nothing here needs it")
        state = {"allowed": summary == "allowed", "summary": summary}
    default = policy_set.default_profile
    where = "default_profile in buildpolicy.toml" if profile_file is not None and default != "dev" else "cargo's default"
    return {"project": str(profile_file.parent) if profile_file else None,
            "trust": {**state, "needs_allow": needs, "changed": changed},
            "profile": {"name": default, "summary": f"{default} ({where}; a cargo command line or --profile chooses "
                                                    "another)"}}


def _replay_state(directory) -> dict:
    """Whether the next prompt's ``env`` here replays its record (the warm path) or evaluates in full."""
    from buildpolicy.replay.check import still_valid
    from buildpolicy.replay.store import ENV_SWITCH, enabled, invocation_key, load

    environ = os.environ
    if not enabled(environ):
        return {"state": "off", "summary": f"off ({ENV_SWITCH}={environ.get(ENV_SWITCH)}): every prompt evaluates in full"}
    for argv in PROMPT_INVOCATIONS:
        try:
            record = load(invocation_key(list(argv), str(directory), environ), environ)
        except Exception:  # noqa: BLE001 - a missing or damaged record is "none"
            record = None
        if record is None:
            continue
        command = "buildpolicy " + " ".join(argv)
        from buildpolicy.facts.unknown import NotReplayable

        try:
            valid = still_valid(record)
        except (Exception, NotReplayable):  # noqa: BLE001 - as the replay itself: a full run
            valid = False
        if valid:
            return {"state": "warm", "invocation": command,
                    "summary": f"warm: the next `{command}` here replays its recorded output"}
        return {"state": "stale", "invocation": command,
                "summary": f"stale: something `{command}` depended on changed; the next prompt evaluates in full"}
    return {"state": "none", "summary": "no record for this directory and environment: the next prompt evaluates in full"}


def _last_build(directory, environ) -> dict | None:
    """The newest logged ``exec`` of this project, or None."""
    from buildpolicy.commands.log_cmd import _run_line
    from buildpolicy.engine.envstate import restore_baseline
    from buildpolicy.paths import Paths
    from buildpolicy.run import actionlog

    paths = Paths.from_environ(restore_baseline(environ)[0])
    entries, _skipped = actionlog.read_entries(paths.state_dir)
    root = actionlog.project_root(directory)
    mine = [entry for entry in entries if actionlog.in_project(entry, root)]
    if not mine:
        return None
    entry = mine[-1]
    return {"id": actionlog.run_id(entry), "started_at": entry.get("started_at"), "action": entry.get("action"),
            "profile": entry.get("profile"), "exit_code": entry.get("exit_code"),
            "duration_ms": entry.get("duration_ms"), "summary": _run_line(entry)}
