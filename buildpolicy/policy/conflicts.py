"""Rules that could fail a run together: ``check``'s warnings (DESIGN §4).

Two matching rules of one layer and priority that set one variable to
different values are an error at run time; ``check`` warns about every such
pair that could ever match together. Two rules can never match together when
their ``when``s pin one fact to different values (``os == 'linux'`` and
``os == 'macos'``).

The work is linear in the number of rules for the shapes policies have: rules
are grouped by (layer, priority, variable) first, so only rules setting the
same variable are compared; within a group, rules are split by the value they
pin the most commonly pinned fact to (per-host or per-OS rules never meet);
and each rule's pinned facts are worked out once.
"""

from __future__ import annotations

from collections import Counter

from buildpolicy.policy.expr.nodes import required_values

# Pairs reported per variable at most: beyond that one line says how many rules set it.
MAX_PAIRS_PER_VARIABLE = 10
# Below this size a group is compared pair by pair.
_SMALL_GROUP = 8


class Pins:
    """Each rule's pinned facts (``required_values``), computed once."""

    def __init__(self):
        self._pins: dict[int, dict] = {}
        self.computed = 0  # how many rules were analysed (tests count the work with these)
        self.compared = 0  # how many pairs were compared

    def of(self, rule) -> dict:
        """The facts ``rule``'s ``when`` pins; none for a knob-governed rule (``on`` ignores ``when``)."""
        key = id(rule)
        if key not in self._pins:
            self.computed += 1
            self._pins[key] = {} if rule.knob else required_values(rule.when)
        return self._pins[key]

    def compatible(self, first, second) -> bool:
        """Whether the two rules may match together (no fact pinned to two values)."""
        self.compared += 1
        a, b = self.of(first), self.of(second)
        return all(a[name] == b[name] for name in a.keys() & b.keys())


def _key(value):
    """A dict key equal for values that compare equal (``1`` and ``True`` as ``==`` has them)."""
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _candidate_pairs(entries: list, pins: Pins, out: list) -> None:
    """Append the ``(i, j)`` indexes into ``entries`` of pairs that may match together,
    stopping once more than ``MAX_PAIRS_PER_VARIABLE`` are found."""
    if len(out) > MAX_PAIRS_PER_VARIABLE:
        return
    if len(entries) <= _SMALL_GROUP:
        _all_pairs(entries, entries, pins, out, same=True)
        return
    # The fact pinned by the most rules, among those pinned to more than one value.
    counts: Counter = Counter()
    values: dict[str, set] = {}
    for _index, rule, _entry in entries:
        for name, value in pins.of(rule).items():
            counts[name] += 1
            values.setdefault(name, set()).add(_key(value))
    fact = max((name for name in counts if len(values[name]) > 1), key=lambda name: (counts[name], name), default=None)
    if fact is None:
        _all_pairs(entries, entries, pins, out, same=True)
        return
    buckets: dict = {}
    free = []
    for item in entries:
        pinned = pins.of(item[1])
        if fact in pinned:
            buckets.setdefault(_key(pinned[fact]), []).append(item)
        else:
            free.append(item)
    for bucket in buckets.values():
        _candidate_pairs(bucket, pins, out)
        _all_pairs(bucket, free, pins, out, same=False)
    _candidate_pairs(free, pins, out)


def _all_pairs(left: list, right: list, pins: Pins, out: list, same: bool) -> None:
    """Compare every rule of ``left`` with every rule of ``right`` that sets another value
    (``same``: left and right are one list; each pair once). Rules are grouped by value
    first, so many rules agreeing on a value cost nothing."""
    by_value: dict[str, list] = {}
    for item in right:
        by_value.setdefault(item[2].value, []).append(item)
    for i, first, first_entry in left:
        for value, items in by_value.items():
            if value == first_entry.value:
                continue
            for j, second, _entry in items:
                if (same and j <= i) or first is second or not pins.compatible(first, second):
                    continue
                out.append((min(i, j), max(i, j)))
                if len(out) > MAX_PAIRS_PER_VARIABLE:
                    return


def possible_conflicts(rules, pins: Pins | None = None) -> list[str]:
    """Warnings for pairs of enabled rules of one layer and priority that set one
    variable to different values and could match together, in rule order."""
    pins = pins or Pins()
    groups: dict[tuple, list] = {}
    for rule in rules:
        if rule.enabled:
            for entry in rule.env:
                group = groups.setdefault((rule.layer, rule.priority, entry.name), [])
                group.append((len(group), rule, entry))
    warnings = []
    for (layer, priority, name), entries in groups.items():
        if len(entries) < 2 or len({entry.value for _index, _rule, entry in entries}) < 2:
            continue
        pairs: list = []
        _candidate_pairs(entries, pins, pairs)
        pairs = sorted(set(pairs), key=lambda pair: (pair[1], pair[0]))
        for i, j in pairs[:MAX_PAIRS_PER_VARIABLE]:
            (_, first, mine), (_, second, entry) = entries[i], entries[j]
            warnings.append(
                f"{second.file}:{entry.line}:{entry.col}: rules {first.id!r} ({first.file}:{first.line}) and "
                f"{second.id!r} set {name} to {mine.value!r} and {entry.value!r} in the {layer} layer with "
                f"priority {priority}; if both match, the run fails: give one a higher priority or make "
                "their `when`s exclusive"
            )
        if len(pairs) > MAX_PAIRS_PER_VARIABLE:
            warnings.append(f"more pairs of rules of the {layer} layer with priority {priority} set {name} to different "
                            f"values ({len(entries)} rules set it); the first {MAX_PAIRS_PER_VARIABLE} are listed")
    return warnings
