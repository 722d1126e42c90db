"""`buildpolicy set` / `unset`: validated first, comments kept, atomic writes, the right file per layer."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

PROFILE = """\
#:schema .buildpolicy/schema/profile.schema.json
# Our team's build settings.
policies = ["policies"]   # relative to this file

[knobs]
# Keep memory for the IDE.
mib_per_job = 2048  # measured on the 16 GiB laptops

[knobs.sccache]
# The old wrapper's name.
aliases = ["OLD_SCCACHE"]

[[rule]]
id = "color"
env = { CARGO_TERM_COLOR = "always" }
"""


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    (root / "policies").mkdir(parents=True)
    (root / "buildpolicy.toml").write_text(PROFILE)
    return root


def knob(cli, project, name, env=None):
    data = json.loads(cli("explain", "--format", "json", cwd=project, env=env, check=True).stdout)
    return data["knobs"][name]


def test_set_user_layer_creates_the_file_and_takes_effect(cli, project, home):
    proc = cli("set", "jobs", "4", cwd=project)
    assert proc.returncode == 0, proc.stderr
    path = home / "config" / "buildpolicy" / "knobs.toml"
    assert str(path) in proc.stdout and "user layer" in proc.stdout
    text = path.read_text()
    assert text.startswith("#:schema ") and text.split()[1].endswith("policy.schema.json")
    assert Path(text.split()[1]).is_file()  # the installed schema, for editors
    assert "jobs = 4\n" in text
    assert knob(cli, project, "jobs") == {"value": 4, "source": f"user {path}:6 [knobs] jobs"}
    env = cli("env", cwd=project, check=True).stdout
    assert "export CARGO_BUILD_JOBS='4'" in env.splitlines()
    # --layer user is the default; a second set edits the same file.
    cli("set", "sccache", "OFF", "--layer", "user", cwd=project, check=True)
    assert 'sccache = "off"' in path.read_text() and "jobs = 4" in path.read_text()


def test_set_project_keeps_comments_and_formatting(cli, project):
    cli("set", "jobs", "6", "--layer", "project", cwd=project, check=True)
    after = (project / "buildpolicy.toml").read_text()
    expected = PROFILE.replace("mib_per_job = 2048  # measured on the 16 GiB laptops\n",
                               "mib_per_job = 2048  # measured on the 16 GiB laptops\njobs = 6\n")
    assert after == expected
    cli("set", "mib_per_job", "1024", "--layer", "project", cwd=project, check=True)
    assert "mib_per_job = 1024  # measured on the 16 GiB laptops\n" in (project / "buildpolicy.toml").read_text()
    # A knob declared as a table gets its `default`; its aliases and comments stay.
    cli("set", "sccache", "on", "--layer", "project", cwd=project, check=True)
    text = (project / "buildpolicy.toml").read_text()
    assert '# The old wrapper\'s name.\naliases = ["OLD_SCCACHE"]\ndefault = "on"\n' in text
    assert knob(cli, project, "sccache")["value"] == "on"
    # unset removes exactly what set added.
    for name in ("jobs", "sccache"):
        cli("unset", name, "--layer", "project", cwd=project, check=True)
    assert (project / "buildpolicy.toml").read_text() == PROFILE.replace("2048", "1024")


def test_bad_value_is_rejected_before_anything_is_written(cli, project, home):
    before = (project / "buildpolicy.toml").read_bytes()
    proc = cli("set", "sccache", "sometimes", "--layer", "project", cwd=project)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "knob 'sccache'" in proc.stderr and "auto, on, off" in proc.stderr
    assert (project / "buildpolicy.toml").read_bytes() == before
    low = cli("set", "mib_per_job", "100", cwd=project)
    assert low.returncode == 2 and ">= 256" in low.stderr
    assert not (home / "config" / "buildpolicy" / "knobs.toml").exists()
    unknown = cli("set", "sccach", "on", cwd=project)
    assert unknown.returncode == 2 and "did you mean 'sccache'" in unknown.stderr


def test_typed_values_are_written_as_toml_types(cli, project, home):
    (project / "buildpolicy.toml").write_text(
        '[knobs.hosts]\ntype = "list"\n[knobs.budget]\ntype = "size"\n[knobs.fast]\ntype = "bool"\n'
    )
    for name, value in (("hosts", "a, b"), ("budget", "2GiB"), ("fast", "yes")):
        cli("set", name, value, cwd=project, check=True)
    text = (home / "config" / "buildpolicy" / "knobs.toml").read_text()
    assert 'hosts = ["a", "b"]' in text and 'budget = "2GiB"' in text and "fast = true" in text
    assert knob(cli, project, "budget")["value"] == 2 << 30


def test_site_layer_keeps_the_file_mode_under_a_strict_umask(cli, project, home):
    def set_with_umask(*args):
        # A real umask 077, as root's shell on a locked-down host might have.
        return subprocess.run(["sh", "-c", 'umask 077; exec "$@"', "sh", sys.executable, "-m", "buildpolicy", *args],
                              cwd=project, env=cli.env, capture_output=True, text=True, timeout=60)

    site = home / "site" / "knobs.toml"
    site.write_text("# site-wide defaults\n[knobs]\nmib_per_job = 4096\n")
    site.chmod(0o644)
    proc = set_with_umask("set", "jobs", "2", "--layer", "site")
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(site.stat().st_mode) == 0o644
    assert site.read_text() == "# site-wide defaults\n[knobs]\nmib_per_job = 4096\njobs = 2\n"
    assert knob(cli, project, "jobs")["source"].startswith("site ")
    site.unlink()
    assert set_with_umask("set", "jobs", "3", "--layer", "site").returncode == 0
    assert stat.S_IMODE(site.stat().st_mode) == 0o644  # a new site file is readable by every user


def test_symlinked_layer_file_is_edited_through_the_link(cli, project, home, tmp_path):
    real = tmp_path / "dotfiles" / "knobs.toml"
    real.parent.mkdir()
    real.write_text("[knobs]\n")
    link = home / "config" / "buildpolicy" / "knobs.toml"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    cli("set", "jobs", "3", cwd=project, check=True)
    assert link.is_symlink() and "jobs = 3" in real.read_text()


def test_note_when_a_higher_layer_still_wins(cli, project):
    proc = cli("set", "jobs", "4", "--layer", "project", cwd=project, env={"BUILDPOLICY_JOBS": "9"})
    assert proc.returncode == 0
    assert "knob jobs is still 9 here" in proc.stderr and "$BUILDPOLICY_JOBS" in proc.stderr
    quiet = cli("set", "jobs", "5", "--layer", "project", "-q", cwd=project, env={"BUILDPOLICY_JOBS": "9"})
    assert quiet.stderr == ""


def test_unset_of_a_missing_value_and_of_an_unknown_knob(cli, project, home):
    proc = cli("unset", "jobs", cwd=project)
    assert proc.returncode == 0 and "has no value" in proc.stderr
    # A stale knob (its plugin uninstalled) can still be removed: no declaration is needed.
    path = home / "config" / "buildpolicy" / "knobs.toml"
    path.parent.mkdir(parents=True)
    path.write_text("[knobs]\n# gone\nold_plugin_knob = 1\njobs = 2\n")
    assert cli("env", cwd=project).returncode == 2  # the stale knob is an error until removed
    cli("unset", "old_plugin_knob", cwd=project, check=True)
    assert path.read_text() == "[knobs]\n# gone\njobs = 2\n"
    assert cli("env", cwd=project).returncode == 0


def test_project_layer_needs_a_profile_and_broken_files_are_reported(cli, tmp_path, project, home):
    bare = tmp_path / "bare"
    bare.mkdir()
    proc = cli("set", "jobs", "2", "--layer", "project", cwd=bare)
    assert proc.returncode == 2 and "no buildpolicy.toml" in proc.stderr and "buildpolicy init" in proc.stderr
    path = home / "config" / "buildpolicy" / "knobs.toml"
    path.parent.mkdir(parents=True)
    path.write_text("[knobs\njobs = 2\n")
    broken = cli("set", "jobs", "3", cwd=project)
    assert broken.returncode == 2 and f"{path}:1:" in broken.stderr and "Traceback" not in broken.stderr
    assert path.read_text() == "[knobs\njobs = 2\n"
    unset = cli("unset", "jobs", cwd=project)
    assert unset.returncode == 2 and f"{path}:1:" in unset.stderr


def test_unwritable_site_file_is_a_clear_error(cli, project, tmp_path):
    # A site "directory" that is a file cannot be written even by root.
    not_a_dir = tmp_path / "site-is-a-file"
    not_a_dir.write_text("")
    proc = cli("set", "jobs", "2", "--layer", "site", cwd=project, env={"BUILDPOLICY_SITE_DIR": str(not_a_dir)})
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"{not_a_dir / 'knobs.toml'}: cannot read: Not a directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_set_refuses_a_value_that_would_break_every_run(cli, project, home):
    # `features` is a string knob: any name passes the type check, but only the
    # profile's [feature_profiles] names make a run that works.
    profile = project / "buildpolicy.toml"
    profile.write_text(PROFILE.replace("[knobs]\n", '[feature_profiles]\nminimal = ["--no-default-features"]\n\n[knobs]\n', 1))
    before = profile.read_text()
    proc = cli("set", "features", "nothere", "--layer", "project", cwd=project)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "not a declared feature profile" in proc.stderr and "minimal" in proc.stderr
    assert "nothing was written" in proc.stderr and "--set" not in proc.stderr
    assert profile.read_text() == before
    assert cli("env", cwd=project).returncode == 0
    user = cli("set", "features", "nothere", cwd=project)
    assert user.returncode == 2 and not (home / "config" / "buildpolicy" / "knobs.toml").exists()
    # A declared profile is written.
    cli("set", "features", "minimal", "--layer", "project", cwd=project, check=True)
    assert 'features = "minimal"' in profile.read_text()
    assert cli("env", cwd=project).returncode == 0


def test_set_does_not_blame_the_edit_for_a_problem_the_project_already_has(cli, project, home):
    broken = {"BUILDPOLICY_SCCACHE": "sometimes"}  # every run here fails already, whatever `set` writes
    proc = cli("set", "jobs", "4", "--layer", "project", cwd=project, env=broken)
    assert proc.returncode == 0, proc.stderr
    assert "jobs = 4" in (project / "buildpolicy.toml").read_text()
