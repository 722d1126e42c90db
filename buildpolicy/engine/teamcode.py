"""Run team-local plugin code from exactly the bytes ``buildpolicy allow`` hashed.

Python's own import machinery would run something other than the reviewed
source: a ``__pycache__/bp.cpython-311.pyc`` compiled with ``UNCHECKED_HASH`` is
used without looking at ``bp.py`` at all, and a module the plugin imports from
the repository may have changed since ``allow``. So team plugins and the
repository modules they import are loaded here instead:

- a file is read once, its SHA-256 compared with the digest the trust record
  holds for it, and those bytes are compiled and executed; no ``.pyc`` is read
  or written;
- while team plugins are loaded, a ``RepositoryImportGuard`` sits on
  ``sys.meta_path`` just before the path finder. A module whose file lies in
  the project directory or a plugin's directory (a sibling imported by name, or
  one reached through a ``sys.path`` entry pointing there) is loaded the same
  way, and only when ``allow`` hashed it; a compiled module or extension there
  is refused. Modules found elsewhere (the standard library, installed
  packages, buildpolicy itself) are left to the normal machinery, and a name an
  installed module has is that module, not a repository file.

Without digests (``buildpolicy test`` runs a project's plugins as ``cargo test``
runs its code) the files are still loaded from their source, unchecked.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Iterable, Mapping
from types import ModuleType

from buildpolicy.filestate import sha256_hex

ALLOW_HINT = "review it, then run `buildpolicy allow` again"


def _real(path: str) -> str:
    return os.path.realpath(path)


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _installation_dirs() -> list[str]:
    """Where the interpreter, installed packages and buildpolicy live: never repository code,
    even when a project directory contains them (a virtualenv inside the project)."""
    import buildpolicy

    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
            os.path.dirname(buildpolicy.__file__)}
    plugins = sys.modules.get("buildpolicy_plugins")
    if plugins is not None and getattr(plugins, "__file__", None):
        dirs.add(os.path.dirname(plugins.__file__))
    return sorted({_real(d) for d in dirs if d})


class TeamCodeError(ImportError):
    """Repository code that may not run: changed since ``allow``, not hashed, or not Python source."""


class VerifiedSourceLoader(importlib.abc.Loader):
    """Executes the source file at ``path`` from bytes whose SHA-256 is ``expected``
    (any bytes when ``expected`` is None)."""

    def __init__(self, path: str, expected: str | None):
        self.path = path
        self.expected = expected

    def create_module(self, spec):
        """The default module object."""
        return None

    def exec_module(self, module: ModuleType) -> None:
        """Read, check and run the file in ``module``'s namespace."""
        from buildpolicy.filestate import read_bounded
        from buildpolicy.policy.plugincode import MAX_CODE_BYTES

        try:
            data = read_bounded(self.path, MAX_CODE_BYTES)
        except OSError as exc:
            raise TeamCodeError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if self.expected is not None and sha256_hex(data) != self.expected:
            raise TeamCodeError(f"{self.path} changed since `buildpolicy allow`: {ALLOW_HINT}")
        code = compile(data, self.path, "exec", dont_inherit=True)
        exec(code, module.__dict__)  # noqa: S102 - the allowed team plugin code, by design


