"""buildpolicy.record: the value classes of the engine and plugins behave as the attrs
classes they replaced (issue 13: attrs cost most of a full evaluation's budget), and
plugins that call attrs on them keep working."""

from __future__ import annotations

import pickle

import attrs
import pytest

from buildpolicy.model import Decision, KnobSpec, Provenance, Rule, evolve
from buildpolicy.record import FrozenInstanceError, field, fields, frozen, mutable


@frozen
class Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = field(default=(), converter=tuple)
    note: str = field(default="", eq=False, repr=False)


@mutable
class Bag:
    items: list[int] = field(factory=list)
    name: str = "bag"


def test_init_takes_positional_and_keyword_arguments_with_defaults():
    assert (Point(1).x, Point(1).y, Point(1).tags) == (1, 0, ())
    point = Point(1, tags=["a", "b"], y=2)
    assert (point.x, point.y, point.tags) == (1, 2, ("a", "b"))  # the converter ran


@pytest.mark.parametrize("call, message", [
    (lambda: Point(), "missing required argument: 'x'"),
    (lambda: Point(1, 2, (), "", 5), "takes 4 positional arguments but 5 were given"),
    (lambda: Point(1, z=3), "unexpected keyword argument 'z'"),
    (lambda: Point(1, x=3), "multiple values for argument 'x'"),
])
def test_bad_arguments_are_type_errors_that_name_the_argument(call, message):
    with pytest.raises(TypeError, match=message):
        call()


def test_frozen_instances_refuse_assignment_and_deletion():
    point = Point(1)
    with pytest.raises(FrozenInstanceError):
        point.x = 2
    with pytest.raises(AttributeError):
        del point.y
    with pytest.raises(AttributeError):
        point.other = 1  # slotted: no instance dict either
    assert point.x == 1


def test_equality_and_hash_use_the_eq_fields_only():
    assert Point(1, note="a") == Point(1, note="b")
    assert hash(Point(1, note="a")) == hash(Point(1, note="b"))
    assert Point(1) != Point(2)
    assert {Point(1), Point(1, note="x"), Point(2)} == {Point(1), Point(2)}
    assert Point(1) != (1, 0, (), "")  # a record equals only records of its own class


def test_repr_leaves_out_repr_false_fields():
    assert repr(Point(1, 2, ["t"], note="secret")) == "Point(x=1, y=2, tags=('t',))"


def test_a_factory_makes_a_fresh_default_per_instance_and_mutable_records_are_unhashable():
    first, second = Bag(), Bag()
    first.items.append(1)
    first.name = "renamed"
    assert second.items == [] and first.name == "renamed"
    with pytest.raises(TypeError):
        hash(first)


def test_validators_run_with_the_field_and_value():
    seen = []

    @frozen
    class Checked:
        kind: str = field(validator=lambda instance, spec, value: seen.append((spec.name, value)))

    Checked("a")
    assert seen == [("kind", "a")]


def test_kw_only_records_refuse_positional_arguments():
    @frozen(kw_only=True)
    class Options:
        path: str
        depth: int = 1
        name: str  # no default after one with a default: allowed when keyword-only

    assert Options(path="p", name="n").depth == 1
    with pytest.raises(TypeError, match="keyword arguments only"):
        Options("p")


def test_a_field_without_default_after_one_with_a_default_is_refused():
    with pytest.raises(TypeError, match="'b' without a default follows 'a'"):
        @frozen
        class Bad:
            a: int = 1
            b: int


def test_a_record_keeps_its_methods_properties_and_plain_base_class():
    class Base:
        def twice(self):
            return self.value * 2

    @frozen
    class Thing(Base):
        value: int

        @property
        def plus_one(self):
            return self.value + 1

    thing = Thing(3)
    assert (thing.twice(), thing.plus_one, Thing.__name__, [spec.name for spec in fields(Thing)]) == (6, 4, "Thing", ["value"])


def test_evolve_runs_converters_again_and_refuses_unknown_fields():
    decision = Decision("jobs", 2, "adaptive:2", "why", set_env={"B": "2", "A": "1"})
    changed = evolve(decision, source="plugin jobs", rustflags=["-Cx"])
    assert changed.source == "plugin jobs" and changed.rustflags == ("-Cx",) and decision.source == ""
    assert changed.set_env == (("A", "1"), ("B", "2"))
    with pytest.raises(TypeError, match="no field 'sauce'"):
        evolve(decision, sauce=1)


def test_records_pickle_and_unpickle_to_equal_values():
    rule = Rule("r", "project", "p.toml", 3, 7, rustflags=("-Cx",), positions=(("id", 3, 1),))
    for value in (rule, Provenance("cli", "--set"), Point(1, note="kept"), Bag([1])):
        back = pickle.loads(pickle.dumps(value))
        assert type(back) is type(value) and repr(back) == repr(value)
    assert pickle.loads(pickle.dumps(rule)).positions == (("id", 3, 1),)  # eq=False fields travel too


def test_plugins_written_against_attrs_still_work_on_records():
    spec = KnobSpec("jobs", "int", default=2)
    assert attrs.has(KnobSpec)
    assert [a.name for a in attrs.fields(KnobSpec)] == [spec.name for spec in fields(KnobSpec)]
    evolved = attrs.evolve(spec, default=4)
    assert type(evolved) is KnobSpec and evolved.default == 4 and evolved.name == "jobs"
    assert attrs.asdict(Provenance("cli", "--set"))["source"] == "--set"


def test_records_deriving_from_records_have_each_field_once_and_attrs_sees_their_own():
    @frozen
    class A:
        x: int

    @frozen
    class B(A):
        y: int = 0

    @frozen
    class C(B):
        z: int = 0

    assert [spec.name for spec in fields(C)] == ["x", "y", "z"]
    assert repr(C(1, 2, 3)) == "C(x=1, y=2, z=3)" and C(x=1, y=2, z=3) == C(1, 2, 3)
    assert [a.name for a in attrs.fields(A)] == ["x"]
    assert [a.name for a in attrs.fields(B)] == ["x", "y"]  # not A's, found by inheritance
    assert attrs.asdict(B(1, 2)) == {"x": 1, "y": 2} and attrs.evolve(B(1, 2), x=9) == B(9, 2)


def test_records_allow_weak_references_and_zero_argument_super():
    import weakref

    @frozen
    class Named:
        name: str

        def __repr__(self):
            return "named " + super().__repr__()

    value = Named("x")
    assert weakref.ref(value)() is value
    assert repr(value).startswith("named <")
