"""Find, validate and compile the policy files of every layer (DESIGN §2, §4).

The pipeline runs one way: parse → schema-validate → compile (expressions,
templates) → merge by rule id. Every stage reports ``file:line:col: message``
and all problems of a run are reported together.

Compiling is the expensive part, so the compiled ``PolicySet`` is pickled in
the cache directory, keyed by the path, size and mtime of every file read and
the listing of every policy directory; a warm run only stats files.

Load order (lowest first): builtin, the packs the profile ``extends`` (in
order, layer ``pack``), the profile file, the project's policy files, site,
user. While compiling, the items of project and pack files that need the
user's trust are collected (see ``buildpolicy.policy.trust``) and cached with the set,
together with the SHA-256 of the bytes each file was compiled from: a file is read
once, and what is compiled is what ``buildpolicy allow`` vouches for.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from pathlib import Path

TYPE_CHECKING = False  # typing is not imported at run time: it costs a full `env` milliseconds
if TYPE_CHECKING:
    from typing import Any

from buildpolicy.record import evolve, frozen
from buildpolicy.errors import BuildpolicyError, Diagnostic
from buildpolicy.policy.knobs import FileKnob
from buildpolicy.model import LAYER_RANK, EnvTemplate, Provenance, Rule
from buildpolicy.policy.discovery import discover, refused_layers
from buildpolicy.policy.packs import Pack
from buildpolicy.policy.buildvars import STATE_VAR
from buildpolicy.policy.compiled_cache import (
    CACHE_FORMAT,
    cache_file_for,
    collector_paused,
    input_paths,
    inputs_of,
    read_cache,
    same_compiler,
    unchanged,
    write_cache,
)
from buildpolicy.policy.trust import UNTRUSTED_LAYERS, Finding

PROFILE_KEYS = ("policies", "default_profile", "extends", "plugin_paths", "disable_plugins", "feature_profiles", "knobs", "rule")
POLICY_KEYS = ("rule", "knobs")
_STATE_VAR_MESSAGE = (
    f"rule {{rule!r}} {{verb}}s {STATE_VAR}, the record `buildpolicy env` keeps of what it changed; "
    "no policy file may set or unset it (remove the entry)"
)
_ENV_NAME_CHARS = re.compile(r"^[A-Za-z0-9_]*$")
_TEMPLATE_PART = re.compile(r"\$\{[^}]*\}|\$\$")
_EMPTY: dict = {}  # never written to
_WHITESPACE = re.compile(r"\s")  # what str.isspace() calls whitespace
_NUL_ESCAPE = re.compile(r"\\(?:x00|u0000|U00000000)")  # TOML's escapes of NUL (\x00 is TOML 1.1's)


@frozen
class KnobDeclaration:
    """A ``[knobs.NAME]`` table: settings for a plugin's knob or a team knob."""

    name: str
    fields: tuple[tuple[str, Any], ...]
    provenance: Provenance  # the ``[knobs.NAME]`` key, with its column
    # (part, line, col) of its keys and values for messages: "key:type", "value:default", "alias:<NAME>".
    positions: tuple[tuple[str, int | None, int | None], ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        """The declaration's ``key`` (``aliases``, ``type``, ``default``…), or ``default``."""
        return dict(self.fields).get(key, default)

    def where(self, part: str | None = None) -> str:
        """``file:line:col`` of ``part`` (see ``positions``), else of the declaration itself."""
        for name, line, col in self.positions:
            if name == part:
                return ":".join(str(p) for p in (self.provenance.file, line, col) if p is not None)
        return self.provenance.where()


@frozen
class OptionValue:
    """One plugin option (a key of a ``[<plugin>]`` table) with provenance."""

    value: Any
    provenance: Provenance


@frozen
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
    packs: tuple[Pack, ...] = ()  # the profile's `extends`, resolved, in order
    trust_findings: tuple[Finding, ...] = ()  # items of project/pack files that need `buildpolicy allow`
    trust_files: tuple[str, ...] = ()  # files the trust hash covers (project, pack, team plugins)
    # (path, sha256 of the bytes compiled) of every project and pack file: what `allow` vouches for.
    trust_digests: tuple[tuple[str, str], ...] = ()
    # (name, file, line, col) of every table that is not a key of buildpolicy's own: a plugin's options.
    plugin_tables: tuple[tuple[str, str, int | None, int | None], ...] = ()

    def pack_of(self, file: str | None) -> str | None:
        """The name of the pack ``file`` belongs to (``pack:acme`` or the path in ``extends``), or None."""
        for pack in self.packs:
            if file in pack.files:
                return pack.name
        return None

    def rule_source(self, rule: Rule) -> str:
        """Provenance ``source`` of a rule: ``rule <id>``, plus ``(pack <name>)`` for a pack rule."""
        pack = self.pack_of(rule.file) if rule.layer == "pack" else None
        return f"rule {rule.id}" + (f" (pack {pack})" if pack else "")


@frozen
class _Skip:
    """The parts of a schema-invalid document not to compile, as key-path prefixes.

    A schema error at ``rule[2].env.X`` skips rule 2; one at
    ``knobs.linker.aliases`` skips ``knobs.linker``; one at a top-level key
    (``rule = 5``, ``default_profile = 1``) skips that key; an error about the
    document as a whole skips everything.
    """

    prefixes: frozenset = frozenset()
    everything: bool = False

    def has(self, *path) -> bool:
        """Whether ``path``, or a part holding it, is to be skipped."""
        if not self.prefixes:
            return self.everything  # a valid document (asked once per rule: no generator)
        return self.everything or any(path[:end] in self.prefixes for end in range(1, len(path) + 1))


_NOTHING = _Skip()


def _invalid_parts(data: dict, kind: str) -> _Skip:
    """The key-path prefixes of ``data`` that have schema errors (see ``_Skip``)."""
    from buildpolicy.policy.validate import schema_errors

    prefixes = set()
    for error in schema_errors(data, kind):
        path = tuple(error.absolute_path)
        if "propertyNames" in error.absolute_schema_path and isinstance(error.instance, str):
            path += (error.instance,)  # a bad key is reported at the table holding it
        if not path:
            return _Skip(everything=True)
        prefixes.add(path[:2])
    return _Skip(frozenset(prefixes))


def _nul_characters(doc) -> list[Diagnostic]:
    """A NUL character (TOML ``\\u0000``) in any string of the file, at its position: no
    environment value, argument or path can hold one (``env`` values are checked with
    their rule, see ``_add_rule``)."""
    from buildpolicy.policy.tomlpos import source_position

    found: list[Diagnostic] = []
    if not _NUL_ESCAPE.search(doc.text):
        return found  # TOML refuses a raw NUL: only an escape can put one in a string

    def walk(value, keypath):
        if isinstance(value, str):
            if "\0" in value and not (len(keypath) > 3 and keypath[0] == "rule" and keypath[2] == "env"):
                line, col = source_position(doc, keypath, True, value.index("\0"))
                found.append(Diagnostic(doc.path, line, col, f"{'.'.join(map(str, keypath))} contains a NUL character, "
                                        "which no variable, argument or path can hold: remove it"))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*keypath, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*keypath, index))

    walk(doc.data, ())
    return found