class RepositoryImportGuard(importlib.abc.MetaPathFinder):
    """Loads repository modules only through ``VerifiedSourceLoader`` (see the module docstring).

    ``roots`` are the repository directories (the project and the plugins'
    directories); ``sibling_dirs`` are searched for a top-level name nothing
    else provides; ``digests`` maps real paths to the SHA-256 ``allow`` recorded,
    or is None when nothing is checked.
    """

    def __init__(self, roots: Iterable[str], sibling_dirs: Iterable[str], digests: Mapping[str, str] | None):
        self.exempt = _installation_dirs()
        self.roots = [_real(root) for root in roots]
        self.sibling_dirs = [_real(d) for d in sibling_dirs]
        self.digests = digests

    def find_spec(self, fullname, path, target=None):
        """A verified spec for a repository module; the normal spec for anything else."""
        spec = self._others(fullname, path, target)
        if spec is None and path is None:
            spec = self._sibling(fullname)
        if spec is None or not spec.has_location or spec.origin is None:
            return spec  # not found, built in, or a namespace package (no code of its own)
        # Where the file was found and where it really is: Python's own loader reads the
        # bytecode cache beside the path *found*, so a module found in the repository is
        # repository code even when it is a symlink to a file elsewhere.
        found, origin = os.path.abspath(spec.origin), _real(spec.origin)
        if not any(_inside(found, root) or _inside(origin, root) for root in self.roots):
            return spec
        if any(_inside(found, e) for e in self.exempt) and any(_inside(origin, e) for e in self.exempt):
            return spec  # an installation that lies inside the project (a virtualenv there)
        return self.verified_spec(fullname, origin, is_package=spec.submodule_search_locations is not None)

    def verified_spec(self, fullname: str, origin: str, is_package: bool = False):
        """The spec that runs repository file ``origin`` as module ``fullname``, or TeamCodeError."""
        if not origin.endswith(".py"):
            raise TeamCodeError(f"{origin} is compiled code in the repository: team plugins may only import "
                                "Python source that `buildpolicy allow` hashed")
        expected = None
        if self.digests is not None:
            expected = self.digests.get(origin)
            if expected is None:
                raise TeamCodeError(f"{origin} (module {fullname}) was not hashed by `buildpolicy allow`; "
                                    f"import it with a plain import statement in the plugin, then {ALLOW_HINT}")
        locations = [os.path.dirname(origin)] if is_package else None
        return importlib.util.spec_from_file_location(fullname, origin, loader=VerifiedSourceLoader(origin, expected),
                                                      submodule_search_locations=locations)

    def _others(self, fullname, path, target):
        """What the finders after this one would load."""
        after = False
        for finder in list(sys.meta_path):
            if finder is self:
                after = True
                continue
            find = getattr(finder, "find_spec", None)
            if not after or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                return spec
        return None

    def _sibling(self, fullname: str):
        """A module beside a team plugin, imported by name: ``import helpers``."""
        if "." in fullname:
            return None
        for directory in self.sibling_dirs:
            package = os.path.join(directory, fullname, "__init__.py")
            if os.path.isfile(package):
                return importlib.util.spec_from_file_location(fullname, package,
                                                              submodule_search_locations=[os.path.dirname(package)])
            module = os.path.join(directory, fullname + ".py")
            if os.path.isfile(module):
                return importlib.util.spec_from_file_location(fullname, module)
        return None


def install_guard(plugin_paths: Iterable[str], project_root: str | None,
                  digests: Mapping[str, str] | None) -> RepositoryImportGuard:
    """Put a guard for these team plugins on ``sys.meta_path`` (replacing an earlier one)."""
    from buildpolicy.policy.plugincode import import_roots

    plugin_paths = list(plugin_paths)
    real_digests = None if digests is None else {_real(path): value for path, value in digests.items()}
    guard = RepositoryImportGuard(import_roots(plugin_paths, project_root),
                                  import_roots(plugin_paths, None), real_digests)
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, RepositoryImportGuard)]
    position = next((i for i, f in enumerate(sys.meta_path) if f is importlib.machinery.PathFinder), len(sys.meta_path))
    sys.meta_path.insert(position, guard)
    importlib.invalidate_caches()
    return guard


def load_plugin(path: str, guard: RepositoryImportGuard) -> ModuleType:
    """Import the team plugin module at ``path`` from its verified bytes."""
    name = "buildpolicy_local_" + "".join(c if c.isalnum() else "_" for c in os.path.splitext(os.path.basename(path))[0])
    if not path.endswith(".py"):
        raise TeamCodeError(f"{path} is not a Python source file (.py): team plugins run only reviewed source")
    spec = guard.verified_spec(name, _real(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
