"""Find, validate and compile the policy files of every layer (DESIGN §2, §4).

The pipeline runs one way: parse → schema-validate → compile (expressions,
templates) → merge by rule id. Every stage reports ``file:line:col: message``
and all problems of a run are reported together.

Compiling is the expensive part, so the compiled ``PolicySet`` is pickled in
the cache directory, keyed by the path, size and mtime of every file read and
the listing of every policy directory; a warm run only stats files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs

from buildpolicy import __version__
from buildpolicy.errors import BuildpolicyError, Diagnostic
from buildpolicy.knobs import FileKnob
from buildpolicy.model import LAYER_RANK, EnvTemplate, Provenance, Rule
from buildpolicy.paths import atomic_write

PROFILE_KEYS = ("policies", "default_profile", "extends", "plugin_paths", "disable_plugins", "feature_profiles", "knobs", "rule")
POLICY_KEYS = ("rule", "knobs")
_ENV_NAME_CHARS = re.compile(r"^[A-Za-z0-9_]*$")
_TEMPLATE_PART = re.compile(r"\$\{[^}]*\}|\$\$")


@attrs.frozen
class KnobDeclaration:
    """A ``[knobs.NAME]`` table: settings for a plugin's knob or a team knob."""

    name: str
    fields: tuple[tuple[str, Any], ...]
    provenance: Provenance

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.fields).get(key, default)


@attrs.frozen
class OptionValue:
    """One plugin option (a key of a ``[<plugin>]`` table) with provenance."""

    value: Any
    provenance: Provenance


@attrs.frozen
class PolicySet:
    """Everything the files of all layers say, compiled and merged."""

    profile_path: str | None
    project_root: str | None
    default_profile: str
    feature_profiles: dict[str, tuple[str, ...]]
    plugin_paths: tuple[str, ...]
    disable_plugins: tuple[str, ...]
    rules: tuple[Rule, ...]  # effective rules (disabled ones included, enabled=False)
    replaced: tuple[tuple[Rule, Rule], ...]  # (lower rule, the higher rule that replaced it)
    knob_values: tuple[FileKnob, ...]
    knob_declarations: tuple[KnobDeclaration, ...]
    options: dict[str, dict[str, OptionValue]]
    files: tuple[tuple[str, str], ...]  # (layer, path) in load order


def layer_files(profile: Path | None, site_dir: Path, user_dir: Path, builtin_dir: Path) -> tuple[list[tuple[str, Path]], list[Path]]:
    """Return ``(layer, file)`` pairs in load order, and the directories listed.

    Directories are listed in lexical order; a missing directory is fine.
    """
    files: list[tuple[str, Path]] = []
    dirs: list[Path] = []

    def add_dir(layer: str, directory: Path) -> None:
        dirs.append(directory)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return
        files.extend((layer, directory / name) for name in names if name.endswith(".toml") and (directory / name).is_file())

    add_dir("builtin", builtin_dir)
    if profile is not None:
        files.append(("project", profile))
    add_dir("site", site_dir)
    add_dir("user", user_dir)
    return files, dirs


def project_policy_paths(profile: Path, data: dict) -> list[Path]:
    """The ``policies`` entries of a profile file, resolved against its directory."""
    base = profile.parent
    entries = data.get("policies")
    if entries is None:
        return [base / "policies"]
    return [base / entry for entry in entries]


