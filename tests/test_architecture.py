"""The package layout of docs/architecture.md holds: imports flow from later stages to
earlier ones and to the base modules, never back, with no import cycle at all, and no
module grows past 700 lines.

Imports are read with ``ast`` from every module, at module level and inside functions
(lazy imports are imports too); only ``if TYPE_CHECKING:`` blocks, which never run, are
left out. Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first, so each
import also counts as an import of every enclosing package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "buildpolicy"

# Stages in the order of a run; a module may import its own stage and earlier ones.
STAGES = ("base", "policy", "facts", "engine", "output", "replay", "run", "team", "commands", "entry")
BASE_MODULES = {"buildpolicy", "errors", "paths", "filestate", "model", "record", "sizes", "data"}
# The command line, and the names kept importable where third-party code expects them.
ENTRY_MODULES = {"cli", "__main__", "hookspecs", "policytest"}
MAX_LINES = 700
MAX_TOP_LEVEL_MODULES = 11


def module_files() -> dict[str, Path]:
    """``{dotted module name: file}`` of every module of the package."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def stage_of(module: str) -> str:
    """The stage a module belongs to."""
    parts = module.split(".")
    first = parts[1] if len(parts) > 1 else "buildpolicy"
    if first in BASE_MODULES:
        return "base"
    if first in ENTRY_MODULES:
        return "entry"
    assert first in STAGES, f"{module} is in no stage: add it to docs/architecture.md and to STAGES here"
    return first


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every import statement that can run: module level, in functions and classes."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``module`` imports, enclosing packages included."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import name` imports the module pkg.name when there is one.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for name in names:
            while name:
                if name in modules and name != module:
                    targets.add(name)
                name = name.rpartition(".")[0]
    return targets


def import_graph() -> dict[str, set[str]]:
    """``{module: modules it imports}`` for the whole package."""
    modules = module_files()
    return {module: imports_of(module, path, modules) for module, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first repeated last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_walker_sees_lazy_relative_and_package_imports(tmp_path):
    # The checks below are only as good as the walker: it must see what Python runs.
    source = (
        "from __future__ import annotations\n"
        "import buildpolicy.facts.cache\n"
        "from .. import errors\n"
        "from . import pipeline\n"
        "if TYPE_CHECKING:\n"
        "    from buildpolicy.output import report\n"
        "def later():\n"
        "    from buildpolicy.run.remote.probe import assess\n"
    )
    path = tmp_path / "probe_me.py"
    path.write_text(source)
    found = imports_of("buildpolicy.engine.probe_me", path, module_files())
    assert {"buildpolicy.facts.cache", "buildpolicy.facts", "buildpolicy", "buildpolicy.errors",
            "buildpolicy.engine.pipeline", "buildpolicy.engine", "buildpolicy.run.remote.probe",
            "buildpolicy.run.remote", "buildpolicy.run"} <= found
    assert "buildpolicy.output.report" not in found


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_go_from_later_stages_to_earlier_ones():
    rank = {stage: index for index, stage in enumerate(STAGES)}
    backwards = [
        f"{module} ({stage_of(module)}) imports {target} ({stage_of(target)})"
        for module, targets in sorted(import_graph().items())
        for target in sorted(targets)
        if rank[stage_of(target)] > rank[stage_of(module)]
    ]
    assert not backwards, "imports climbing back to a later stage:\n" + "\n".join(backwards)


def test_package_inits_import_nothing_of_their_own():
    # A package __init__ that imports its modules would make every module of the
    # package depend on all the others (and the warm replay import them all).
    graph = import_graph()
    offenders = {
        module: sorted(t for t in graph[module] if t.startswith(module + "."))
        for module, path in module_files().items()
        if path.name == "__init__.py"
    }
    assert not {m: t for m, t in offenders.items() if t}


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_700_lines(path):
    lines = path.read_text().count("\n")
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE.parent)} has {lines} lines: split it along its seams"


def test_few_modules_stay_at_the_top():
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_every_stage_package_says_what_it_owns_and_may_import():
    for stage in STAGES[1:-1]:
        init = PACKAGE / stage / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "import" in doc, f"{init} must say what it may import"


def test_public_names_keep_working_where_plugins_and_teams_import_them():
    # Third-party plugins and team test suites import these names; they moved
    # into the stages and are re-exported from where they were.
    import buildpolicy
    import buildpolicy.hookspecs as old_hookspecs
    import buildpolicy.policytest as old_policytest
    from buildpolicy.engine import hookspecs
    from buildpolicy.model import Decision, KnobSpec  # noqa: F401 - importable is the point
    from buildpolicy.team import policytest

    assert buildpolicy.hookimpl.project_name == "buildpolicy"
    assert old_policytest.run_case_files is policytest.run_case_files
    assert old_hookspecs.hook_names() == hookspecs.hook_names()
    assert all(getattr(old_hookspecs, name) is getattr(hookspecs, name) for name in hookspecs.hook_names())


def test_every_package_is_in_the_wheel():
    """pyproject lists the packages explicitly: a new subpackage missing there works from the
    source tree and is absent from an installed copy."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(PACKAGE.parent).parts) for init in PACKAGE.rglob("__init__.py")}
    assert found - listed == set()
