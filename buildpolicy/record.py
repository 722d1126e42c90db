"""Slotted value classes from annotations, without attrs (``@frozen``, ``@mutable``).

The engine's values (``model.Decision``, ``Rule``, ``Provenance``…) used to be attrs
classes. attrs writes each class's ``__init__``, ``__eq__``, ``__hash__`` and ``__repr__``
as source code and compiles it, and importing it pulls in ``inspect``, ``typing`` and
``platform``: together most of a full ``buildpolicy env``'s budget (DESIGN §10, issue 13),
paid again at every prompt after an edit. Here the methods are closures over the field
list, made without compiling anything; the only cost moved is a few hundred nanoseconds
per instance, which even 10,000 compiled rules do not notice.

What it keeps of attrs' behaviour: fields are the class's annotated names in order (a base
record's first), a default or ``field(...)`` after the annotation, ``converter`` and
``validator(instance, field, value)`` run by ``__init__``, ``eq=False``/``repr=False``
fields left out of comparison/hashing and ``repr``, ``kw_only``, ``__slots__``; frozen
instances refuse assignment with :class:`FrozenInstanceError` and hash by their eq fields;
mutable ones are unhashable. ``evolve(instance, **changes)`` is ``attrs.evolve``.
Standard library only, and nothing imported at module level: ``model`` imports this.

Plugins written against the attrs classes keep working: ``attrs.evolve``, ``attrs.fields``,
``attrs.asdict`` and ``attrs.has`` accept a record, because a record class answers
``__attrs_attrs__`` (attrs' own description of a class, made on first use, so only a plugin
that calls attrs imports it).
"""

from __future__ import annotations

_MISSING = object()


class FrozenInstanceError(AttributeError):
    """Raised on assignment to (or deletion of) a field of a frozen record."""


_ATTRS_DESCRIPTIONS: dict = {}  # record class -> attrs' description of it


class RecordType(type):
    """The type of record classes: it describes them to attrs when a plugin asks."""

    @property
    def __attrs_attrs__(cls):
        # A property of the metaclass, so a subclass never finds its parent's description.
        described = _ATTRS_DESCRIPTIONS.get(cls)
        if described is None:
            import attrs

            shadow = attrs.make_class(cls.__name__, {
                spec.name: attrs.field(default=None, eq=spec.eq, repr=spec.repr) for spec in cls.__record_fields__})
            described = _ATTRS_DESCRIPTIONS[cls] = shadow.__attrs_attrs__
        return described


class Field:
    """A field of a record: its name, default (or factory), converter, validator, and
    whether it takes part in ``==``/``hash`` (``eq``) and ``repr``."""

    __slots__ = ("name", "default", "factory", "converter", "validator", "eq", "repr")

    def __init__(self, default=_MISSING, factory=None, converter=None, validator=None, eq=True, repr=True):
        self.name = ""
        self.default = default
        self.factory = factory
        self.converter = converter
        self.validator = validator
        self.eq = eq
        self.repr = repr

    @property
    def required(self) -> bool:
        """Whether ``__init__`` needs a value for this field."""
        return self.default is _MISSING and self.factory is None

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def field(*, default=_MISSING, factory=None, converter=None, validator=None, eq=True, repr=True) -> Field:
    """Declare a field with more than a default: ``factory`` (a callable making a fresh
    default per instance), ``converter``, ``validator``, ``eq=False``, ``repr=False``."""
    if default is not _MISSING and factory is not None:
        raise TypeError("a field takes a default or a factory, not both")
    return Field(default, factory, converter, validator, eq, repr)


def fields(cls) -> tuple[Field, ...]:
    """The fields of the record class ``cls``, in order."""
    try:
        return cls.__record_fields__
    except AttributeError:
        raise TypeError(f"{cls!r} is not a record class") from None


def evolve(instance, **changes):
    """A copy of ``instance`` with ``changes`` applied (converters and validators run again)."""
    cls = type(instance)
    values = {spec.name: getattr(instance, spec.name) for spec in fields(cls)}
    unknown = set(changes) - values.keys()
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {sorted(unknown)[0]!r}")
    values.update(changes)
    return cls(**values)


def frozen(cls=None, *, kw_only: bool = False):
    """Make ``cls`` an immutable, hashable, slotted record (as ``attrs.frozen``)."""
    return _decorate(cls, kw_only=kw_only, is_frozen=True)


def mutable(cls=None, *, kw_only: bool = False):
    """Make ``cls`` a slotted record whose fields may be reassigned (as ``attrs.define``)."""
    return _decorate(cls, kw_only=kw_only, is_frozen=False)


def _decorate(cls, *, kw_only: bool, is_frozen: bool):
    if cls is None:
        return lambda cls: _build(cls, kw_only, is_frozen)
    return _build(cls, kw_only, is_frozen)