class _Compiler:
    """Compiles the files of one run, collecting every diagnostic."""

    def __init__(self, fact_type: Callable[[str], str | None], known_facts: Iterable[str]):
        self.fact_type = fact_type
        self.known_facts = tuple(known_facts)
        self.diagnostics: list[Diagnostic] = []
        self.rules: list[Rule] = []
        self.knob_values: list[FileKnob] = []
        self.knob_declarations: list[KnobDeclaration] = []
        self.options: dict[str, dict[str, OptionValue]] = {}
        self.order = 0

    def parse(self, path: Path, kind: str):
        from buildpolicy.tomlpos import TomlSyntaxError, parse_toml
        from buildpolicy.validate import validate_document

        try:
            doc = parse_toml(path)
        except TomlSyntaxError as exc:
            self.diagnostics.append(exc.diagnostic)
            return None
        except OSError as exc:
            self.diagnostics.append(Diagnostic(path, None, None, f"cannot read: {exc.strerror or exc}"))
            return None
        problems = validate_document(doc, kind)
        if problems:
            self.diagnostics.extend(problems)
            return None
        return doc

    def add_file(self, layer: str, doc, known_keys: tuple[str, ...]) -> None:
        data = doc.data
        for index, table in enumerate(data.get("rule", ())):
            self._add_rule(layer, doc, index, table)
        for name, value in data.get("knobs", {}).items():
            line = (doc.key_pos(("knobs", name)) or (None, None))[0]
            provenance = Provenance(layer, f"[knobs] {name}", str(doc.path), line)
            if isinstance(value, dict):
                self.knob_declarations.append(KnobDeclaration(name, tuple(sorted(value.items())), provenance))
                if "default" in value:
                    self.knob_values.append(FileKnob(name, value["default"], provenance))
            else:
                self.knob_values.append(FileKnob(name, value, provenance))
        for key, table in data.items():
            if key in known_keys or not isinstance(table, dict):
                continue
            for option, value in table.items():
                line = (doc.key_pos((key, option)) or (None, None))[0]
                provenance = Provenance(layer, f"[{key}] {option}", str(doc.path), line)
                self.options.setdefault(key, {})[option] = OptionValue(value, provenance)

    def _position(self, doc, keypath, value: bool = True) -> tuple[int | None, int | None]:
        pos = doc.value_pos(keypath) if value else doc.key_pos(keypath)
        return pos if pos else (None, None)

    def _string_start(self, doc, keypath) -> tuple[int | None, int | None]:
        """Position of the first character inside a string value (after its quotes)."""
        line, col = self._position(doc, keypath)
        if line is None:
            return line, col
        try:
            text = doc.text.splitlines()[line - 1]
        except (AttributeError, IndexError):
            return line, col + 1
        opener = text[col - 1 : col + 2]
        return (line, col + 3) if opener in ('"""', "'''") else (line, col + 1)

    def _add_rule(self, layer: str, doc, index: int, table: dict) -> None:
        from buildpolicy.expr import ExprError, compile_expr, interpolation_facts

        path = str(doc.path)
        rule_line = self._position(doc, ("rule", index), value=False)[0]
        rule_id = table["id"]
        before = len(self.diagnostics)
        when = None
        if "when" in table:
            line, col = self._string_start(doc, ("rule", index, "when"))
            try:
                when = compile_expr(
                    table["when"], fact_type=self.fact_type, file=path, line=line, col=col, known_facts=self.known_facts
                )
            except ExprError as exc:
                self.diagnostics.append(exc.diagnostic)
        env = []
        for name, value in table.get("env", {}).items():
            key_line, key_col = self._position(doc, ("rule", index, "env", name), value=False)
            if not _ENV_NAME_CHARS.match(_TEMPLATE_PART.sub("", name)):
                self.diagnostics.append(
                    Diagnostic(path, key_line, key_col, f"rule {rule_id!r}: {name!r} is not a valid environment variable name "
                               "(letters, digits and _, with ${fact} parts)")
                )
            for text, keypath, is_value in ((name, ("rule", index, "env", name), False), (value, ("rule", index, "env", name), True)):
                line, col = self._string_start(doc, keypath) if is_value else (key_line, key_col)
                try:
                    interpolation_facts(text, fact_type=self.fact_type, file=path, line=line, col=col, known_facts=self.known_facts)
                except ExprError as exc:
                    self.diagnostics.append(exc.diagnostic)
            env.append(EnvTemplate(name, value, key_line))
        for position, fragment in enumerate(table.get("rustflags", ())):
            if not fragment or any(ch.isspace() for ch in fragment):
                line, col = self._position(doc, ("rule", index, "rustflags", position))
                self.diagnostics.append(
                    Diagnostic(path, line, col, f"rule {rule_id!r}: rustflags fragment {fragment!r} must be one non-empty "
                               "argument without whitespace (write [\"-C\", \"opt-level=3\"])")
                )
        if len(self.diagnostics) > before:
            return
        self.order += 1
        self.rules.append(
            Rule(
                id=rule_id,
                layer=layer,
                file=path,
                line=rule_line,
                order=self.order,
                description=table.get("description", ""),
                when=when,
                knob=table.get("knob"),
                status=table.get("status"),
                env=tuple(env),
                unset=tuple(table.get("unset", ())),
                decide=tuple(sorted(table.get("decide", {}).items())),
                rustflags=tuple(table.get("rustflags", ())),
                priority=table.get("priority", 0),
                force=table.get("force", False),
                enabled=table.get("enabled", True),
            )
        )

    def merged_rules(self) -> tuple[tuple[Rule, ...], tuple[tuple[Rule, Rule], ...]]:
        """Merge by id: a rule in a higher layer (or later in the same layer) replaces a lower one."""
        by_id: dict[str, Rule] = {}
        replaced: list[tuple[Rule, Rule]] = []
        for rule in sorted(self.rules, key=lambda r: (LAYER_RANK[r.layer], r.order)):
            previous = by_id.get(rule.id)
            if previous is not None:
                if previous.layer == rule.layer:
                    self.diagnostics.append(
                        Diagnostic(rule.file, rule.line, None, f"rule id {rule.id!r} is defined twice in the {rule.layer} layer "
                                   f"(also at {previous.file}:{previous.line})")
                    )
                replaced.append((previous, rule))
            by_id[rule.id] = rule
        return tuple(by_id.values()), tuple(replaced)


