"""The build variables a project's files may set without ``buildpolicy allow`` (DESIGN §9).

Standard library only: the env-state record (``engine/envstate.py``) uses it on
the warm ``env`` replay, which imports neither attrs nor the policy engine.

The set is written as exact names and explicit patterns, never as bare
prefixes: ``AR*`` would also match ``ARGV0`` (zsh starts every command with that
``argv[0]``), and ``CC*`` anything a future tool names ``CC...``. What is in it,
and why each entry is only read by build tools:

- namespaces, any name under them: ``CARGO_*`` (cargo's configuration,
  ``CARGO_PROFILE_<P>_*``, ``CARGO_TARGET_<TRIPLE>_*``…), ``RUSTC_*``
  (``RUSTC_WRAPPER``, ``RUSTC_WORKSPACE_WRAPPER``, ``RUSTC_BOOTSTRAP``),
  ``SCCACHE_*`` and ``CMAKE_*`` (CMake's own variables and the cmake crate's
  ``CMAKE_TOOLCHAIN_FILE_<target>``, ``CMAKE_GENERATOR_<target>``…);
- exact names: ``RUSTC``, ``RUSTFLAGS``, ``RUSTDOCFLAGS``, ``RUSTUP_TOOLCHAIN``,
  ``TMPDIR``, ``MAKEFLAGS``, ``NUM_JOBS`` and the cc crate's
  ``CRATE_CC_NO_DEFAULTS``;
- the C toolchain variables the cc crate reads (:data:`C_TOOL_VARS`: ``CC``,
  ``CFLAGS``, ``CXX``, ``CXXFLAGS``, ``AR``, ``ARFLAGS``, ``CXXSTDLIB``) in the
  forms it looks them up: ``<VAR>``, ``<VAR>_<target>``
  (``CC_x86_64_unknown_linux_gnu``; also its switches such as
  ``CC_ENABLE_DEBUG_OUTPUT``), ``HOST_<VAR>`` and ``TARGET_<VAR>``.

Not in it, although under ``SCCACHE_*``: the variables that choose where sccache
reads compiled code from and sends it to, or which server it talks to
(:data:`SCCACHE_REDIRECTS`: the storage backends, ``SCCACHE_CONF``, the server
socket and port, sccache-dist). A shared cache feeds compiled code into your
binaries: choosing one is the ``sccache_backend`` knob's job, which needs
``allow`` in a project file (DESIGN §12); a rule's ``env`` must not do it
behind the knob's back.

Not in it: anything a shell, the dynamic loader or buildpolicy itself reads
(``PATH``, ``LD_PRELOAD``, ``BASH_ENV``, ``ARGV0``, ``PROMPT_COMMAND``,
``BUILDPOLICY_*``: knob variables, ``BUILDPOLICY_SITE_DIR``, the env-state
record), and other tools' variables that the old ``CC*`` prefix let through
(``CCACHE_*``).
"""

from __future__ import annotations

# The env-state record `env` exports (buildpolicy.engine.envstate): no policy
# file may set or unset it, and it restores build variables only.
STATE_VAR = "BUILDPOLICY_ENV_STATE"

# Namespaces: every name that starts with one of these is a build variable.
NAMESPACES = ("CARGO_", "RUSTC_", "SCCACHE_", "CMAKE_")
EXACT_NAMES = frozenset({
    "RUSTC", "RUSTFLAGS", "RUSTDOCFLAGS", "RUSTUP_TOOLCHAIN", "TMPDIR", "MAKEFLAGS", "NUM_JOBS", "CRATE_CC_NO_DEFAULTS",
})
# The cc crate's tool variables: <VAR>, <VAR>_<target>, HOST_<VAR>, TARGET_<VAR>.
C_TOOL_VARS = ("CC", "CFLAGS", "CXX", "CXXFLAGS", "AR", "ARFLAGS", "CXXSTDLIB")
# Prefixes after which any name is a build variable: the namespaces and <VAR>_.
TEMPLATE_HEADS = NAMESPACES + tuple(f"{var}_" for var in C_TOOL_VARS)

# sccache variables that redirect its cache, configuration or server (prefixes).
SCCACHE_REDIRECTS = tuple(f"SCCACHE_{part}" for part in (
    "REDIS", "MEMCACHED", "BUCKET", "ENDPOINT", "REGION", "S3_", "WEBDAV", "GHA", "GCS", "AZURE", "OSS", "COS",
    "MULTILEVEL", "CONF", "SERVER_", "DIST", "NO_DAEMON", "STARTUP_NOTIFY"))

# <VAR>, HOST_<VAR>, TARGET_<VAR>; and <VAR>_ followed by ASCII letters, digits and '_'.
# (No regular expression: `re` costs the warm replay more than the rest of its imports.)
_C_TOOL_NAMES = frozenset((*C_TOOL_VARS, *(f"HOST_{var}" for var in C_TOOL_VARS), *(f"TARGET_{var}" for var in C_TOOL_VARS)))
_C_TOOL_HEADS = tuple(f"{var}_" for var in C_TOOL_VARS)
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def is_build_variable(name: str) -> bool:
    """Whether ``name`` is a build variable project and pack files may set or unset freely."""
    if name.startswith(SCCACHE_REDIRECTS):
        return False
    if name in EXACT_NAMES or name.startswith(NAMESPACES) or name in _C_TOOL_NAMES:
        return True
    return any(name.startswith(head) and len(name) > len(head) and _WORD_CHARS.issuperset(name[len(head):])
               for head in _C_TOOL_HEADS)


def is_build_variable_template(template: str) -> bool:
    """Whether every name the env-name ``template`` can produce is a build variable.

    A template without ``${`` is checked as a plain name. Otherwise the
    literal text before the first ``${fact}`` must already end inside a
    namespace (``CARGO_PROFILE_${cargo.profile_env}_INCREMENTAL`` → ``CARGO_``,
    ``CC_${host.triple}`` → ``CC_``): a name that starts with ``${...}``, or
    with ``C${...}``, could become any variable.
    """
    head, sep, _ = template.partition("${")
    head = head.replace("$$", "$")
    if not sep:
        return is_build_variable(head)
    if head.startswith("SCCACHE_"):
        return False  # could become one of SCCACHE_REDIRECTS
    return head.startswith(TEMPLATE_HEADS)
