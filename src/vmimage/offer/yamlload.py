"""A YAML 1.2 reader that keeps every value's line and refuses what a manifest must not hold.

PyYAML follows YAML 1.1: ``1.10`` becomes the float 1.1, ``no`` becomes False, ``0123`` is
octal and a repeated key silently wins (rulings). A manifest is edited by hand and versions are
compared as text, so this reader works from ruamel.yaml's *event* stream and resolves plain
scalars itself by the YAML 1.2 core schema, whatever ``%YAML`` directive the file carries:

- ``true``/``false`` (any case ruled by the core schema) are booleans; ``yes``/``no``/``on``
  stay text; ``null``, ``~`` and nothing are null;
- integers become :class:`YamlInt`, an ``int`` that remembers its source text, so a text field
  given ``2024`` reads ``"2024"`` and ``0123`` is 123 as a number but ``"0123"`` as text;
- floats are kept as their source text: no manifest field is a float, and a version written
  ``1.10`` must read ``"1.10"``, never 1.1;
- a key given twice, a key that is not a scalar, an unknown tag (``!!binary``, ``!foo``),
  a merge key, a second document, or an alias bomb is refused with its line;
- so is an integer of more than :data:`MAX_INT_DIGITS` digits (``int()`` raises its own
  ValueError past 4,300, and no manifest field needs 30), and text holding a lone surrogate
  (``"\ud800"`` in a double-quoted scalar), which no encoding can write: it would crash
  whatever renders the manifest later.

Mapping keys are always text. Every value's position is recorded under its path
(``("skus", 0, "id")``) so that a finding can name the line and the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeAlias

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)

Path = tuple[str | int, ...]
#: What a document holds: mappings with text keys, lists, text, integers, booleans, null.
YamlValue: TypeAlias = bool | int | str | list["YamlValue"] | dict[str, "YamlValue"] | None

#: Values an alias may expand to in all, and how deep collections may nest: a manifest needs
#: a few hundred values and six levels; an alias bomb or a pathological file stops here.
MAX_VALUES = 100_000
MAX_DEPTH = 64
#: The longest integer a manifest may write (a LUN, a port, a year need a few digits).
MAX_INT_DIGITS = 100
_SURROGATE = re.compile("[\ud800-\udfff]")
#: What JSON writes raw but YAML reads otherwise (NEL and the Unicode line and paragraph
#: separators break lines; DEL, C1 controls, BOM and noncharacters are not YAML text): a text
#: holding one is left to the YAML reader.
_YAML_SPECIAL = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")

_CORE = "tag:yaml.org,2002:"
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT10 = re.compile(r"^[-+]?[0-9]+$")
_INT8 = re.compile(r"^0o[0-7]+$")
_INT16 = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


class YamlInt(int):
    """An integer that remembers how it was written (``0123``, ``0x1F``, ``2024``)."""

    source: str

    def __new__(cls, value: int, source: str) -> YamlInt:  # noqa: D102 - int's constructor
        obj = super().__new__(cls, value)
        obj.source = source
        return obj


class YamlFloat(str):
    """A number with a fraction or exponent, kept as written: ``1.10`` stays ``"1.10"``."""

    __slots__ = ()


class YamlSyntaxError(Exception):
    """The text is not a YAML document this reader accepts; ``line`` is 1-based."""

    def __init__(self, line: int, column: int, problem: str) -> None:
        self.line = line
        self.column = column
        self.problem = problem
        super().__init__(f"line {line}, column {column}: {problem}")


@dataclass
class Document:
    """The document as plain Python data, and where each value and key was written."""

    data: YamlValue
    #: path -> 1-based line of the key (mapping entries) or of the value (sequence items).
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest ancestor that was written (None: none)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def _line(event: Event) -> int:
    return (event.start_mark.line + 1) if event.start_mark is not None else 0


def _column(event: Event) -> int:
    return (event.start_mark.column + 1) if event.start_mark is not None else 0


def _fail(event: Event, problem: str) -> YamlSyntaxError:
    return YamlSyntaxError(_line(event), _column(event), problem)


def _plain(text: str) -> YamlValue:
    """Resolve an untagged plain scalar by the YAML 1.2 core schema."""
    if _NULL.match(text):
        return None
    if _BOOL.match(text):
        return text.lower() == "true"
    if _INT10.match(text):
        return YamlInt(int(text, 10), text)
    if _INT8.match(text):
        return YamlInt(int(text[2:], 8), text)
    if _INT16.match(text):
        return YamlInt(int(text[2:], 16), text)
    if _FLOAT.match(text):
        return YamlFloat(text)
    return text


def _tagged(event: ScalarEvent) -> YamlValue:
    """A scalar with an explicit core tag; anything else is refused."""
    tag = str(event.tag)
    text = str(event.value)
    if tag == "!":
        return text
    if not tag.startswith(_CORE):
        raise _fail(event, f"tag {tag} is not supported (use plain values)")
    kind = tag[len(_CORE):]
    if kind == "str":
        return text
    if kind == "null" and _NULL.match(text):
        return None
    if kind == "bool" and _BOOL.match(text):
        return text.lower() == "true"
    if kind == "int" and (_INT10.match(text) or _INT8.match(text) or _INT16.match(text)):
        return _plain(text)
    if kind == "float" and (_FLOAT.match(text) or _INT10.match(text)):
        return YamlFloat(text)
    if kind in ("null", "bool", "int", "float"):
        raise _fail(event, f"{text!r} is not a valid !!{kind}")
    raise _fail(event, f"tag !!{kind} is not supported (use plain values)")


def _scalar(event: ScalarEvent) -> YamlValue:
    text = str(event.value)
    _judge_text(event, text)
    if event.tag is None:
        plain = bool(event.implicit and event.implicit[0]) and event.style is None
        return _plain(text) if plain else text
    return _tagged(event)


def _judge_text(event: ScalarEvent, text: str, key: bool = False) -> None:
    """Refuse what no later step can handle: a lone surrogate, an integer too long to read."""
    found = _SURROGATE.search(text)
    if found is not None:
        raise _fail(event, f"a lone surrogate (\\u{ord(found.group()):04x}) is not text: "
                           "write the character itself")
    plain = event.tag is None and bool(event.implicit and event.implicit[0]) \
        and event.style is None
    as_number = not key and (plain or str(event.tag) == f"{_CORE}int")
    digits = text.lstrip("+-")
    if as_number and len(digits) > MAX_INT_DIGITS and (_INT10.match(text) or _INT8.match(text)
                                                       or _INT16.match(text)):
        raise _fail(event, f"an integer of {len(digits)} digits: at most {MAX_INT_DIGITS}")


def _collection_tag(event: MappingStartEvent | SequenceStartEvent, kind: str) -> None:
    tag = event.tag
    if tag is not None and str(tag) not in ("!", f"{_CORE}{kind}"):
        raise _fail(event, f"tag {tag} is not supported here")


class _Builder:
    """Turn the event stream of one document into Python data, recording lines."""

    def __init__(self, events: Iterator[Event]) -> None:
        self._events = events
        self._pending: Event | None = None
        self._anchors: dict[str, tuple[YamlValue, int]] = {}
        self._count = 0
        self.lines: dict[Path, int] = {}

    def _next(self) -> Event:
        if self._pending is not None:
            event, self._pending = self._pending, None
            return event
        try:
            return next(self._events)
        except StopIteration:
            raise YamlSyntaxError(0, 0, "unexpected end of file") from None

    def _counted(self, n: int, event: Event) -> None:
        self._count += n
        if self._count > MAX_VALUES:
            raise _fail(event, f"more than {MAX_VALUES} values (aliases expanded): refused")

    def value(self, path: Path, depth: int) -> tuple[YamlValue, int]:
        """The next value in the stream and its size in values."""
        event = self._next()
        if depth > MAX_DEPTH:
            raise _fail(event, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(event, AliasEvent):
            anchor = str(event.anchor)
            if anchor not in self._anchors:
                raise _fail(event, f"alias *{anchor} names no complete anchor before it")
            data, size = self._anchors[anchor]
            self._counted(size, event)
            return _copy(data), size
        if isinstance(event, ScalarEvent):
            result: tuple[YamlValue, int] = (_scalar(event), 1)
            self._counted(1, event)
        elif isinstance(event, MappingStartEvent):
            _collection_tag(event, "map")
            result = self._mapping(path, depth)
        elif isinstance(event, SequenceStartEvent):
            _collection_tag(event, "seq")
            result = self._sequence(path, depth)
        else:
            raise _fail(event, "a value was expected here")
        name = getattr(event, "anchor", None)
        if name is not None:
            self._anchors[str(name)] = result
        return result

    def _mapping(self, path: Path, depth: int) -> tuple[dict[str, YamlValue], int]:
        out: dict[str, YamlValue] = {}
        first_line: dict[str, int] = {}
        size = 1
        while True:
            event = self._next()
            if isinstance(event, MappingEndEvent):
                return out, size
            if not isinstance(event, ScalarEvent):
                raise _fail(event, "a mapping key must be a plain scalar, not a collection "
                                   "or an alias")
            key = str(event.value)
            _judge_text(event, key, key=True)
            if event.tag is None and event.style is None and key == "<<":
                raise _fail(event, "merge keys (<<) are not supported: write the keys out")
            if event.tag is not None:
                _tagged(event)  # refuses unknown tags; the key stays text
            line = _line(event)
            if key in first_line:
                raise _fail(event, f"key {key!r} is given twice (first on line "
                                   f"{first_line[key]})")
            first_line[key] = line
            child = (*path, key)
            self.lines[child] = line
            value, n = self.value(child, depth + 1)
            out[key] = value
            size += n + 1
            self._counted(1, event)

    def _sequence(self, path: Path, depth: int) -> tuple[list[YamlValue], int]:
        out: list[YamlValue] = []
        size = 1
        while True:
            event = self._peek()
            if isinstance(event, SequenceEndEvent):
                self._next()
                return out, size
            child = (*path, len(out))
            self.lines[child] = _line(event)
            value, n = self.value(child, depth + 1)
            out.append(value)
            size += n

    def next_event(self) -> Event:
        """The next event (public for :func:`load_yaml`)."""
        return self._next()

    def _peek(self) -> Event:
        event = self._next()
        self._pending = event
        return event


def _copy(data: YamlValue) -> YamlValue:
    """A deep copy of alias data, so that no two paths share one mutable object."""
    if isinstance(data, dict):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


def _layout(value: YamlValue, path: Path, line: int, lines: dict[Path, int]) -> int:
    """Record where ``json.dumps(indent=2)`` writes each key and item under ``value`` (which
    starts on ``line``); returns the line it ends on. Each key and each item starts a line; a
    non-empty collection closes on a line of its own; strings are one line (JSON escapes
    newlines)."""
    if isinstance(value, dict | list) and value:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            line += 1
            lines[(*path, key)] = line
            line = _layout(child, (*path, key), line, lines)
        return line + 1
    return line


def _fits(value: object, depth: int = 0) -> int | None:
    """How many values ``value`` holds as :class:`_Builder` counts them, or None when it
    breaks a limit (deeper than MAX_DEPTH, an integer too long) or holds a float: the YAML
    reader then decides, and says where."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, dict | list):
        size = 1
        for child in (value.values() if isinstance(value, dict) else value):
            n = _fits(child, depth + 1)
            if n is None:
                return None
            size += n + (1 if isinstance(value, dict) else 0)
        return size
    if isinstance(value, float):
        return None  # YAML's resolver reads some JSON floats (1e-07) as text: let it decide
    if isinstance(value, int) and not isinstance(value, bool) \
            and len(str(abs(value))) > MAX_INT_DIGITS:
        return None
    return 1