def _stat_token(path: Path | str) -> str:
    """Size and mtime of a file or directory; a directory's mtime changes when entries come or go."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _inputs(files: list[tuple[str, Path]], dirs: list[Path], extra: str) -> tuple[tuple[str, str], ...]:
    """What a compiled PolicySet depends on: version, plugin facts, every file and listed directory."""
    return (
        ("version", __version__),
        ("extra", extra),
        *((f"file:{layer}:{path}", _stat_token(path)) for layer, path in files),
        *((f"dir:{directory}", _stat_token(directory)) for directory in dirs),
    )


def _unchanged(inputs: tuple[tuple[str, str], ...], extra: str) -> bool:
    """Whether every recorded input still has the recorded state (a warm run only stats files)."""
    for key, token in inputs:
        if key == "version":
            current = __version__
        elif key == "extra":
            current = extra
        else:
            current = _stat_token(key.split(":", 2)[-1] if key.startswith("file:") else key[4:])
        if current != token:
            return False
    return True


def _cache_file(cache_dir: Path, profile: Path | None) -> Path:
    import zlib

    label = str(profile or "-")
    return cache_dir / "compiled" / f"{zlib.crc32(label.encode()):08x}-{len(label)}.pickle"


def load_policies(
    *,
    profile: Path | None,
    site_dir: Path,
    user_dir: Path,
    builtin_dir: Path,
    fact_type: Callable[[str], str | None],
    known_facts: Iterable[str],
    cache_dir: Path | None,
    extra_key: str = "",
) -> PolicySet:
    """Load every layer's files into a ``PolicySet`` (from the cache when nothing changed).

    The warm path unpickles the cached set and stats the files and directories
    it was built from; only when one changed are the files read and compiled.
    Raises BuildpolicyError with every diagnostic found when any file is bad.
    """
    import pickle

    cache_file = _cache_file(cache_dir, profile) if cache_dir is not None else None
    if cache_file is not None:
        try:
            with open(cache_file, "rb") as handle:
                cached_profile, inputs, policy_set = pickle.load(handle)
            if cached_profile == str(profile) and isinstance(policy_set, PolicySet) and _unchanged(inputs, extra_key):
                return policy_set
        except Exception:  # noqa: BLE001 - any unreadable cache is rebuilt
            pass

    ordered, dirs = _discover(profile, site_dir, user_dir, builtin_dir)
    inputs = _inputs(ordered, dirs, extra_key)  # stat before reading: an edit during compile invalidates
    policy_set = _compile(profile, ordered, fact_type, known_facts)
    if cache_file is not None:
        try:
            atomic_write(cache_file, pickle.dumps((str(profile), inputs, policy_set), protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            pass
    return policy_set


def _discover(profile, site_dir, user_dir, builtin_dir):
    """Every file to load in layer order, and the directories listed to find them."""
    import tomllib

    base_files, dirs = layer_files(profile, site_dir, user_dir, builtin_dir)
    profile_data = None
    project_files: list[tuple[str, Path]] = []
    if profile is not None:
        try:
            profile_data = tomllib.loads(profile.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            profile_data = None  # reported with its position by the full parse
        for entry in project_policy_paths(profile, profile_data or {}):
            dirs.append(entry)  # listed even when missing: creating it invalidates the cache
            if entry.is_dir():
                project_files.extend(
                    ("project", entry / n) for n in sorted(os.listdir(entry)) if n.endswith(".toml") and (entry / n).is_file()
                )
            elif entry.is_file():
                project_files.append(("project", entry))
    # Load order: builtin, profile, project policies, site, user.
    ordered = [f for f in base_files if f[0] == "builtin"]
    ordered += [f for f in base_files if f[0] == "project"] + project_files
    ordered += [f for f in base_files if f[0] in ("site", "user")]
    return ordered, dirs


def _compile(profile, ordered, fact_type, known_facts) -> PolicySet:
    compiler = _Compiler(fact_type, known_facts)
    settings: dict[str, Any] = {}
    for layer, path in ordered:
        is_profile = profile is not None and path == profile
        doc = compiler.parse(path, "profile" if is_profile else "policy")
        if doc is None:
            continue
        if is_profile:
            settings = doc.data
            for index, entry in enumerate(doc.data.get("policies", ())):
                if not (profile.parent / entry).exists():
                    line, col = doc.value_pos(("policies", index)) or (None, None)
                    compiler.diagnostics.append(Diagnostic(path, line, col, f"policy path {entry!r} does not exist"))
        compiler.add_file(layer, doc, PROFILE_KEYS if is_profile else POLICY_KEYS)
    rules, replaced = compiler.merged_rules()
    if compiler.diagnostics:
        raise BuildpolicyError(sorted(compiler.diagnostics, key=Diagnostic.sort_key))
    return PolicySet(
        profile_path=str(profile) if profile else None,
        project_root=str(profile.parent) if profile else None,
        default_profile=settings.get("default_profile", "dev"),
        feature_profiles={name: tuple(args) for name, args in settings.get("feature_profiles", {}).items()},
        plugin_paths=tuple(str(profile.parent / p) for p in settings.get("plugin_paths", ())),
        disable_plugins=tuple(settings.get("disable_plugins", ())),
        rules=rules,
        replaced=replaced,
        knob_values=tuple(compiler.knob_values),
        knob_declarations=tuple(compiler.knob_declarations),
        options=compiler.options,
        files=tuple((layer, str(path)) for layer, path in ordered),
    )