@functools.cache
def _rule_compilers() -> tuple:
    """What compiling a rule calls, imported once (not at every one of 10,000 rules)."""
    from buildpolicy.policy.expr.parser import compile_expr
    from buildpolicy.policy.expr.templates import interpolation_facts
    from buildpolicy.policy.expr.tokens import ExprError
    from buildpolicy.policy.trust import env_finding, is_safe_name_template

    return compile_expr, interpolation_facts, ExprError, env_finding, is_safe_name_template


def _memoized(fact_type: Callable[[str], str | None]) -> Callable[[str], str | None]:
    """``fact_type`` answering each name once: a large policy set asks for the same few
    facts tens of thousands of times (its ``${fact}`` templates)."""
    known: dict[str, str | None] = {}

    def lookup(name: str) -> str | None:
        try:
            return known[name]
        except KeyError:
            kind = known[name] = fact_type(name)
            return kind

    return lookup


class _Compiler:
    """Compiles the files of one run, collecting every diagnostic."""

    def __init__(self, fact_type: Callable[[str], str | None], known_facts: Iterable[str]):
        self.fact_type = _memoized(fact_type)
        self.known_facts = tuple(known_facts)
        self.diagnostics: list[Diagnostic] = []
        self.findings: list[Finding] = []  # untrusted items of project and pack files
        self.pack_of: dict[str, str] = {}  # pack file -> pack name
        self.rules: list[Rule] = []
        self.knob_values: list[FileKnob] = []
        self.knob_declarations: list[KnobDeclaration] = []
        self.options: dict[str, dict[str, OptionValue]] = {}
        self.invalid: dict[int, tuple[Any, _Skip]] = {}  # id(doc) -> (doc, its parts with schema errors)
        self.digests: dict[str, str] = {}  # path -> sha256 of the bytes parsed
        self.plugin_tables: list[tuple[str, str, int | None, int | None]] = []
        self.order = 0
        self.expressions: dict[str, Any] = {}  # `when` text -> compiled Expr (successes only)

    def parse(self, path: Path, kind: str, raw: bytes | None = None, digest: str | None = None):
        """Parse and schema-validate ``path`` as ``kind``, recording every diagnostic.

        Returns None when the file cannot be read or is not TOML. A document
        with schema errors is still returned: ``skip_for(doc)`` names its parts
        (a rule, a knob, a top-level key) that have errors, and ``add_file``
        compiles only the others, so ``check`` reports the expression errors of
        the valid rules together with the schema errors. ``raw``: the file's
        bytes when the caller already read them (``digest``: their SHA-256 when
        it is known). The SHA-256 of the bytes parsed is kept in ``digests``.
        """
        from buildpolicy.filestate import sha256_hex
        from buildpolicy.policy.tomlpos import TomlSyntaxError, parse_toml, read_toml_bytes
        from buildpolicy.policy.validate import validate_document

        try:
            if raw is None:
                raw = read_toml_bytes(path)
            self.digests[str(path)] = digest or sha256_hex(raw)
            doc = parse_toml(path, raw=raw)
        except TomlSyntaxError as exc:
            self.diagnostics.append(exc.diagnostic)
            return None
        except OSError as exc:
            self.diagnostics.append(Diagnostic(path, None, None, f"cannot read: {exc.strerror or exc}"))
            return None
        problems = validate_document(doc, kind)
        if problems:
            self.diagnostics.extend(problems)
            self.invalid[id(doc)] = (doc, _invalid_parts(doc.data, kind))
        self.diagnostics.extend(_nul_characters(doc))
        return doc

    def skip_for(self, doc) -> _Skip:
        """The parts of ``doc`` with schema errors (nothing for a valid document)."""
        entry = self.invalid.get(id(doc))
        return entry[1] if entry is not None and entry[0] is doc else _NOTHING

    def add_file(self, layer: str, doc, known_keys: tuple[str, ...]) -> None:
        """Compile a file's rules, knob values and declarations, and plugin options.

        Parts with schema errors (see ``parse``) are skipped: the run fails on
        their diagnostics anyway, and their contents cannot be relied on.
        """
        data = doc.data
        skip = self.skip_for(doc)
        if skip.everything:
            return
        rules = () if skip.has("rule") else data.get("rule", ())
        for index, table in enumerate(rules):
            if not skip.has("rule", index):
                self._add_rule(layer, doc, index, table)
        knobs = {} if skip.has("knobs") else data.get("knobs", {})
        for name, value in knobs.items():
            if not skip.has("knobs", name):
                self._add_knob(layer, doc, name, value)
        for key, table in data.items():
            if key in known_keys or not isinstance(table, dict) or skip.has(key):
                continue
            self.plugin_tables.append((key, str(doc.path), *self._position(doc, (key,), value=False)))
            for option, value in table.items():
                if skip.has(key, option):
                    continue
                line = (doc.key_pos((key, option)) or (None, None))[0]
                provenance = Provenance(layer, f"[{key}] {option}", str(doc.path), line)
                self.options.setdefault(key, {})[option] = OptionValue(value, provenance)

    def _add_knob(self, layer: str, doc, name: str, value: Any) -> None:
        """A ``[knobs]`` entry: a value (``jobs = 4``) or a declaration (``[knobs.jobs]``)."""
        path = str(doc.path)
        line, col = self._position(doc, ("knobs", name), value=False)
        provenance = Provenance(layer, f"[knobs] {name}", path, line, col)
        if isinstance(value, dict):
            positions = [(f"key:{key}", *self._position(doc, ("knobs", name, key), value=False)) for key in value]
            positions += [(f"value:{key}", *self._position(doc, ("knobs", name, key))) for key in value]
            aliases = value.get("aliases", ())
            positions += [(f"alias:{alias}", *self._position(doc, ("knobs", name, "aliases", index)))
                          for index, alias in enumerate(aliases) if isinstance(alias, str)]
            self.knob_declarations.append(KnobDeclaration(name, tuple(sorted(value.items())), provenance, tuple(positions)))
            if "default" in value:
                self.knob_values.append(FileKnob(name, value["default"], provenance, self._position(doc, ("knobs", name, "default"))))
        else:
            self.knob_values.append(FileKnob(name, value, provenance, self._position(doc, ("knobs", name))))
        if layer not in UNTRUSTED_LAYERS:
            return
        from buildpolicy.policy.trust import SENSITIVE_KNOBS, knob_alias_finding, knob_finding, knob_value_alias_finding

        if name not in SENSITIVE_KNOBS:
            return
        if not isinstance(value, dict) or "default" in value:
            self.findings.append(knob_finding(name, path, line, col))
        if isinstance(value, dict):
            for index, alias in enumerate(value.get("aliases", ())):
                self.findings.append(knob_alias_finding(name, alias, path, *self._position(doc, ("knobs", name, "aliases", index))))
            value_aliases = value.get("value_aliases")
            for given in value_aliases if isinstance(value_aliases, dict) else ():
                self.findings.append(knob_value_alias_finding(
                    name, given, value_aliases[given], path, *self._position(doc, ("knobs", name, "value_aliases", given))))

    def _position(self, doc, keypath, value: bool = True) -> tuple[int | None, int | None]:
        pos = doc.value_pos(keypath) if value else doc.key_pos(keypath)
        return pos if pos else (None, None)

    def _relocated(self, diagnostic: Diagnostic, text: str, doc, keypath, value: bool = True) -> Diagnostic:
        """Move an expression or template diagnostic from inside ``text`` to the file.

        ``diagnostic`` was made without a base position, so its line and column
        give the fault's offset in the decoded string; ``tomlpos.source_position`` maps
        that offset back through quotes, escapes and line-ending backslashes to
        the file's line and column. The detail (the text with a caret) is kept.
        """
        from buildpolicy.policy.tomlpos import source_position

        lines = text.split("\n")
        rel_line, rel_col = diagnostic.line or 1, diagnostic.col or 1
        offset = sum(len(part) + 1 for part in lines[: rel_line - 1]) + rel_col - 1
        line, col = source_position(doc, keypath, value, offset)
        return Diagnostic(diagnostic.file, line, col, diagnostic.message, diagnostic.detail)

    def _add_rule(self, layer: str, doc, index: int, table: dict) -> None:
        compile_expr, interpolation_facts, ExprError, env_finding, is_safe_name_template = _rule_compilers()
        path = str(doc.path)
        rule_line = (doc.key_pos(("rule", index)) or (None,))[0]
        rule_id = table["id"]
        before = len(self.diagnostics)
        when = None
        if "when" in table:
            try:
                text = table["when"]
                when = self.expressions.get(text)
                if when is None:
                    # Compiled expressions are immutable: rules with the same `when` share one
                    # (large generated policy sets repeat a few conditions thousands of times).
                    when = self.expressions[text] = compile_expr(text, fact_type=self.fact_type, file=path,
                                                                 known_facts=self.known_facts)
            except ExprError as exc:
                self.diagnostics.append(self._relocated(exc.diagnostic, table["when"], doc, ("rule", index, "when")))
        env = []
        for name, value in table.get("env", {}).items():
            key_line, key_col = doc.key_pos(("rule", index, "env", name)) or (None, None)
            if not _ENV_NAME_CHARS.match(_TEMPLATE_PART.sub("", name) if "$" in name else name):
                self.diagnostics.append(
                    Diagnostic(path, key_line, key_col, f"rule {rule_id!r}: {name!r} is not a valid environment variable name "
                               "(letters, digits and _, with ${fact} parts)")
                )
            elif name == STATE_VAR:
                self.diagnostics.append(Diagnostic(path, key_line, key_col, _STATE_VAR_MESSAGE.format(rule=rule_id, verb="set")))
            if "\0" in value:
                from buildpolicy.policy.tomlpos import source_position

                line, col = source_position(doc, ("rule", index, "env", name), True, value.index("\0"))
                self.diagnostics.append(
                    Diagnostic(path, line, col, f"rule {rule_id!r}: the value of {name} contains a NUL character, which an "
                               "environment variable cannot hold (the value would be cut short there): remove it")
                )
            for text, is_value in ((name, False), (value, True)):
                if "$" not in text:
                    continue  # no ${fact}, nothing to check (most values)
                try:
                    interpolation_facts(text, fact_type=self.fact_type, file=path, known_facts=self.known_facts)
                except ExprError as exc:
                    keypath = ("rule", index, "env", name)
                    self.diagnostics.append(self._relocated(exc.diagnostic, text, doc, keypath, is_value))
            env.append(EnvTemplate(name, value, key_line, key_col))
            if layer in UNTRUSTED_LAYERS and not is_safe_name_template(name):
                self.findings.append(env_finding(rule_id, name, path, key_line, key_col))
        positions = [("id", *(doc.value_pos(("rule", index, "id")) or (None, None)))]
        decide = table.get("decide", _EMPTY)
        positions += [(f"decide.{name}", *self._position(doc, ("rule", index, "decide", name))) for name in decide]
        for position, name in enumerate(table.get("unset", ())):
            line, col = self._position(doc, ("rule", index, "unset", position))
            positions.append((f"unset.{name}", line, col))
            if name == STATE_VAR:
                self.diagnostics.append(Diagnostic(path, line, col, _STATE_VAR_MESSAGE.format(rule=rule_id, verb="unset")))
            elif layer in UNTRUSTED_LAYERS:
                from buildpolicy.policy.trust import is_safe_name, unset_finding

                if not is_safe_name(name):
                    self.findings.append(unset_finding(rule_id, name, path, line, col))
        for position, fragment in enumerate(table.get("rustflags", ())):
            if not fragment or _WHITESPACE.search(fragment):
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
                decide=tuple(sorted(decide.items())) if decide else (),
                rustflags=tuple(table.get("rustflags", ())),
                priority=table.get("priority", 0),
                force=table.get("force", False),
                enabled=table.get("enabled", True),
                positions=tuple(positions),
            )
        )

    def merge(self, unit: FileUnit) -> None:
        """Add what one policy file compiled to (see ``FileUnit``), in load order."""
        self.diagnostics.extend(unit.diagnostics)
        self.findings.extend(unit.findings)
        self.rules.extend(unit.rules)
        self.knob_values.extend(unit.knob_values)
        self.knob_declarations.extend(unit.knob_declarations)
        for table, option, value in unit.options:
            self.options.setdefault(table, {})[option] = value
        self.plugin_tables.extend(unit.plugin_tables)
        if unit.digest is not None:
            self.digests[unit.key[1]] = unit.digest

    def merged_rules(self) -> tuple[tuple[Rule, ...], tuple[tuple[Rule, Rule], ...]]:
        """Merge by id: a rule in a higher layer (or later in the same layer) replaces a lower one."""
        by_id: dict[str, Rule] = {}
        replaced: list[tuple[Rule, Rule]] = []
        for rule in sorted(self.rules, key=lambda r: (LAYER_RANK[r.layer], r.order)):
            previous = by_id.get(rule.id)
            if previous is not None:
                # Two packs may define one id: the pack listed later in `extends` replaces the earlier.
                other_pack = rule.layer == "pack" and self.pack_of.get(previous.file) != self.pack_of.get(rule.file)
                if previous.layer == rule.layer and not other_pack:
                    self.diagnostics.append(
                        Diagnostic(rule.file, *rule.position("id"), f"rule id {rule.id!r} is defined twice in the {rule.layer} "
                                   f"layer (also at {previous.where('id')}): give one of them another id")
                    )
                replaced.append((previous, rule))
            by_id[rule.id] = rule
        return tuple(by_id.values()), tuple(replaced)


