"""The ``remote`` decision and remote ``exec`` (DESIGN §6 ``remote``).

With the knob off (the default) this plugin costs one knob lookup: the
probing and planning code in ``buildpolicy.run.remote`` is imported only when
remote builds are on.
"""

from __future__ import annotations

from buildpolicy import hookimpl
from buildpolicy.model import Decision, KnobSpec

# Decisions depend only on what is read through the DecideContext (and the
# conditions and files declared there): a warm `env` may be replayed (buildpolicy.replay).
BUILDPOLICY_REPLAYABLE = True


def _check(name):
    # Knob checks run during knob resolution: import the module only when a value is given.
    def check(value):
        from buildpolicy.run.remote import hosts

        return getattr(hosts, name)(value)

    return check


@hookimpl
def buildpolicy_declare_knobs():
    """Declare the remote knobs of the design, plus where and what to sync."""
    on_off = ("on", "off")
    return [
        KnobSpec("remote", "enum", default="off", values=on_off, description="build on a remote host when one is up"),
        KnobSpec("remote_hosts", "list", default=(), check=_check("check_hosts"),
                 description="build hosts (ssh names), tried in this order"),
        KnobSpec("remote_fallback", "enum", default="local", values=("local", "error"),
                 description="no host up: build here (local) or exit 75 (error)"),
        KnobSpec("remote_tcp_timeout", "seconds", default=1.0, minimum=0.01,
                 description="TCP probe timeout for a host with no recent failure"),
        KnobSpec("remote_recovery_timeout", "seconds", default=0.3, minimum=0.01,
                 description="TCP probe timeout while a failure within remote_down_ttl is recorded"),
        KnobSpec("remote_down_ttl", "seconds", default=300.0, minimum=0,
                 description="how long a failed host counts as recently down"),
        KnobSpec("remote_tcp_probe", "enum", default="on", values=on_off,
                 description="TCP-probe direct hosts before the ssh preflight"),
        KnobSpec("remote_connect_timeout", "seconds", default=5.0, minimum=1,
                 description="ssh ConnectTimeout (whole seconds) of the preflight and the remote run"),
        KnobSpec("remote_ssh_config", "string", description="ssh config file passed as -F (default: ssh's own)"),
        KnobSpec("remote_sync_back", "enum", default="auto", values=("auto", "on", "off"),
                 description="bring artifacts back after the remote run: auto = for cargo build only"),
        KnobSpec("remote_dir", "string", default=".cache/buildpolicy/remote", check=_check("check_remote_dir"),
                 description="where trees go on the host (relative to the remote home, or absolute)"),
        KnobSpec("remote_env", "list", default=(), check=_check("check_env_names"),
                 description="caller variables sent to the remote build besides the decided ones"),
    ]


@hookimpl
def buildpolicy_decide(ctx):
    """Decide the build host: ``disabled`` (knob off), ``remote:<host>`` or ``local:<why>``."""
    if ctx.knob("remote") != "on":
        return Decision("remote", None, "disabled", f"knob remote = off ({ctx.knob_source('remote')})")
    from buildpolicy.run.remote.probe import decision

    return decision(ctx)


@hookimpl
def buildpolicy_wrap_exec(plan, ctx):
    """Run a cargo build on the chosen host (sync, run, sync back); exit 75 when required and none is up."""
    if ctx.knob("remote") != "on":
        return None
    from buildpolicy.run.remote.sync import wrap_exec

    return wrap_exec(plan, ctx)
