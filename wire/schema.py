"""Message classes: the ``@message`` decorator, the (tag, version) registry, and the
per-class builders that turn a decoded field map into an instance.

``@message(tag, version=1)`` goes on a plain class with annotated fields; it makes the class a
``dataclass(frozen=True, slots=True)`` itself (do not add ``@dataclass``) and registers it.
Rules, all checked when the class is defined (``SchemaError``):

- ``(tag, version)`` is unique; a tag is 1-64 of ``[a-z0-9._-]``, a version 1-65535;
- every field is an ``__init__`` positional field with a supported annotation
  (``wire.fields``); defaults are allowed (a constructor convenience: the wire always
  carries every field); at most ``MAX_FIELDS`` fields;
- message classes do not inherit from message classes.

Annotations are resolved with ``typing.get_type_hints``. A name not yet defined (a class
declared further down, or the class itself in a recursive schema) defers the compilation to
the first use of the codec; ``message_types()`` forces it, so a test can check every schema.

Every instance is valid: the generated ``__post_init__`` runs each field's check and raises
``WireError`` (``type_mismatch``, ``invalid_value`` or ``too_large``) before a class's own
``__post_init__``, which may add cross-field rules (raise ``ValueError``; ``decode`` reports
it as ``wire.invalid_value``). Field names are wire names: renaming a field changes the wire.

Versions: a new version of a message is a new class with the same tag and a higher version.
Every registered (tag, version) decodes; remove the old class to stop accepting it.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform, get_type_hints

from wire.errors import (
    BAD_VERSION,
    MISSING_FIELD,
    NOT_CANONICAL,
    TYPE_MISMATCH,
    UNKNOWN_FIELD,
    UNKNOWN_TYPE,
    SchemaError,
    WireError,
)
from wire.fields import Field, compile_field, compile_validator, mismatch, too_deep
from wire.limits import MAX_DEPTH, MAX_FIELDS, MAX_TAG_LEN, MAX_VERSION

T = TypeVar("T")

_TAG_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")


@dataclasses.dataclass(frozen=True, slots=True)
class MessageInfo:
    """What the registry knows of one message class (for tests and generated docs)."""

    cls: type
    tag: str
    version: int
    fields: tuple[tuple[str, Any], ...]  # (name, resolved annotation with its bounds)


class Schema:
    """One registered class; ``fields`` is ``None`` until its annotations are compiled."""

    __slots__ = (
        "cls",
        "converters",
        "fields",
        "getter",
        "hints",
        "names",
        "tag",
        "validate",
        "version",
    )

    def __init__(self, tag: str, version: int) -> None:
        self.tag, self.version = tag, version
        self.cls: type = type(None)
        self.names: tuple[str, ...] = ()
        self.hints: tuple[Any, ...] = ()
        self.fields: tuple[Field, ...] | None = None
        self.converters: tuple[tuple[int, Callable[[Any, int], Any]], ...] = ()
        self.getter: Callable[[Any], tuple[Any, ...]] = lambda obj: ()
        self.validate: Callable[[Any], None] = self._validate_pending  # checks an instance

    def attach(self, cls: type) -> None:
        fields = dataclasses.fields(cls)
        if len(fields) > MAX_FIELDS:
            raise SchemaError(f"{cls.__name__}: more than {MAX_FIELDS} fields")
        for f in fields:
            if not f.init or f.kw_only:
                raise SchemaError(f"{cls.__name__}.{f.name}: fields must be positional init")
        self.cls, self.names = cls, tuple(f.name for f in fields)
        if len(self.names) == 1:
            name = self.names[0]
            self.getter = lambda obj: (getattr(obj, name),)
        elif self.names:
            self.getter = operator.attrgetter(*self.names)

    def compile(self) -> None:
        """Resolve annotations; ``NameError`` if one names something not yet defined."""
        hints = get_type_hints(self.cls, include_extras=True)
        label = self.cls.__name__
        fields = tuple(compile_field(hints[n], f"{label}.{n}", message_field) for n in self.names)
        self.hints = tuple(hints[n] for n in self.names)
        self.converters = tuple((i, f.decode) for i, f in enumerate(fields) if f.decode)
        self.validate = compile_validator(fields, self.getter)
        self.fields = fields

    def _validate_pending(self, obj: object) -> None:
        resolve_pending()
        if self.fields is None:
            raise SchemaError(f"{self.cls.__name__}: schema not compiled")
        self.validate(obj)

    def build(self, fmap: dict[Any, Any], level: int) -> object:
        """An instance from a decoded field map (names in declaration order)."""
        if tuple(fmap) != self.names:
            raise self._keys_error(fmap)
        values = list(fmap.values())
        for i, decode in self.converters:
            values[i] = decode(values[i], level)
        return self.cls(*values)

    def to_raw(self, obj: object) -> list[Any]:
        return [self.tag, self.version, dict(zip(self.names, self.getter(obj), strict=True))]

    def _keys_error(self, fmap: dict[Any, Any]) -> WireError:
        label = self.cls.__name__
        for key in fmap:
            if key not in self.names:
                return WireError(UNKNOWN_FIELD, f"{label}: unknown field {key!r:.80}")
        for name in self.names:
            if name not in fmap:
                return WireError(MISSING_FIELD, f"{label}: missing field {name!r}")
        return WireError(NOT_CANONICAL, f"{label}: fields out of declaration order")


# The registry (package-internal; read it through ``message_types`` / ``message_info``).
BY_KEY: dict[tuple[str, int], Schema] = {}
BY_CLASS: dict[type, Schema] = {}
TAGS: set[str] = set()
PENDING: list[Schema] = []  # registered, annotations not yet resolvable


@dataclass_transform(frozen_default=True)
def message(tag: str, version: int = 1) -> Callable[[type[T]], type[T]]:
    """Make a plain class a frozen, slotted dataclass registered as ``(tag, version)``."""
    _check_key(tag, version)

    def register(cls: type[T]) -> type[T]:
        if (tag, version) in BY_KEY:
            raise SchemaError(f"message ({tag!r}, {version}) is already registered")
        if "__dataclass_fields__" in vars(cls) or any(b in BY_CLASS for b in cls.__mro__):
            raise SchemaError(f"{cls.__name__}: use @message on a plain, non-message class")
        schema = Schema(tag, version)
        cls.__post_init__ = _post_init(schema, vars(cls).get("__post_init__"))  # type: ignore[attr-defined]
        made = dataclasses.dataclass(frozen=True, slots=True)(cls)
        schema.attach(made)
        try:
            schema.compile()
        except NameError:
            PENDING.append(schema)
        BY_KEY[tag, version] = BY_CLASS[made] = schema
        TAGS.add(tag)
        return made

    return register


def _check_key(tag: str, version: int) -> None:
    if not (isinstance(tag, str) and len(tag) <= MAX_TAG_LEN and _TAG_RE.fullmatch(tag)):
        raise SchemaError(f"bad message tag {tag!r}")
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise SchemaError(f"bad message version {version!r}")


def _post_init(schema: Schema, own: Callable[[Any], None] | None) -> Callable[[Any], None]:
    """Checks every field, then runs the class's own ``__post_init__`` if it has one."""
    if own is None:

        def post_init(self: Any) -> None:
            schema.validate(self)

        return post_init
    return _chained(schema, own)