@collector_paused()
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
    inputs_out: list[tuple[str, str | None]] | None = None,
    warn: Callable[[str], None] | None = None,
) -> PolicySet:
    """Load every layer's files into a ``PolicySet`` (from the cache when nothing changed).

    The warm path unpickles the cached set and stats the files and directories
    it was built from; only when one changed are the files read and compiled.
    Raises BuildpolicyError with every diagnostic found when any file is bad.
    ``inputs_out``, when given, receives ``(path, stat token)`` of every file and
    directory the set depends on (for the warm ``env`` replay, ``buildpolicy.replay``).
    """
    def report(inputs) -> None:
        if inputs_out is not None:
            inputs_out.extend(input_paths(inputs))

    refused = refused_layers(site_dir, user_dir)
    for reason in refused.values():
        if warn is not None:
            warn(reason)
    site_dir = None if "site" in refused else site_dir
    user_dir = None if "user" in refused else user_dir
    key = "\0".join(str(p) for p in (profile, builtin_dir, site_dir, user_dir))  # what the set was compiled for
    cache_file = cache_file_for(cache_dir, profile, builtin_dir, site_dir, user_dir) if cache_dir is not None else None
    reusable: dict = {}  # compiled files of a stale cache, for recompiling only what changed
    if cache_file is not None and (cached := read_cache(cache_file)) is not None:
        try:
            cached_key, inputs, policy_set, units = cached
            if (
                cached_key == key
                and isinstance(policy_set, PolicySet)
                and ("format", CACHE_FORMAT) in inputs  # a pickle of an older PolicySet lacks fields
            ):
                if unchanged(inputs, extra_key):
                    report(inputs)
                    return policy_set
                if same_compiler(inputs, extra_key) and isinstance(units, dict):
                    reusable = units
        except Exception:  # noqa: BLE001 - any unreadable cache is rebuilt
            pass

    found = discover(profile, site_dir, user_dir, builtin_dir)
    # Stat before reading: an edit during compile invalidates.
    inputs = inputs_of(found.ordered, found.dirs, extra_key, any(p.from_entry_point for p in found.packs), found.stats)
    units: dict = {}
    policy_set = _compile(profile, found.ordered, fact_type, known_facts, found.packs, found.preread,
                          reusable=reusable, units_out=units)
    report(inputs)
    # A file that changed while it was compiled leaves no cache behind: its
    # stat token would vouch for bytes that were not the ones compiled.
    if cache_file is not None and unchanged(inputs, extra_key):
        write_cache(cache_file, (key, inputs, policy_set, units))
    return policy_set


