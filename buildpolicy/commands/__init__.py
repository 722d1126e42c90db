"""One module per command, each exposing ``HELP``, ``add_arguments(parser)`` and
``run(args, command_argv) -> int``; ``common`` holds what they share.

Commands are thin: they parse arguments and call into the stages, which they may
all import. Only ``buildpolicy.cli`` imports them (by name, on demand). This
``__init__`` imports nothing.
"""
