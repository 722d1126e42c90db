"""Shared sccache backends and sccache-dist (DESIGN §12): which backend, which farm, is it up, which server.

Modules: ``backends`` (the ``sccache_backend`` knob: parsing, credentials
references, the variables sccache 0.16 reads, the configuration's identity),
``reach`` (protocol probes and the record of their results), ``server`` (the
private server socket of a configuration, ``--show-stats``/``--zero-stats``
against it, stopping it) and ``refresh`` (the background probe a prompt starts), ``decide`` (the
shared-backend ``sccache`` decision), ``report`` (``buildpolicy cache``) and
``keys`` (cache-key hygiene: the wrapper that
keeps machine-specific ``CARGO_*`` variables out of sccache's hash, and what
``doctor`` reports), ``dist`` (the sccache-dist knobs, the scheduler's probe,
the generated client ``SCCACHE_CONF``), ``toolchain`` (toolchain archives
packaged once by ``exec``) and ``watch`` (``exec``'s watch on a shared backend
while the build runs). This ``__init__`` imports nothing.

Nothing here probes the network on ``env``'s path: ``env`` and ``explain``
decide from the recorded probe results (``reach.Records``); ``exec`` and
``buildpolicy cache`` probe and record.
"""
