"""The warm ``env`` replay: reuse a previous run's output while nothing it depended on changed.

``buildpolicy env`` runs at every shell prompt, and most prompts ask the same question
as the one before. A full run records what its output depended on; the next identical
invocation re-checks exactly that, and prints the recorded output when all of it holds:

- the invocation itself: the arguments, the working directory and the whole environment
  (except ``_`` and ``OLDPWD``, which every shell changes between prompts and no
  decision reads);
- every file and directory the run read, listed or looked for, by inode, size, mtime
  and ctime taken when it was read: the policy files of all layers and the directories
  listed to find them, the profile files looked for above the working directory, the
  trust record, files plugins name, the code of buildpolicy, its plugins and what they
  import, and the ``sys.path`` directories (installing or removing a plugin
  distribution changes them). A run during which one of them changed is not recorded;
- every fact the output depended on, probed again with the same probe functions: the
  exact value, or, where a rule or plugin only compared it with a constant
  (``memory.available < 8GiB``), the outcome of each such comparison. So free memory
  may drift between prompts without invalidating anything, and crossing a threshold a
  rule or plugin cares about does.

A run is recorded only when every plugin that decides something declares itself
replayable (``BUILDPOLICY_REPLAYABLE = True`` at module level: its decisions depend on
nothing but what it reads through its ``DecideContext``, the conditions it declares,
and the files it names with ``ctx.depends_on_file``) and none opted out for this run
(``ctx.not_replayable(why)``). A plugin whose decision ages names the time it stops
holding (``ctx.valid_until``: the remote decision, made from recorded probe results);
a replay after it runs in full. Facts overridden
with ``--facts``, plugin-declared facts, custom output formats and a probe that would
have to start a process all make the run not replayable. Anything unexpected while
replaying means "not replayed": the full run then decides, and records again.

The stage comes after the engine and the output: ``record`` turns a finished run
(``buildpolicy.engine.pipeline.Result``) and its printed output into a record,
``store`` keeps records by invocation, ``check`` replays one. It may import the base
modules, ``policy``, ``facts``, ``engine`` and ``output``; nothing earlier imports it
(``cli`` and the ``env`` command call it).

``check`` and ``store`` are the hot path of the warm case: standard library only, no
attrs, no pluggy, no policy loading. ``BUILDPOLICY_REPLAY=off`` turns it off.
"""