def _build(cls, kw_only: bool, is_frozen: bool):
    # The nearest record base's fields already include those of its own bases.
    inherited = next((base.__dict__["__record_fields__"] for base in cls.__mro__[1:]
                      if "__record_fields__" in base.__dict__), ())
    namespace = dict(cls.__dict__)
    own = []
    for name in namespace.get("__annotations__", {}):
        value = namespace.pop(name, _MISSING)
        spec = value if isinstance(value, Field) else Field(default=value)
        spec.name = name
        own.append(spec)
    own_names = {spec.name for spec in own}
    specs = tuple([spec for spec in inherited if spec.name not in own_names] + own)
    if not kw_only:
        _check_default_order(cls.__name__, specs)
    namespace.pop("__dict__", None)
    namespace.pop("__weakref__", None)
    # Weak references, as attrs' slotted classes allow them (a WeakKeyDictionary of decisions).
    weakref_slot = () if any(hasattr(base, "__weakref__") for base in cls.__bases__) else ("__weakref__",)
    namespace["__slots__"] = tuple(spec.name for spec in own) + weakref_slot
    namespace["__record_fields__"] = specs
    namespace["__match_args__"] = () if kw_only else tuple(spec.name for spec in specs)
    meta = RecordType if type(cls) is type else type(cls)
    new = meta(cls.__name__, cls.__bases__, namespace)
    new.__qualname__ = cls.__qualname__
    _point_class_cells_at(cls, new)
    setters = tuple(_slot_setter(new, spec.name) for spec in specs)
    new.__record_setters__ = setters
    written = cls.__dict__  # methods the class writes itself are kept, as attrs' auto_detect keeps them
    if "__init__" not in written:
        new.__init__ = _make_init(new.__name__, specs, setters, kw_only)
    if "__repr__" not in written:
        new.__repr__ = _make_repr(specs)
    if "__eq__" not in written:
        new.__eq__, new.__ne__ = _make_eq(specs)
    new.__reduce__ = _make_reduce(specs)
    if is_frozen:
        new.__setattr__ = _refuse_assignment
        new.__delattr__ = _refuse_assignment
    if "__hash__" not in written:  # (a class writing __eq__ alone has __hash__ = None written)
        new.__hash__ = _make_hash(new, specs) if is_frozen else None
    return new


def _point_class_cells_at(old, new) -> None:
    """Make the methods' ``__class__`` cell (zero-argument ``super()``) name the rebuilt class."""
    for value in new.__dict__.values():
        if isinstance(value, (classmethod, staticmethod)):
            functions = (value.__func__,)
        elif isinstance(value, property):
            functions = (value.fget, value.fset, value.fdel)
        else:
            functions = (value,)
        for function in functions:
            for cell in getattr(function, "__closure__", None) or ():
                try:
                    if cell.cell_contents is old:
                        cell.cell_contents = new
                except ValueError:  # an empty cell
                    pass


def _check_default_order(name: str, specs) -> None:
    seen_default = None
    for spec in specs:
        if not spec.required:
            seen_default = spec.name
        elif seen_default is not None:
            raise TypeError(f"{name}: field {spec.name!r} without a default follows {seen_default!r}, which has one")


def _slot_setter(cls, name: str):
    """The raw setter of slot ``name`` (bypasses a frozen class's ``__setattr__``)."""
    for klass in cls.__mro__:
        descriptor = klass.__dict__.get(name)
        if descriptor is not None and hasattr(descriptor, "__set__"):
            return descriptor.__set__
    raise TypeError(f"{cls.__name__}: no slot for field {name!r}")


def _make_init(class_name: str, specs, setters, kw_only: bool):
    count = len(specs)
    names = tuple(spec.name for spec in specs)
    fill = tuple((spec.name, spec.default, spec.factory) for spec in specs)
    converted = tuple((index, setters[index], spec.converter) for index, spec in enumerate(specs) if spec.converter)
    validated = tuple((spec, spec.validator) for spec in specs if spec.validator)

    def __init__(self, *args, **kwargs):
        if kw_only and args:
            raise TypeError(f"{class_name}() takes keyword arguments only")
        given = len(args)
        if given == count and not kwargs:
            values = args
        else:
            if given > count:
                raise TypeError(f"{class_name}() takes {count} positional arguments but {given} were given")
            values = list(args)
            for name, default, factory in fill[given:]:
                if name in kwargs:
                    values.append(kwargs.pop(name))
                elif factory is not None:
                    values.append(factory())
                elif default is not _MISSING:
                    values.append(default)
                else:
                    raise TypeError(f"{class_name}() missing required argument: {name!r}")
            if kwargs:
                name = next(iter(kwargs))
                if name in names:
                    raise TypeError(f"{class_name}() got multiple values for argument {name!r}")
                raise TypeError(f"{class_name}() got an unexpected keyword argument {name!r}")
        for setter, value in zip(setters, values):
            setter(self, value)
        for index, setter, converter in converted:
            setter(self, converter(values[index]))
        for spec, validator in validated:
            validator(self, spec, getattr(self, spec.name))

    return __init__


def _make_repr(specs):
    shown = tuple(spec.name for spec in specs if spec.repr)

    def __repr__(self):
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{type(self).__qualname__.rsplit('>.', 1)[-1]}({inner})"  # as attrs: no "<locals>."

    return __repr__


def _eq_values(specs):
    names = tuple(spec.name for spec in specs if spec.eq)
    return lambda self: tuple([getattr(self, name) for name in names])


def _make_eq(specs):
    values_of = _eq_values(specs)

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return values_of(self) == values_of(other)

    def __ne__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return values_of(self) != values_of(other)

    return __eq__, __ne__


def _make_hash(cls, specs):
    values_of = _eq_values(specs)
    salt = hash(cls.__qualname__)  # two records with equal fields but different classes differ

    def __hash__(self):
        return hash((salt, values_of(self)))

    return __hash__


def _make_reduce(specs):
    names = tuple(spec.name for spec in specs)

    def __reduce__(self):
        # A call of `_restore` with every field in order: several times cheaper to write and
        # read than pickle's default for slotted objects, for the tens of thousands of rules
        # a large policy set caches (buildpolicy.policy.compiled_cache).
        return _restore, (type(self), tuple([getattr(self, name) for name in names]))

    return __reduce__


def _refuse_assignment(self, name, *value):
    raise FrozenInstanceError(f"{type(self).__name__} is frozen: cannot change {name!r} (use evolve())")


def _restore(cls, values):
    """Rebuild a pickled record from its field values, which were valid when it was pickled."""
    instance = object.__new__(cls)
    for setter, value in zip(cls.__record_setters__, values):
        setter(instance, value)
    return instance
