"""``python -m buildpolicy``: the same entry point as the console script."""

import sys

from buildpolicy.cli import main

sys.exit(main())