def json_document(data: object) -> Document | None:
    """The :class:`Document` :func:`load_yaml` reads from ``json.dumps(data, indent=2,
    ensure_ascii=False)``, made without writing or reading that text (JSON's C encoder and
    decoder normalise the data; the lines follow from the layout), or None when the text would
    hold what YAML reads otherwise or refuses (see :func:`load_indented_json`)."""
    import json

    try:
        compact = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return None
    if not compact.startswith(("{", "[")) or _YAML_SPECIAL.search(compact):
        return None
    normal = json.loads(compact)
    size = _fits(normal)
    if size is None or size > MAX_VALUES:
        return None
    lines: dict[Path, int] = {(): 1}
    _layout(normal, (), 1, lines)
    return Document(normal, lines)


def load_indented_json(text: str) -> Document | None:
    """``text`` read at C speed when it is exactly what ``json.dumps(data, indent=2,
    ensure_ascii=False)`` writes (the service renders every offer that way): the same data
    and lines :func:`load_yaml` gives (JSON is YAML 1.2), or None for any other text, or one
    that holds what YAML reads otherwise (NEL, line separators, floats) or refuses (controls,
    limits): load_yaml then reads it, and refuses with the line."""
    import json

    if not text.startswith(("{", "[")) or _YAML_SPECIAL.search(text):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if json.dumps(data, indent=2, ensure_ascii=False) + "\n" != text:
        return None  # another layout (or duplicate keys, or infinities): not ours to read
    return json_document(data)