@frozen
class FileUnit:
    """What compiling one policy file gave, kept with the digest of its bytes so that a
    later compile reuses it while the file is unchanged. Rules carry load orders of
    ``position`` (the file's place in load order) times ``ORDER_STRIDE`` plus their own."""

    key: tuple[str, str, str | None]  # layer, path, pack name: what else the compile depended on
    digest: str | None  # None: the file could not be read (never reused)
    position: int
    diagnostics: tuple[Diagnostic, ...] = ()
    findings: tuple[Finding, ...] = ()
    rules: tuple[Rule, ...] = ()
    knob_values: tuple[FileKnob, ...] = ()
    knob_declarations: tuple[KnobDeclaration, ...] = ()
    options: tuple[tuple[str, str, OptionValue], ...] = ()
    plugin_tables: tuple[tuple[str, str, int | None, int | None], ...] = ()


ORDER_STRIDE = 1 << 32  # more rules than this in one file are refused long before (file size)


def _file_unit(compiler: _Compiler, position: int, layer: str, path: Path, reusable: dict) -> FileUnit:
    """The compiled ``FileUnit`` of policy file ``path``: reused from ``reusable`` when the
    same bytes were compiled before, else compiled now (by a compiler of its own)."""
    from buildpolicy.filestate import sha256_hex
    from buildpolicy.policy.tomlpos import read_toml_bytes

    key = (layer, str(path), compiler.pack_of.get(str(path)))
    try:
        raw = read_toml_bytes(path)
    except OSError as exc:
        return FileUnit(key, None, position, (Diagnostic(path, None, None, f"cannot read: {exc.strerror or exc}"),))
    digest = sha256_hex(raw)
    cached = reusable.get(key)
    if isinstance(cached, FileUnit) and cached.digest == digest:
        if cached.position == position:
            return cached
        return evolve(cached, position=position, rules=tuple(
            evolve(rule, order=position * ORDER_STRIDE + rule.order % ORDER_STRIDE) for rule in cached.rules))
    one = _Compiler(compiler.fact_type, compiler.known_facts)
    one.fact_type = compiler.fact_type  # already memoized: one memo for every file
    one.pack_of = compiler.pack_of
    one.expressions = compiler.expressions
    one.order = position * ORDER_STRIDE
    doc = one.parse(path, "policy", raw=raw, digest=digest)
    if doc is not None:
        one.add_file(layer, doc, POLICY_KEYS)
    return FileUnit(
        key, digest, position, tuple(one.diagnostics), tuple(one.findings), tuple(one.rules), tuple(one.knob_values),
        tuple(one.knob_declarations),
        tuple((table, option, value) for table, entries in one.options.items() for option, value in entries.items()),
        tuple(one.plugin_tables),
    )


