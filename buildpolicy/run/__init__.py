"""Stage 6, a build run and recorded: what ``exec`` does after the engine decided.

Owns the exec steps (``execute``: plan, gate, run, log), child processes and
signal forwarding (``childproc``), the host-wide build gate (``gate``), the
action log (``actionlog``), short locks for shared state files (``locks``),
where cargo builds (``workspace``), flag fingerprints (``fingerprints``), and
remote build hosts (``remote``: settings, probing and the down cache, the
sync/run plan, the per-exec session).

May import the base modules and the earlier stages (``policy``, ``facts``,
``engine``, ``output``, ``replay``). Built-in plugins (``buildpolicy_plugins``)
call into ``run.gate`` and ``run.remote`` while deciding: they are outside the
package and import it lazily. This ``__init__`` imports nothing.
"""
