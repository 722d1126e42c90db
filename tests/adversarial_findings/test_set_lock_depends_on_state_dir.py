"""Finding: `set`/`unset` serialise their read-edit-replace with a lock in the *caller's
state directory* (``$XDG_STATE_HOME/buildpolicy/knob-edit.lock``), not next to the
file they edit. Two edits of the same layer file by callers whose state directories
differ (two administrators editing the site layer, a script run with another
``XDG_STATE_HOME``, `sudo` with and without ``-H``) take different locks, and updates
are lost again while every `set` prints success (item 9).

Expected: concurrent `set` of different knobs into one layer file keep every value,
whatever the callers' state directories are (lock the edited file, or a lock beside it).
"""

from __future__ import annotations

import subprocess
import sys

KNOBS = [("jobs", "3"), ("mib_per_job", "1024"), ("sccache", "off"), ("linker", "lld"), ("frontend", "off"),
         ("gate", "off"), ("action_log", "off"), ("remote_fallback", "error"), ("remote_tcp_probe", "off"),
         ("remote_sync_back", "off")]


def test_concurrent_site_edits_by_callers_with_different_state_dirs_keep_every_value(base_env, home, tmp_path):
    site_file = home / "site" / "knobs.toml"
    for trial in range(3):
        site_file.unlink(missing_ok=True)
        procs = []
        for index, (knob, value) in enumerate(KNOBS):
            env = dict(base_env, XDG_STATE_HOME=str(tmp_path / f"state-{trial}-{index}"))  # another admin
            procs.append(subprocess.Popen([sys.executable, "-m", "buildpolicy", "set", knob, value, "--layer", "site"],
                                          env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        codes = [proc.wait(timeout=120) for proc in procs]
        assert codes == [0] * len(KNOBS), "every `set` reported success"
        text = site_file.read_text()
        lost = [knob for knob, _ in KNOBS if f"{knob} =" not in text]
        assert not lost, f"trial {trial}: concurrent `set` lost {lost}"
