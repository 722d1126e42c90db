"""Which files a team-local plugin's code is: the module and what it imports from the repository.

``buildpolicy allow`` hashes these files (``policy/trust.py``) and the plugin host
runs exactly the bytes hashed (``engine/teamcode.py``). A plugin may import
modules beside it (``import helpers`` for ``tools/helpers.py`` next to
``tools/bp.py``) or from the project directory; every ``import`` and
``from … import`` statement of the module, wherever it is (inside functions
too), is resolved against those two directories and followed to the modules it
names, transitively. A module imported in a way this cannot see
(``importlib.import_module(name)``) is not hashed, and the plugin host refuses
to run it from the repository.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable

# A plugin importing hundreds of repository modules is not a plugin; stop there
# rather than parse a whole tree on every run.
MAX_FILES = 256


def import_roots(plugin_paths: Iterable[str], project_root: str | None) -> list[str]:
    """The directories team plugins import repository modules from: each plugin's
    own directory, then the project directory (absolute, normalized, in that order)."""
    roots: list[str] = []
    for path in plugin_paths:
        directory = os.path.dirname(os.path.abspath(path))
        if directory not in roots:
            roots.append(directory)
    if project_root and os.path.abspath(project_root) not in roots:
        roots.append(os.path.abspath(project_root))
    return roots


def code_files(plugin_paths: Iterable[str], project_root: str | None) -> list[str]:
    """The plugin modules and every repository module they import, sorted, as absolute paths."""
    plugin_paths = [os.path.abspath(path) for path in plugin_paths]
    roots = import_roots(plugin_paths, project_root)
    found: set[str] = set()
    queue = list(plugin_paths)
    while queue and len(found) < MAX_FILES:
        path = queue.pop()
        if path in found:
            continue
        found.add(path)
        for module, level, names in _imports(path):
            queue.extend(f for f in _resolve(module, level, names, path, roots) if f not in found)
    return sorted(found)


MAX_CODE_BYTES = 16 << 20  # a team plugin module larger than this is not code anyone reviewed


def _imports(path: str) -> list[tuple[str, int, list[str]]]:
    """``(module, level, imported names)`` of every import statement in the file at ``path``."""
    from buildpolicy.filestate import read_bounded

    try:  # a repository's file: a FIFO, a device or a huge file is no module
        tree = ast.parse(read_bounded(path, MAX_CODE_BYTES), filename=path)
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return []  # unreadable or not Python: hashed as it is, nothing more to follow
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, 0, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level, [alias.name for alias in node.names]))
    return found


def _resolve(module: str, level: int, names: list[str], importer: str, roots: list[str]) -> list[str]:
    """The repository files ``from <level dots><module> import <names>`` (or ``import
    <module>``) may load: each package ``__init__.py`` on the way and the module itself;
    an imported name may be a submodule too."""
    parts = module.split(".") if module else []
    if level:
        base = os.path.dirname(importer)
        for _ in range(level - 1):
            base = os.path.dirname(base)
        bases = [base]
    else:
        bases = roots
    files: list[str] = []
    for base in bases:
        files.extend(_module_files(base, parts))
        for name in names:
            if name != "*":
                files.extend(_module_files(base, [*parts, name]))
    return files


def _module_files(base: str, parts: list[str]) -> list[str]:
    """``base/a/__init__.py``, ``base/a/b.py``… for the dotted parts ``[a, b]``, as far as they exist."""
    files = []
    directory = base
    for part in parts:
        if not part.isidentifier():
            break
        package = os.path.join(directory, part)
        # Python's own order: a regular package, a module, a namespace package.
        if os.path.isfile(os.path.join(package, "__init__.py")):
            files.append(os.path.join(package, "__init__.py"))
        elif os.path.isfile(package + ".py"):
            files.append(package + ".py")
            break  # a module has no submodules
        elif not os.path.isdir(package):
            break
        directory = package
    return files
