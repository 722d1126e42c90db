"""Remote builds (DESIGN §6 ``remote``): choose a build host, then run cargo there.

Modules: ``hosts`` (settings from the knobs, host-name checks, ``ssh -G``
resolution), ``probe`` (TCP and ssh probes, the down cache, the ``remote``
decision), ``records`` (every probe's result, from which ``env`` decides
without the network), ``refresh`` and ``background`` (the detached refresh of
those records ``env`` starts), ``control`` (one shared ssh connection per
``exec``), ``sync`` (the sync/run/sync-back plan ``exec`` runs) and
``session`` (the per-``exec`` memo of host choices and the connections to
close). This ``__init__`` imports nothing.

Nothing here is imported unless the ``remote`` knob is on: ``buildpolicy env``
at a prompt pays for none of it.

Choosing a host
---------------
Hosts are tried in the order of ``remote_hosts``. Each is resolved with
``ssh -G`` (which prints ssh's effective configuration without touching the
network): host name, port, and any ProxyJump/ProxyCommand. A direct host is
TCP-probed with ``remote_tcp_timeout``, or with the shorter
``remote_recovery_timeout`` while the down cache records a failure less than
``remote_down_ttl`` seconds old (``remote_tcp_probe = off`` skips the probe). A
proxied host is not TCP-probed: the proxy, not the host, would answer. Then
``ssh -o BatchMode=yes -o ConnectTimeout=<remote_connect_timeout> HOST true``
checks that a non-interactive login works. Every host is probed at once, each
in its own thread, and the first reachable one *in the configured order*
wins: a list costs its slowest host, not the sum of them. No probe can hang:
each stage has a deadline the main thread enforces, even on a DNS lookup that
ignores timeouts.

Only ``exec``, ``explain`` and ``doctor`` probe. ``env`` runs at every
prompt and never waits on the network: it decides from the recorded results
of earlier probes (``records``) and starts a background refresh when they are
old or missing.

Every host name, configured or printed by ``ssh -G``, is checked before use
(letters, digits, ``.``, ``-``, ``_``, an optional ``user@``, or an IP
address; never a leading ``-``), and every ssh/rsync command line puts ``--``
before it.

The down cache
--------------
``$XDG_STATE_HOME/buildpolicy/remote-down.json`` maps an endpoint
(``hostname:port``, or ``proxy:<alias>``) to the time and reason of its last
failure; a success removes the entry. Updates are merged under a short lock
and written atomically, so many shells probing at once lose nothing; a
corrupt file is ignored and rebuilt.

Running there
-------------
``exec`` of ``cargo build|check|test|bench|run|doc|clippy|rustc|rustdoc``
with a host chosen becomes three steps, all visible in ``exec --dry-run``:

1. *sync*: ``rsync -a --delete`` of the source tree to
   ``<remote_dir>/<name>-<hash>/`` on the host (created if needed). The tree
   is the git work tree containing the project (so path dependencies inside
   the repository come along), or the cargo workspace when there is no git or
   the work tree is the home directory. What git ignores is not sent: ``git
   ls-files --others --ignored --exclude-standard --directory`` lists it
   exactly (negations, ``.git/info/exclude`` and the global excludes file
   included, force-added files kept) and rsync gets it as anchored excludes;
   without git, rsync's ``--filter=':- .gitignore'`` approximates it. ``.git``
   and the target directory are never sent. Excluded paths are also protected
   from ``--delete``, so the host keeps its own ``target/`` (incremental
   builds stay warm) while files deleted locally disappear remotely.
2. *run*: ``ssh HOST <script>``: the script sources ``~/.cargo/env`` when it
   exists, changes to the same relative directory, applies the decided
   environment and ``exec``\\ s cargo with the same arguments. Only variables
   buildpolicy decided are sent (set and unset), every piece quoted with
   ``shlex.quote``; the local environment is not. What only makes sense here
   is translated or dropped (see ``remote_environment``). ``remote_env``
   names caller variables to forward as well. The remote login shell must be
   POSIX-compatible (sh, bash, dash, zsh, ksh). With a terminal on all three
   standard streams ssh gets ``-tt`` (colours, progress, Ctrl-C reaches the
   remote cargo); otherwise ``-T`` keeps stdout and stderr apart.
3. *sync back* (``remote_sync_back``: ``auto`` means for ``build`` only): after
   a successful run, the remote target directory comes back into the local
   one, without cargo's intermediate files (``deps/``, ``build/``,
   ``incremental/``, ``.fingerprint/``): binaries, libraries, examples.
"""
