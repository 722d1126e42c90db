"""``cli.exit_promptly``: the ``buildpolicy`` command skips interpreter teardown (a sixth of
a bare ``python -c pass``, more after a full evaluation) only when that loses nothing —
buffered output is written, ``atexit`` callbacks and non-daemon threads still run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# An object whose finalizer runs only at interpreter teardown: it tells which exit was taken.
_PRELUDE = """\
import sys
from buildpolicy.cli import exit_promptly

class Teardown:
    def __del__(self):
        sys.stdout.write("[teardown]")
        sys.stdout.flush()

marker = Teardown()
sys.stdout.write("output")  # buffered: stdout is a pipe
"""


def run(body: str) -> subprocess.CompletedProcess:
    # Without `site` (-S): a .pth file of the machine's may register an atexit callback of its
    # own (certifi's does), which would rightly send every case down the ordinary exit.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-S", "-c", _PRELUDE + body], capture_output=True, text=True,
                          timeout=60, env=env)


def test_nothing_left_at_exit_skips_teardown_and_keeps_output_and_status():
    proc = run("exit_promptly(3)\n")
    assert (proc.stdout, proc.returncode) == ("output", 3)


def test_an_atexit_callback_means_the_ordinary_exit():
    proc = run("import atexit\natexit.register(lambda: sys.stdout.write('[atexit]'))\nexit_promptly(3)\n")
    assert proc.returncode == 3
    assert proc.stdout.startswith("output") and "[atexit]" in proc.stdout and "[teardown]" in proc.stdout


def test_a_running_non_daemon_thread_finishes_first():
    body = ("import threading, time\n"
            "threading.Thread(target=lambda: (time.sleep(0.3), sys.stdout.write('[thread]'))).start()\n"
            "exit_promptly(0)\n")
    proc = run(body)
    assert proc.returncode == 0 and "[thread]" in proc.stdout


@pytest.mark.parametrize("status, code", [(None, 0), (0, 0), (2, 2), (75, 75)])
def test_statuses_are_those_of_sys_exit(status, code):
    assert run(f"exit_promptly({status!r})\n").returncode == code


def test_a_status_that_is_no_number_takes_the_ordinary_exit():
    proc = run("exit_promptly('message')\n")
    assert proc.returncode == 1 and "message" in proc.stderr and "[teardown]" in proc.stdout
