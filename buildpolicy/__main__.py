"""``python -m buildpolicy``: the same entry point as the console script."""

from buildpolicy.cli import run

run()
