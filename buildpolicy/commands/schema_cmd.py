"""``buildpolicy schema [profile|policy|tests] [--path]``: the JSON Schemas for editors and CI."""

from __future__ import annotations

import sys

from buildpolicy.errors import BuildpolicyError

KINDS = ("profile", "policy", "tests")
HELP = "print a JSON Schema (profile, policy or tests), or with --path where it is installed"


def add_arguments(parser) -> None:
    """This command's arguments."""
    parser.add_argument("kind", nargs="?", choices=KINDS,
                        help="profile (buildpolicy.toml), policy (policies/*.toml) or tests (policies/tests/*.toml); "
                             "without it, every schema's path is listed")
    parser.add_argument("--path", action="store_true", help="print the installed file's path instead of its content")


def run(args, command_argv) -> int:
    """Print the schema's content (default) or path; without a kind, ``kind<TAB>path`` for each."""
    from buildpolicy.data import schema_dir

    if command_argv is not None:
        raise BuildpolicyError("schema takes no command after `--`")
    if args.kind is None:
        sys.stdout.write("".join(f"{kind}\t{schema_dir() / f'{kind}.schema.json'}\n" for kind in KINDS))
        return 0
    path = schema_dir() / f"{args.kind}.schema.json"
    if args.path:
        sys.stdout.write(f"{path}\n")
        return 0
    try:
        sys.stdout.write(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BuildpolicyError(f"cannot read the installed schema {path}: {exc.strerror or exc}") from None
    return 0
