"""What ``buildpolicy cache`` reports: the backend, its reachability, its server's statistics."""

from __future__ import annotations

from typing import Any

from buildpolicy.run.cache import backends, reach, server
from buildpolicy.run.cache.decide import private_socket, timeouts


def report(result, *, zero: bool = False) -> dict[str, Any]:
    """Probe the backend of ``result``'s knobs, record the answer, and read (or zero) its server's stats.

    The server is never started here (a server start with a backend that is down
    costs sccache 30 s); with the local backend there is no private server, and
    sccache's default-port server, which buildpolicy did not start, is left alone.
    """
    ctx = result.context
    knob = result.knobs["sccache_backend"]
    backend = backends.parse(knob.value)
    sccache = result.facts.get("tool.sccache")
    data: dict[str, Any] = {"backend": backend.display, "kind": backend.kind, "source": ctx.knob_source("sccache_backend"),
                            "sccache": sccache, "decision": result.decisions["sccache"].status
                            if "sccache" in result.decisions else None}
    data["dist"] = _dist(result)
    decided = dict(result.decisions["sccache"].set_env) if "sccache" in result.decisions else {}
    if not backend.shared:
        data.update(reachable=True, reason="sccache's local disk cache", latency_ms=None, server=None, stats=None)
        if not (sccache and decided.get(server.UDS_VAR)):
            return data
    else:
        found = reach.probe_and_record(backend, ctx.environ, ctx.state_dir, **timeouts(ctx))
        data.update(reachable=found.ok, reason=found.reason, latency_ms=round(found.seconds * 1000, 2))
    if not sccache:
        data.update(server=None, stats=None)
        return data
    # The server of the configuration decided now (with sccache-dist's client configuration,
    # or the local one when the backend is down); else the backend's own.
    socket = decided.get(server.UDS_VAR) or str(private_socket(backend, sccache, ctx.environ, ctx.cache_dir))
    env = {**ctx.environ, **dict(backend.variables), **decided, server.UDS_VAR: socket}
    if decided.get(server.UDS_VAR) and not all(decided.get(k) == v for k, v in backend.variables):
        env = {k: v for k, v in env.items() if k not in dict(backend.variables)}  # the local fallback
    running = server.running(env)
    data["server"] = {"socket": socket, "running": running}
    data["stats"] = None
    if running:
        try:
            if zero:
                server.zero_stats(sccache, env)
                data["zeroed"] = True
            counts = server.counts(server.show_stats(sccache, env))
        except (OSError, ValueError) as exc:
            data["server"]["error"] = str(exc)
        else:
            looked_up = counts["cache_hits"] + counts["cache_misses"]
            counts["hit_rate"] = round(counts["cache_hits"] / looked_up, 4) if looked_up else None
            data["stats"] = counts
    return data


def _dist(result) -> dict[str, Any] | None:
    """The scheduler, probed and recorded (None without one)."""
    from buildpolicy.run.cache import backends, dist, toolchain
    from buildpolicy.run.cache.decide import _knob

    ctx = result.context
    scheduler = dist.parse_scheduler(_knob(ctx, "sccache_dist_scheduler", ""))
    if scheduler is None:
        return None
    try:
        token = dist.token_of(_knob(ctx, "sccache_dist_token", "") or None, ctx.environ)
    except backends.BackendError as exc:
        found = reach.Reach(False, f"its token cannot be read ({exc})", 0.0, 0.0)
    else:
        found = reach.ask_and_record(scheduler.probe_key, lambda timeout: dist.probe(scheduler, token, timeout),
                                     ctx.state_dir, **timeouts(ctx))
    return {"scheduler": scheduler.url, "reachable": found.ok, "reason": found.reason,
            "latency_ms": round(found.seconds * 1000, 2),
            "toolchains": [archive for _rustc, archive in toolchain.packaged(ctx.cache_dir)]}


def report_text(data: dict[str, Any]) -> str:
    """The report for people."""
    lines = [f"backend      {data['backend']} ({data['source']})"]
    if data.get("decision"):
        lines.append(f"decision     sccache = {data['decision']}")
    farm = data.get("dist")
    if farm:
        latency = f" in {farm['latency_ms']:.1f} ms" if farm.get("latency_ms") is not None else ""
        lines.append(f"dist         {farm['scheduler']}: {'up' if farm['reachable'] else 'NOT USED'}{latency}: "
                     f"{farm['reason']}; {len(farm['toolchains'])} packaged toolchain(s)")
    if data["kind"] == "local" and not data.get("server"):
        lines.append("reachable    yes (local disk cache; buildpolicy starts no private server for it)")
        return "\n".join(lines) + "\n"
    latency = f" in {data['latency_ms']:.1f} ms" if data.get("latency_ms") is not None else ""
    lines.append(f"reachable    {'yes' if data['reachable'] else 'NO'}{latency}: {data['reason']}")
    if data.get("server") is None:
        lines.append("server       none (sccache is not on PATH)")
        return "\n".join(lines) + "\n"
    state = "running" if data["server"]["running"] else "not running (cargo starts it on the first compilation)"
    lines.append(f"server       {data['server']['socket']}: {state}")
    if data["server"].get("error"):
        lines.append(f"             {data['server']['error']}")
    stats = data.get("stats")
    if stats:
        rate = "n/a" if stats["hit_rate"] is None else f"{stats['hit_rate'] * 100:.1f} %"
        lines.append(f"hit rate     {rate} ({stats['cache_hits']} hits, {stats['cache_misses']} misses, "
                     f"{stats['non_cacheable_compilations']} not cacheable, {stats['cache_errors']} errors)")
        if farm:
            lines.append(f"distributed  {stats['dist_compiles']} compilation(s) ran on build servers")
        if data.get("zeroed"):
            lines.append("             statistics were zeroed")
    return "\n".join(lines) + "\n"
