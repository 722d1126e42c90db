"""The ``sccache`` decision with a shared backend or sccache-dist (DESIGN §12).

Called by the ``sccache`` plugin once it has decided that sccache runs and the
``sccache_backend`` knob names a shared backend or ``sccache_dist_scheduler``
names a scheduler. Statuses:

- ``enabled:<backend>`` (``enabled:redis``, ``enabled:s3``…), with ``+dist``
  when sccache-dist is on (``enabled:redis+dist``, ``enabled:local+dist``);
- ``fallback-local:<backend>-down`` (the backend is never handed to sccache;
  the build goes on with the local disk cache), ``+dist`` when the scheduler is up;
- ``fallback-local:dist-down``: the backend is up (or local) but the scheduler
  is not: every compilation runs here.

``exec`` probes the backend and the scheduler (``reach``, ``dist``) and records
the answers; ``env`` and ``explain`` read the recorded answers and never touch
the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from buildpolicy.model import Decision
from buildpolicy.run.cache import backends, dist, keys, reach, server

WRAPPER = "RUSTC_WRAPPER"
CONF_VAR = "SCCACHE_CONF"
PROBING_COMMANDS = ("exec", "cache")
# sccache settings a caller may carry that its server reads at start: part of the configuration.
_SERVER_SETTINGS_SKIP = set(backends.BACKEND_VARIABLES) | {server.UDS_VAR, "SCCACHE_SERVER_PORT"}
REMOTE_COMPILATIONS = (
    "may run on a build server: rustc compilations sccache caches (--emit link, library crates) that miss "
    "the cache; sccache decides per compilation",
    "always run here: binaries and tests being linked, build scripts running, incremental compilations, "
    "cargo check's metadata-only compilations, and any compilation the build server fails (retried here)",
)


def server_settings(environ) -> dict[str, str]:
    """The caller's other ``SCCACHE_*`` settings (disk dir, size, idle timeout, log…)."""
    return {k: v for k, v in environ.items() if k.startswith("SCCACHE_") and k not in _SERVER_SETTINGS_SKIP}


def private_socket(backend: backends.Backend, sccache: str, environ, cache_dir, conf: Path | None = None):
    """The server socket of this configuration (backend, sccache binary, the client configuration
    file of sccache-dist, the caller's other sccache settings)."""
    settings = server_settings(environ)
    if conf is not None:
        settings[CONF_VAR] = str(conf)
    return server.socket_path(cache_dir, backends.identity(backend, sccache, settings), environ)


def probed(ctx, key: str, ask) -> tuple[reach.Reach | None, str]:
    """``key``'s reachability for this run: ``ask(timeout)`` under ``exec``/``cache``, else the recorded result."""
    if getattr(ctx.facts, "hermetic", False):
        return reach.Reach(True, "policy test: never probed, taken as up", 0.0, 0.0), "assumed"
    if ctx.command in PROBING_COMMANDS:
        result = reach.ask_and_record(key, ask, ctx.state_dir, **timeouts(ctx))
        if hasattr(ctx, "not_replayable"):
            ctx.not_replayable("a shared sccache backend or sccache-dist scheduler was probed")
        return result, "probed"
    records = reach.Records(ctx.state_dir)
    result = records.get(key)
    if hasattr(ctx, "depends_on_file"):
        ctx.depends_on_file(records.path)
    if ctx.command == "env" and (result is None or not result.ok):
        from buildpolicy.run.cache import refresh

        refresh.start(key, ctx.state_dir, refresh.cwd_of(ctx), ctx.environ)
    return result, "recorded"


def backend_reach(ctx, backend: backends.Backend) -> tuple[reach.Reach | None, str]:
    """The backend's reachability for this run: probed under ``exec``, else the recorded result."""
    return probed(ctx, backend.probe_key, lambda timeout: reach.probe(backend, ctx.environ, timeout))


def timeouts(ctx) -> dict[str, float]:
    """The remote hosts' probe timeouts and down-TTL (DESIGN §6), as ``reach.ask_and_record`` takes them."""
    return {"tcp_timeout": _knob(ctx, "remote_tcp_timeout", 1.0),
            "recovery_timeout": _knob(ctx, "remote_recovery_timeout", 0.3),
            "down_ttl": _knob(ctx, "remote_down_ttl", 300.0)}


def _knob(ctx, name: str, default):
    try:
        value = ctx.knob(name)
    except KeyError:
        return default
    return default if value is None else value


def _not_recorded(ctx) -> str:
    if ctx.command == "env":
        return ("no probe of it is recorded yet (a prompt never waits on the network: `env` has started one in the "
                "background, and `buildpolicy cache` or `buildpolicy exec` probe it too)")
    return "no probe of it is recorded yet (`buildpolicy cache` or `buildpolicy exec` probes it; a prompt never waits " \
           "on the network)"


@dataclass(frozen=True)
class DistState:
    """sccache-dist for this run: on (with the client configuration written) or why not."""

    on: bool
    detail: str
    conf: Path | None = None


