"""Which compilation a rustc command line is: crate name, kind and mode.

Standard library only: the rustc wrapper imports it for every compilation.
"""

from __future__ import annotations

# The wrapper imports this module per compilation: nothing at run time (not even
# typing, which imports re); annotations are strings only.

KINDS = ("lib", "bin", "build-script", "proc-macro", "test")


def _values(args: list[str] | tuple[str, ...], flag: str) -> list[str]:
    """Every value of ``flag`` in ``args`` (``--flag v`` and ``--flag=v``)."""
    found = []
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            found.append(args[index + 1])
        elif arg.startswith(flag + "="):
            found.append(arg[len(flag) + 1:])
    return found


def _codegen_option(args: list[str] | tuple[str, ...], key: str) -> str | None:
    """The value of ``-C key=value`` (also ``-Ckey=value``, ``--codegen key=value``)."""
    values = _values(args, "-C") + _values(args, "--codegen")
    values += [arg[2:] for arg in args if arg.startswith("-C") and len(arg) > 2 and arg[2] != "="]
    for value in values:
        name, sep, rest = value.partition("=")
        if sep and name == key:
            return rest
    return None


def unit_of(args: list[str] | tuple[str, ...]) -> dict | None:
    """The compilation ``args`` (rustc's arguments) asks for, or None for a query.

    ``{"crate", "kind", "check", "metadata"}``: kind is one of ``KINDS`` (a
    build script is the ``build_script_*`` binary cargo compiles; ``--test``
    makes a test harness); ``check`` is true when nothing is linked (``cargo
    check``: metadata only, a fraction of the memory). Queries (``-vV``,
    ``--print``) have no crate name, or print instead of compiling.
    """
    names = _values(args, "--crate-name")
    if not names or any(arg == "--print" or arg.startswith("--print=") for arg in args):
        return None
    name = names[-1]
    types = {t for value in _values(args, "--crate-type") for t in value.split(",")}
    if "--test" in args:
        kind = "test"
    elif name.startswith("build_script_"):
        kind = "build-script"
    elif "proc-macro" in types:
        kind = "proc-macro"
    elif "bin" in types or not types:  # rustc's default crate type is bin
        kind = "bin"
    else:
        kind = "lib"
    emits = {e.partition("=")[0] for value in _values(args, "--emit") for e in value.split(",")}
    return {
        "crate": name,
        "kind": kind,
        "check": bool(emits) and "link" not in emits,
        "metadata": _codegen_option(args, "metadata"),
    }


def unit_key(unit: dict) -> str:
    """The name learned peaks are kept under: ``crate:kind`` (``serde:lib``).

    Every package's build script is the crate ``build_script_build``: it is named by
    its package instead (``openssl-sys:build-script``), which cargo tells rustc in
    ``CARGO_PKG_NAME`` (the wrapper passes it on as ``package``).
    """
    if unit["kind"] == "build-script" and unit.get("package"):
        return f"{unit['package']}:build-script"
    return f"{unit['crate']}:{unit['kind']}"
