"""The ``sccache`` decision with a shared backend (DESIGN §12).

Called by the ``sccache`` plugin once it has decided that sccache runs and the
``sccache_backend`` knob names a shared backend. Statuses: ``enabled:<backend>``
(``enabled:redis``, ``enabled:s3``…) and ``fallback-local:<backend>-down``
(the backend is never handed to sccache; the build goes on with the local disk
cache). ``exec`` probes the backend (``reach``) and records the answer; ``env``
and ``explain`` read the recorded answer and never touch the network.
"""

from __future__ import annotations

from buildpolicy.model import Decision
from buildpolicy.run.cache import backends, keys, reach, server

WRAPPER = "RUSTC_WRAPPER"
PROBING_COMMANDS = ("exec", "cache")
# sccache settings a caller may carry that its server reads at start: part of the configuration.
_SERVER_SETTINGS_SKIP = set(backends.BACKEND_VARIABLES) | {server.UDS_VAR, "SCCACHE_SERVER_PORT"}


def server_settings(environ) -> dict[str, str]:
    """The caller's other ``SCCACHE_*`` settings (disk dir, size, idle timeout, log…)."""
    return {k: v for k, v in environ.items() if k.startswith("SCCACHE_") and k not in _SERVER_SETTINGS_SKIP}


def private_socket(backend: backends.Backend, sccache: str, environ, cache_dir):
    """The server socket of this configuration (backend, sccache binary, the caller's other sccache settings)."""
    identity = backends.identity(backend, sccache, server_settings(environ))
    return server.socket_path(cache_dir, identity, environ)


def backend_reach(ctx, backend: backends.Backend) -> tuple[reach.Reach | None, str]:
    """The backend's reachability for this run: probed under ``exec``, else the recorded result."""
    if getattr(ctx.facts, "hermetic", False):
        return reach.Reach(True, "policy test: backends are never probed, taken as up", 0.0, 0.0), "assumed"
    if ctx.command in PROBING_COMMANDS:
        result = reach.probe_and_record(
            backend, ctx.environ, ctx.state_dir, tcp_timeout=_knob(ctx, "remote_tcp_timeout", 1.0),
            recovery_timeout=_knob(ctx, "remote_recovery_timeout", 0.3), down_ttl=_knob(ctx, "remote_down_ttl", 300.0))
        if hasattr(ctx, "not_replayable"):
            ctx.not_replayable("a shared sccache backend was probed")
        return result, "probed"
    records = reach.Records(ctx.state_dir)
    result = records.get(backend.probe_key)
    if hasattr(ctx, "depends_on_file"):
        ctx.depends_on_file(records.path)
    if ctx.command == "env" and (result is None or not result.ok):
        from buildpolicy.run.cache import refresh

        refresh.start(backend.probe_key, ctx.state_dir, refresh.cwd_of(ctx), ctx.environ)
    return result, "recorded"


def _knob(ctx, name: str, default):
    try:
        value = ctx.knob(name)
    except KeyError:
        return default
    return default if value is None else value


def decide(ctx, sccache: str, why: str) -> Decision:
    """``enabled:<backend>`` with the backend's variables and private server, or ``fallback-local:<backend>-down``."""
    backend = backends.parse(ctx.knob("sccache_backend"))
    source = ctx.knob_source("sccache_backend")
    result, how = backend_reach(ctx, backend)
    others = tuple(v for v in backends.BACKEND_VARIABLES if v not in dict(backend.variables))

    def fallback(problem: str) -> Decision:
        set_env = {WRAPPER: sccache}
        try:
            # A private server for the local configuration too: a server on the default
            # port may be another one's, started with the backend that is down.
            set_env[server.UDS_VAR] = str(private_socket(backends.parse("local"), sccache, ctx.environ, ctx.cache_dir))
            where = f"its own server on {set_env[server.UDS_VAR]}"
        except OSError as exc:
            where = f"sccache's default server (no private socket: {exc})"
        return Decision(
            "sccache", sccache, f"fallback-local:{backend.kind}-down",
            f"{why}; sccache_backend = {backend.display} ({source}) is not used: {problem}; "
            f"sccache uses its local disk cache through {where}: {WRAPPER}={sccache}",
            set_env=set_env, unset=(*others, "SCCACHE_SERVER_PORT"), force=True)

    if result is None:
        return fallback("no probe of it is recorded yet (a prompt never waits on the network: `env` has started "
                        "one in the background, and `buildpolicy cache` or `buildpolicy exec` probe it too)"
                        if ctx.command == "env" else
                        "no probe of it is recorded yet (`buildpolicy cache` or `buildpolicy exec` probes it; "
                        "a prompt never waits on the network)")
    if not result.ok:
        return fallback(f"{'down' if how == 'probed' else 'recorded down'}: {result.reason}")
    set_env = dict(backend.variables)
    try:
        # Checked here, resolved by the key wrapper when sccache runs: the secret itself is
        # never in buildpolicy's output (env, explain, exec --dry-run) nor in its records.
        for _variable, reference in backend.secrets:
            backends.resolve_reference(reference, ctx.environ)
    except backends.BackendError as exc:
        ctx.warn(f"sccache_backend ({source}): {exc}; using the local disk cache")
        return fallback(f"its credentials cannot be read ({exc})")
    if backend.secrets and hasattr(ctx, "depends_on_file"):
        for _variable, reference in backend.secrets:
            if reference.startswith("file:"):
                ctx.depends_on_file(reference[5:])
    try:
        set_env[server.UDS_VAR] = str(private_socket(backend, sccache, ctx.environ, ctx.cache_dir))
        wrapper = keys.ensure_wrapper(ctx.cache_dir, sccache, ctx.fact("host.triple"), backend.secrets)
    except OSError as exc:
        return fallback(f"no private place for its server socket and key wrapper ({exc})")
    if hasattr(ctx, "depends_on_file"):
        ctx.depends_on_file(wrapper)
    set_env[WRAPPER] = str(wrapper)
    seen = "probed now" if how == "probed" else ("recorded up" if how == "recorded" else "assumed up")
    reason = (f"{why}; sccache_backend = {backend.display} ({source}), {seen}: {result.reason}"
              f"{f' in {result.seconds * 1000:.1f} ms' if result.seconds else ''}; own server on "
              f"{set_env[server.UDS_VAR]} (sccache reads its settings only at server start); "
              f"{WRAPPER}={wrapper} runs {sccache} without {', '.join(keys.STRIPPED)} or the linker variable, "
              "which differ per machine and would split the shared cache's keys")
    unset = (*others, "SCCACHE_SERVER_PORT")
    return Decision("sccache", sccache, f"enabled:{backend.kind}", reason, set_env=set_env, unset=unset,
                    force=True)
