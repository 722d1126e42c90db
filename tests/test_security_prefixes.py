"""Trust rule: the free build variables are exact names and explicit patterns (issue 10, item 5).

Bare prefixes let non-build names through: ``AR*`` matched ``ARGV0`` (zsh starts
every command with that ``argv[0]``) and zsh's ``ARGC``. The set is now the
names cargo, rustc, sccache, cmake and the cc crate read, in the forms they
read them (``CC``, ``CC_<target>``, ``TARGET_CC``…), and no variable a shell,
the dynamic loader or a common tool reads is in it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from buildpolicy.policy import buildvars, trust
from tests.conftest import write


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "repo"
    write(root / "buildpolicy.toml", 'policies = ["policies"]\n')
    (root / "policies").mkdir()
    return root


def test_argv0_from_a_project_is_refused(cli, project, tmp_path):
    policy = write(project / "policies" / "argv0.toml", '[[rule]]\nid = "argv0"\nenv = { ARGV0 = "evil" }\n')
    proc = cli("env", "--shell", "zsh", cwd=project)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"{policy}:3:9: rule 'argv0' sets ARGV0, which is not a build variable" in proc.stderr


# Variables of the C toolchain as the cc crate looks them up, cmake's and the cmake crate's,
# and the rest of DESIGN §9's list: all still free.
BUILD_VARIABLES = [
    "CC", "CXX", "AR", "CFLAGS", "CXXFLAGS", "ARFLAGS", "CXXSTDLIB",
    "CC_x86_64_unknown_linux_gnu", "CFLAGS_aarch64_linux_android", "CXX_wasm32_wasip1", "AR_x86_64_pc_windows_gnu",
    "CXXFLAGS_x86_64", "ARFLAGS_thumbv7em_none_eabihf", "CXXSTDLIB_aarch64_apple_darwin",
    "TARGET_CC", "HOST_CC", "TARGET_CFLAGS", "HOST_CXXFLAGS", "TARGET_AR", "HOST_ARFLAGS",
    "CC_ENABLE_DEBUG_OUTPUT", "CC_SHELL_ESCAPED_FLAGS", "CC_FORCE_DISABLE", "CRATE_CC_NO_DEFAULTS",
    "CMAKE_GENERATOR", "CMAKE_BUILD_PARALLEL_LEVEL", "CMAKE_TOOLCHAIN_FILE_x86_64_unknown_linux_gnu",
    "CMAKE_C_COMPILER_LAUNCHER", "CARGO_TERM_COLOR", "CARGO_PROFILE_DEV_DEBUG", "CARGO_ENCODED_RUSTFLAGS",
    "RUSTC", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "RUSTFLAGS", "RUSTDOCFLAGS", "RUSTUP_TOOLCHAIN",
    "SCCACHE_DIR", "SCCACHE_CACHE_SIZE", "TMPDIR", "MAKEFLAGS", "NUM_JOBS",
]

# Read by shells, the dynamic loader, interpreters and common tools; several matched the old
# bare prefixes (AR*: ARGV0, ARGC, ARCH; CC*: CCACHE_PREFIX; CFLAGS*: CFLAGSX).
NOT_BUILD_VARIABLES = [
    "ARGV0", "ARGC", "ARCH", "ARCHFLAGS", "ARFOO", "CCACHE_PREFIX", "CCACHE_DIR", "CFLAGSX", "CXXSTUFF", "CMAKE",
    "PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "GCONV_PATH", "BASH_ENV", "ENV", "PROMPT_COMMAND", "PS1",
    "PS4", "IFS", "CDPATH", "SHELLOPTS", "BASHOPTS", "ZDOTDIR", "FPATH", "PROMPT", "RPROMPT", "HISTFILE", "INPUTRC",
    "HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "PYTHONPATH", "PYTHONSTARTUP", "PERL5OPT",
    "NODE_OPTIONS", "RUBYOPT", "GIT_SSH_COMMAND", "GIT_EXEC_PATH", "SSH_AUTH_SOCK", "EDITOR", "PAGER", "LESSOPEN",
    "TARGET", "HOST", "TARGET_", "HOST_PATH", "TARGET_LD_PRELOAD", "CARGO", "RUSTCX", "RUSTFLAGSX",
    "BUILDPOLICY_JOBS", "BUILDPOLICY_SITE_DIR", "BUILDPOLICY_ENV_STATE", "BUILDPOLICY_GATE_LOCK",
    "BUILDPOLICY_REMOTE_SSH_CONFIG", "BUILDPOLICY_GATE_HELD", "BUILDPOLICY_REPLAY",
]


@pytest.mark.parametrize("name", BUILD_VARIABLES)
def test_build_variables_stay_free(name):
    assert trust.is_safe_name(name) and trust.is_safe_name_template(name)


@pytest.mark.parametrize("name", NOT_BUILD_VARIABLES)
def test_variables_of_shells_loaders_and_tools_are_not_free(name):
    assert not trust.is_safe_name(name) and not trust.is_safe_name_template(name)


@pytest.mark.parametrize("template, free", [
    ("CC_${host.triple}", True), ("CFLAGS_${host.triple}", True), ("CMAKE_GENERATOR_${host.triple}", True),
    ("RUSTC_${env.X}", True), ("CARGO_PROFILE_${cargo.profile_env}_LTO", True),
    ("AR${env.X}", False),  # ARGV0, ARGC
    ("CC${env.X}", False),  # CCACHE_PREFIX
    ("TARGET_${env.X}", False), ("HOST_${env.X}", False), ("${env.X}", False), ("RUSTC${env.X}", False),
])
def test_templates_must_stay_inside_a_namespace(template, free):
    assert trust.is_safe_name_template(template) is free


# Each shell's own parameters, listed by the shell itself in an empty environment.
SHELL_PARAMETERS = {
    "bash": ["bash", "-c", "compgen -v"],
    "zsh": ["zsh", "-fc", "print -l ${(k)parameters}"],
    "fish": ["fish", "--no-config", "-c", "set -n"],
    "dash": ["dash", "-c", "set | cut -d= -f1"],
}


@pytest.mark.parametrize("shell", sorted(SHELL_PARAMETERS))
def test_no_parameter_a_real_shell_knows_is_a_build_variable(shell):
    argv = SHELL_PARAMETERS[shell]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{shell} is not installed")
    names = subprocess.run(argv, env={}, capture_output=True, text=True, timeout=30, check=True).stdout.split()
    assert len(names) > 5
    assert [name for name in names if buildvars.is_build_variable(name)] == []


def test_documented_build_variables_need_no_allow_end_to_end(cli, project):
    entries = ", ".join(f'{name} = "x"' for name in BUILD_VARIABLES)
    write(project / "policies" / "build.toml", f'[[rule]]\nid = "build"\nforce = true\nenv = {{ {entries} }}\n')
    lines = cli("env", cwd=project, check=True).stdout.splitlines()
    assert [name for name in BUILD_VARIABLES if f"export {name}='x'" not in lines] == []
    assert not (Path(cli.env["XDG_STATE_HOME"]) / "buildpolicy" / "trust").exists()