def load_yaml(text: str) -> Document:
    """Parse one YAML 1.2 document (the service's own rendering of a manifest, indented
    JSON, at C speed: :func:`load_indented_json`).

    Raises:
        YamlSyntaxError: the text is not YAML, or holds what a manifest must not (see module).
    """
    fast = load_indented_json(text)
    if fast is not None:
        return fast
    return load_yaml_events(text)


def load_yaml_events(text: str) -> Document:
    """Parse one YAML 1.2 document from its events, every value's line recorded.

    Raises:
        YamlSyntaxError: the text is not YAML, or holds what a manifest must not (see module).
    """
    yaml = YAML(typ="safe", pure=True)
    events = iter(yaml.parse(text))
    builder = _Builder(events)
    try:
        start = builder.next_event()
        if not isinstance(start, StreamStartEvent):
            raise _fail(start, "not a YAML stream")
        doc = builder.next_event()
        if isinstance(doc, StreamEndEvent):
            raise YamlSyntaxError(1, 1, "the file is empty")
        if not isinstance(doc, DocumentStartEvent):
            raise _fail(doc, "a document was expected")
        builder.lines[()] = _line(doc) or 1
        data, _ = builder.value((), 0)
        end = builder.next_event()
        if not isinstance(end, DocumentEndEvent):
            raise _fail(end, "one value per document")
        after = builder.next_event()
        if not isinstance(after, StreamEndEvent):
            raise _fail(after, "only one document is allowed (remove the second '---')")
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "not valid YAML"
        line = mark.line + 1 if mark is not None else 0
        column = mark.column + 1 if mark is not None else 0
        raise YamlSyntaxError(line, column, _one_line(problem)) from None
    except YAMLError as exc:
        raise YamlSyntaxError(0, 0, _one_line(str(exc)) or "not valid YAML") from None
    return Document(data, builder.lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())
