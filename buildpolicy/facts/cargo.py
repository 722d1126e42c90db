"""The cargo argv facts: cargo.command, cargo.profile(_env), explicit features, +toolchain.

``parse_cargo_argv`` reads a cargo command line the way cargo does, as far as
these facts need; the engine reuses it (e.g. to insert feature args before ``--``).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # the warm replay imports this module: collections.abc imports collections
if TYPE_CHECKING:  # pragma: no cover - typing only
    from collections.abc import Sequence

from buildpolicy.facts.unknown import FactUnknown

ALIASES = {"b": "build", "c": "check", "t": "test", "r": "run", "d": "doc", "rm": "remove"}

# Cargo's global options that take a value (`--color always`, `-Z flag`, `-C dir`).
_GLOBAL_WITH_VALUE = {"--color", "--config", "-Z", "-C", "--explain"}
# The default profile of a command without --profile/--release.
_DEFAULT_PROFILES = {"test": "test", "bench": "bench", "install": "release"}
_FEATURE_FLAGS = {"--features", "-F", "--all-features", "--no-default-features"}


class CargoArgs:
    """What a cargo argv says about the build.

    ``command`` is the subcommand (aliases expanded) or None; ``profile`` the cargo
    profile it builds with; ``toolchain_override`` the ``+toolchain`` name;
    ``explicit_features`` whether feature flags appear before ``--``;
    ``separator_index`` the index of that ``--`` in argv, or None. ``config_args``
    are ``--config`` values, ``manifest_path`` a ``--manifest-path`` and ``targets``
    the ``--target`` values, in order (cargo builds for each).
    """

    # A plain immutable record, not attrs: cargo_profiles imports this module on the
    # warm `env` replay path, which must not pay for importing attrs.
    __slots__ = ("command", "profile", "toolchain_override", "explicit_features", "separator_index",
                 "config_args", "manifest_path", "targets")

    def __init__(self, command: str | None, profile: str | None, toolchain_override: str | None = None,
                 explicit_features: bool = False, separator_index: int | None = None,
                 config_args: tuple[str, ...] = (), manifest_path: str | None = None, targets: tuple[str, ...] = ()):
        for name, value in zip(self.__slots__, (command, profile, toolchain_override, explicit_features,
                                                separator_index, tuple(config_args), manifest_path, tuple(targets))):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"CargoArgs is immutable: cannot set {name}")

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other):
        return self._fields() == other._fields() if isinstance(other, CargoArgs) else NotImplemented

    def __hash__(self):
        return hash(self._fields())

    def __repr__(self):
        return "CargoArgs(" + ", ".join(f"{n}={v!r}" for n, v in zip(self.__slots__, self._fields())) + ")"


def is_cargo(program: str) -> bool:
    """True when ``program`` (argv[0]) names cargo itself (``cargo``, ``/usr/bin/cargo``, ``cargo.exe``)."""
    name = os.path.basename(program)
    return name in ("cargo", "cargo.exe")


def _split_global(argv: Sequence[str], start: int) -> tuple[int, list[str]]:
    """Skip cargo's global options from ``start``; return the subcommand index and --config values."""
    configs = []
    i = start
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or not arg.startswith("-"):
            break
        option, eq, value = arg.partition("=")
        if option in _GLOBAL_WITH_VALUE and not eq:
            value = argv[i + 1] if i + 1 < len(argv) else ""
            i += 1
        elif arg.startswith("-Z") or (arg.startswith("-C") and len(arg) > 2):
            value = arg[2:]  # attached short value: -Zflag, -Cdir
        if option == "--config":
            configs.append(value)
        i += 1
    return i, configs


def command_index(argv: Sequence[str] | None) -> int | None:
    """The index of the subcommand in a cargo argv (after ``+toolchain`` and global
    options), or None when ``argv`` is not cargo or names no subcommand before ``--``."""
    argv = tuple(argv or ())
    if not argv or not is_cargo(argv[0]):
        return None
    end = argv.index("--") if "--" in argv else len(argv)
    start = 2 if end > 1 and argv[1].startswith("+") else 1
    index, _configs = _split_global(argv[:end], start)
    return index if index < end else None