def _chained(schema: Schema, own: Callable[[Any], None]) -> Callable[[Any], None]:
    def post_init(self: Any) -> None:
        schema.validate(self)
        own(self)

    return post_init


def resolve_pending() -> None:
    """Compile the schemas whose annotations could not be resolved when they were defined."""
    while PENDING:
        schema = PENDING[0]
        try:
            schema.compile()
        except NameError as e:
            raise SchemaError(f"{schema.cls.__name__}: unresolved annotation: {e}") from None
        PENDING.pop(0)


def message_field(classes: tuple[type, ...], label: str) -> Field:
    """The field of a nested message whose class is one of ``classes``."""
    for cls in classes:
        if cls not in BY_CLASS:
            raise SchemaError(f"{label}: {cls.__name__} is not a message class")
    names = " | ".join(c.__name__ for c in classes)

    def check(v: Any) -> None:
        if type(v) not in classes:
            raise mismatch(label, names, v)

    def decode(raw: Any, level: int) -> Any:
        if level >= MAX_DEPTH:
            raise too_deep(label)
        schema, fmap = lookup(raw, label)
        if schema.cls not in classes:
            raise WireError(TYPE_MISMATCH, f"{label}: expected {names}, got {schema.tag!r}")
        return schema.build(fmap, level + 1)

    return Field(check, decode)


def lookup(raw: Any, label: str) -> tuple[Schema, dict[Any, Any]]:
    """The schema of a decoded ``[tag, version, {fields}]`` array, and its field map."""
    if type(raw) is not list or len(raw) != 3:
        raise mismatch(label, "a message array [tag, version, fields]", raw)
    tag, version, fmap = raw
    if type(tag) is not str or type(version) is not int or type(fmap) is not dict:
        raise WireError(TYPE_MISMATCH, f"{label}: expected [str, int, map] message header")
    schema = BY_KEY.get((tag, version))
    if schema is None:
        if tag in TAGS:
            raise WireError(BAD_VERSION, f"{label}: {tag!r} version {version} is not supported")
        raise WireError(UNKNOWN_TYPE, f"{label}: unknown message tag {tag!r:.80}")
    return schema, fmap


def schema_of(cls: type) -> Schema | None:
    return BY_CLASS.get(cls)


def message_types() -> tuple[type, ...]:
    """Every registered message class, sorted by (tag, version); compiles pending ones."""
    resolve_pending()
    return tuple(BY_KEY[k].cls for k in sorted(BY_KEY))


def message_info(cls: type) -> MessageInfo:
    """Tag, version and fields of a registered message class."""
    resolve_pending()
    schema = BY_CLASS.get(cls)
    if schema is None:
        raise TypeError(f"{cls!r} is not a message class")
    fields = tuple(zip(schema.names, schema.hints, strict=True))
    return MessageInfo(cls, schema.tag, schema.version, fields)