def dist_state(ctx) -> DistState | None:
    """None without a scheduler; else whether it is up and, when it is, the client configuration."""
    scheduler = dist.parse_scheduler(_knob(ctx, "sccache_dist_scheduler", ""))
    if scheduler is None:
        return None
    where = f"sccache_dist_scheduler = {scheduler.url} ({ctx.knob_source('sccache_dist_scheduler')})"
    reference = _knob(ctx, "sccache_dist_token", "") or None
    try:
        token = dist.token_of(reference, ctx.environ)
    except backends.BackendError as exc:
        ctx.warn(f"sccache_dist_token ({ctx.knob_source('sccache_dist_token')}): {exc}; compiling here")
        return DistState(False, f"{where} is not used: its token cannot be read ({exc})")
    if reference and reference.startswith("file:") and hasattr(ctx, "depends_on_file"):
        ctx.depends_on_file(reference[5:])
    result, how = probed(ctx, scheduler.probe_key, lambda timeout: dist.probe(scheduler, token, timeout))
    if result is None:
        return DistState(False, f"{where} is not used: {_not_recorded(ctx)}")
    if not result.ok:
        return DistState(False, f"{where} is not used: {'down' if how == 'probed' else 'recorded down'}: "
                                f"{result.reason}")
    from buildpolicy.run.cache import toolchain

    toolchains = toolchain.packaged(ctx.cache_dir)
    if hasattr(ctx, "depends_on_file"):
        ctx.depends_on_file(toolchain.directory(ctx.cache_dir))
    try:
        conf = dist.write_conf(ctx.cache_dir, dist.conf_text(scheduler, token, dist.dist_cache_dir(ctx.cache_dir),
                                                             toolchains))
    except OSError as exc:
        return DistState(False, f"{where} is not used: no private place for its client configuration ({exc})")
    if hasattr(ctx, "depends_on_file"):
        ctx.depends_on_file(conf)
    packed = (f"{len(toolchains)} packaged toolchain(s) listed" if toolchains else "no toolchain packaged yet")
    seen = {"probed": "probed now", "recorded": "recorded up"}.get(how, "assumed up")
    return DistState(True, f"{where}, {seen}: {result.reason}; {CONF_VAR}={conf} ({packed}; `exec` packages the "
                           "build's toolchain once, before cargo, for every later build and project)", conf)


def decide(ctx, sccache: str, why: str) -> Decision:
    """The shared-backend and sccache-dist statuses of the module docstring, with their environment."""
    backend = backends.parse(_knob(ctx, "sccache_backend", "local"))
    distributed = dist_state(ctx)
    conf = distributed.conf if distributed is not None and distributed.on else None
    suffix = "+dist" if conf is not None else ""
    dist_note = f"; {distributed.detail}" if distributed is not None else ""
    details = REMOTE_COMPILATIONS if conf is not None else ()
    others = tuple(v for v in backends.BACKEND_VARIABLES if v not in dict(backend.variables))
    unset = tuple(v for v in (*others, "SCCACHE_SERVER_PORT") if not (conf is not None and v == CONF_VAR))

    def local_env() -> tuple[dict[str, str], str]:
        set_env = {WRAPPER: sccache}
        if conf is not None:
            set_env[CONF_VAR] = str(conf)
        try:
            # A private server for the local configuration too: a server on the default
            # port may be another one's, started with other settings.
            local = private_socket(backends.parse("local"), sccache, ctx.environ, ctx.cache_dir, conf)
            set_env[server.UDS_VAR] = str(local)
            return set_env, f"its own server on {local}"
        except OSError as exc:
            return set_env, f"sccache's default server (no private socket: {exc})"

    if not backend.shared:
        set_env, where = local_env()
        if conf is None:
            return Decision("sccache", sccache, "fallback-local:dist-down",
                            f"{why}{dist_note}; every compilation runs here, with the local disk cache through "
                            f"{where}", set_env=set_env, unset=unset, force=True)
        return Decision("sccache", sccache, "enabled:local+dist",
                        f"{why}; sccache_backend = local{dist_note}; the local disk cache through {where}",
                        set_env=set_env, unset=unset, force=True, details=details)

    source = ctx.knob_source("sccache_backend")
    result, how = backend_reach(ctx, backend)

    def fallback(problem: str) -> Decision:
        set_env, where = local_env()
        return Decision(
            "sccache", sccache, f"fallback-local:{backend.kind}-down{suffix}",
            f"{why}; sccache_backend = {backend.display} ({source}) is not used: {problem}; "
            f"sccache uses its local disk cache through {where}: {WRAPPER}={sccache}{dist_note}",
            set_env=set_env, unset=unset, force=True, details=details)

    if result is None:
        return fallback(_not_recorded(ctx))
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
    if conf is not None:
        set_env[CONF_VAR] = str(conf)
    try:
        set_env[server.UDS_VAR] = str(private_socket(backend, sccache, ctx.environ, ctx.cache_dir, conf))
        local, _ = local_env()
        switch = keys.Fallback(str(reach.down_marker(ctx.state_dir, backend.probe_key)), local.get(server.UDS_VAR),
                               tuple(sorted({*dict(backend.variables), *dict(backend.secrets)})))
        wrapper = keys.ensure_wrapper(ctx.cache_dir, sccache, ctx.fact("host.triple"), backend.secrets, switch)
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
              "which differ per machine and would split the shared cache's keys, and sends the compilations to "
              "the local server once a probe finds the backend down (a backend that dies mid-build)"
              f"{dist_note}")
    if distributed is not None and conf is None:
        return Decision("sccache", sccache, "fallback-local:dist-down", reason, set_env=set_env, unset=unset,
                        force=True)
    return Decision("sccache", sccache, f"enabled:{backend.kind}{suffix}", reason, set_env=set_env, unset=unset,
                    force=True, details=details)
