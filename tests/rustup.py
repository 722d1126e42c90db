"""The machine's real rustup, for tests that run toolchains the way users do.

The machine image ships rustup with the stable and nightly toolchains; a test
module that needs them sets ``pytestmark = needs_rustup``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HOST = "x86_64-unknown-linux-gnu"
REAL_RUSTUP_HOME = Path(os.environ.get("RUSTUP_HOME") or Path.home() / ".rustup")
REAL_PROXY_DIR = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo") / "bin"

needs_rustup = pytest.mark.skipif(
    not (REAL_PROXY_DIR / "rustc").exists() or not (REAL_RUSTUP_HOME / "toolchains" / f"stable-{HOST}").is_dir(),
    reason="needs rustup with the stable toolchain (the machine image's)",
)
