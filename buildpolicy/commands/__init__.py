"""One module per command; each exposes ``run(args, command_argv) -> int``."""