def _compile(profile, ordered, fact_type, known_facts, packs=(), preread=None, *, reusable=None,
             units_out=None) -> PolicySet:
    """Compile the files of every layer into a ``PolicySet``; raise BuildpolicyError with
    every diagnostic. Policy files are compiled one by one (``FileUnit``); a unit in
    ``reusable`` compiled from the same bytes is taken as it is, so an edit recompiles
    only the file edited. ``units_out`` receives every policy file's unit."""
    from buildpolicy.policy.trust import plugin_finding

    compiler = _Compiler(fact_type, known_facts)
    compiler.pack_of = {f: pack.name for pack in packs for f in pack.files}
    settings: dict[str, Any] = {}
    for position, (layer, path) in enumerate(ordered):
        is_profile = profile is not None and path == profile
        if not is_profile:
            unit = _file_unit(compiler, position, layer, path, (reusable or {}))
            compiler.merge(unit)
            if unit.digest is not None and units_out is not None:
                units_out[unit.key] = unit
            continue
        compiler.order = position * ORDER_STRIDE  # the profile's rules keep their place in load order
        doc = compiler.parse(path, "profile", raw=(preread or {}).get(path))
        if doc is None:
            continue
        skip = compiler.skip_for(doc)
        if is_profile and not skip.everything:
            settings = doc.data  # only used when the run has no diagnostics, i.e. when valid
            for index, entry in enumerate(() if skip.has("policies") else doc.data.get("policies", ())):
                if not skip.has("policies", index) and not (profile.parent / entry).exists():
                    line, col = doc.value_pos(("policies", index)) or (None, None)
                    compiler.diagnostics.append(Diagnostic(path, line, col, f"policy path {entry!r} does not exist"))
            for pack in () if skip.has("extends") else packs:
                if pack.problem:
                    line, col = doc.value_pos(("extends", pack.index)) or (None, None)
                    compiler.diagnostics.append(Diagnostic(path, line, col, pack.problem))
            for index, entry in enumerate(() if skip.has("plugin_paths") else doc.data.get("plugin_paths", ())):
                if not skip.has("plugin_paths", index):
                    line, col = doc.value_pos(("plugin_paths", index)) or (None, None)
                    compiler.findings.append(plugin_finding(entry, str(path), line, col))
        compiler.add_file(layer, doc, PROFILE_KEYS)
    rules, replaced = compiler.merged_rules()
    if compiler.diagnostics:
        raise BuildpolicyError(sorted(compiler.diagnostics, key=Diagnostic.sort_key))
    plugin_paths = tuple(str(profile.parent / p) for p in settings.get("plugin_paths", ()))
    return PolicySet(
        profile_path=str(profile) if profile else None,
        project_root=str(profile.parent) if profile else None,
        default_profile=settings.get("default_profile", "dev"),
        feature_profiles={name: tuple(args) for name, args in settings.get("feature_profiles", {}).items()},
        plugin_paths=plugin_paths,
        disable_plugins=tuple(settings.get("disable_plugins", ())),
        rules=rules,
        replaced=replaced,
        knob_values=tuple(compiler.knob_values),
        knob_declarations=tuple(compiler.knob_declarations),
        options=compiler.options,
        files=tuple((layer, str(path)) for layer, path in ordered),
        packs=tuple(packs),
        trust_findings=tuple(compiler.findings),
        trust_files=tuple(str(path) for layer, path in ordered if layer in UNTRUSTED_LAYERS) + plugin_paths,
        trust_digests=tuple((str(path), compiler.digests[str(path)]) for layer, path in ordered if layer in UNTRUSTED_LAYERS),
        plugin_tables=tuple(compiler.plugin_tables),
    )