def parse_cargo_argv(argv: Sequence[str] | None) -> CargoArgs:
    """Parse a cargo command line (``("cargo", "+nightly", "build", "-r", "--", …)``).

    A non-cargo argv (or None) yields a ``CargoArgs`` with every field empty.
    Only arguments before ``--`` count.
    """
    argv = tuple(argv or ())
    separator = argv.index("--") if "--" in argv else None
    if not argv or not is_cargo(argv[0]):
        return CargoArgs(command=None, profile=None, separator_index=separator)
    end = len(argv) if separator is None else separator
    i, toolchain = 1, None
    if end > 1 and argv[1].startswith("+"):
        toolchain, i = argv[1][1:] or None, 2
    i, configs = _split_global(argv[:end], i)
    command = ALIASES.get(argv[i], argv[i]) if i < end else None
    profile = release = debug = None
    features = False
    manifest = None
    targets: list[str] = []
    args = argv[i + 1:end]
    for j, arg in enumerate(args):
        option, eq, value = arg.partition("=")
        if option == "--profile":
            profile = value if eq else (args[j + 1] if j + 1 < len(args) else None)
        elif option in ("--release",) or (arg.startswith("-") and not arg.startswith("--") and set(arg[1:]) <= set("rvq") and "r" in arg):
            release = True  # -r, and short clusters such as -rv
        elif option == "--debug":
            debug = True  # `cargo install --debug`
        elif option == "--manifest-path":
            manifest = value if eq else (args[j + 1] if j + 1 < len(args) else None)
        elif option == "--target":
            given = value if eq else (args[j + 1] if j + 1 < len(args) else None)
            if given:
                targets.append(given)
        elif option == "--config":  # a global option, also accepted after the subcommand
            given = value if eq else (args[j + 1] if j + 1 < len(args) else None)
            if given is not None:
                configs.append(given)
        elif option in _FEATURE_FLAGS or arg.startswith("-F"):
            features = True
    if command is None:
        chosen = None
    elif profile:
        chosen = profile
    elif release:
        chosen = "release"
    elif command == "install" and debug:
        chosen = "dev"
    else:
        chosen = _DEFAULT_PROFILES.get(command, "dev")
    return CargoArgs(command, chosen, toolchain, features, separator, tuple(configs), manifest, tuple(targets))


def cargo_args(s) -> CargoArgs:
    """The parsed cargo argv of the context, parsed once per store."""
    return s.shared("cargo.args", lambda: parse_cargo_argv(s.ctx.cargo_argv))


def profile_env_name(profile: str) -> str:
    """Spell a profile as cargo does in variable names: ``release-lto`` → ``RELEASE_LTO``."""
    return profile.upper().replace("-", "_")


def probe_command(s) -> str:
    """The ``cargo.command`` fact."""
    command = cargo_args(s).command
    if command is None:
        raise FactUnknown("no cargo command line was given" if not s.ctx.cargo_argv else "the command line is not a cargo build")
    return command


def probe_profile(s) -> str:
    """The ``cargo.profile`` fact: from the cargo argv, else ``--profile``, else the profile file's default."""
    profile = cargo_args(s).profile
    return profile or s.ctx.profile_flag or s.ctx.default_profile


def probe_profile_env(s) -> str:
    """The ``cargo.profile_env`` fact, following ``cargo.profile`` (overrides included)."""
    profile = s.fact("cargo.profile")
    if profile is None:
        raise FactUnknown("cargo.profile is unknown")
    return profile_env_name(profile)


def probe_explicit_features(s) -> bool:
    """The ``cargo.explicit_features`` fact."""
    return cargo_args(s).explicit_features


def probe_toolchain_override(s) -> str:
    """The ``cargo.toolchain_override`` fact (``+nightly`` → ``nightly``)."""
    toolchain = cargo_args(s).toolchain_override
    if toolchain is None:
        raise FactUnknown("the cargo command line has no +toolchain")
    return toolchain
