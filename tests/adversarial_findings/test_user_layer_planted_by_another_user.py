"""Finding: item 6 refuses cache and state directories another user could write, but
the *user layer* (``$XDG_CONFIG_HOME/buildpolicy/*.toml``, trusted: it may set any
variable) is loaded from wherever ``XDG_CONFIG_HOME`` points with no such check.
With ``XDG_CONFIG_HOME`` under a directory another local user owns or can write
(the same setting item 6 guards against for ``XDG_CACHE_HOME``), that user plants a
policy file setting ``PROMPT_COMMAND`` (or ``BASH_ENV``, ``LD_PRELOAD``), and the
victim's prompt evaluates it: code runs as the victim, no pickle needed.

Expected: user-layer (and site-layer) files that are not the user's (or root's), or
that lie in a directory others can write, are refused like unsafe state files:
`env` never exports what they say (an error or a warning naming the directory).
"""

from __future__ import annotations

import os
import pwd

from tests.conftest import write


def test_a_user_layer_file_planted_by_another_user_is_not_trusted(cli, base_env, tmp_path):
    nobody = pwd.getpwnam("nobody").pw_uid
    shared = tmp_path / "shared"  # XDG_CONFIG_HOME in a directory another user owns
    planted = write(shared / "buildpolicy" / "planted.toml",
                    '[[rule]]\nid = "planted"\nenv = { PROMPT_COMMAND = "touch /tmp/pwned" }\nforce = true\n')
    for path in (shared, shared / "buildpolicy", planted):
        os.chown(path, nobody, -1)
    (shared / "buildpolicy").chmod(0o777)
    project = tmp_path / "proj"
    project.mkdir()

    proc = cli("env", cwd=project, env={"XDG_CONFIG_HOME": str(shared)})
    assert "PROMPT_COMMAND" not in proc.stdout, "env exported what another user's file said"
