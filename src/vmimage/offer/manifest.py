"""Read ``offer.yaml`` into a :class:`~vmimage.offer.model.Manifest`, or into problems.

Everything wrong with the *content* (YAML syntax, a key given twice, an unknown key, a wrong
type, a missing key) becomes a :class:`ManifestProblem` naming the file, the line and the key,
all of them at once, never a traceback; the ``OFFER-MANIFEST`` rule turns them into its
finding. Only a file that cannot be read at all raises
:class:`~vmimage.errors.InputError` (exit 2).
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from vmimage.errors import InputError
from vmimage.findings import Evidence
from vmimage.inputs import read_bounded_text
from vmimage.offer.keys import dotted
from vmimage.offer.model import Manifest
from vmimage.offer.yamlload import Document, YamlFloat, YamlInt, YamlSyntaxError, load_yaml
from vmimage.offer.yamlload import Path as KeyPath

#: A manifest is a few kilobytes; a bigger file is a mistake (a VHD given as the manifest).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ManifestProblem:
    """One thing that keeps the manifest from being read into the model."""

    message: str
    evidence: Evidence


@dataclass
class LoadedManifest:
    """A manifest file, what it holds (None when unusable), and what is wrong with it."""

    path: Path
    manifest: Manifest | None
    document: Document | None
    problems: list[ManifestProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The manifest could be read into the model (rules may still fail)."""
        return self.manifest is not None

    @property
    def base_dir(self) -> Path:
        """Relative disk files are relative to the manifest's directory."""
        return self.path.parent

    def resolve(self, file: str) -> Path:
        """A disk file named in the manifest, as a path to open."""
        return self.base_dir / Path(file).expanduser()

    def line(self, key: KeyPath) -> int | None:
        """The line of ``key`` (or of its nearest written ancestor)."""
        return self.document.line_of(key) if self.document else None

    def evidence(self, key: KeyPath, seen: str | None = None,
                 required: str | None = None) -> Evidence:
        """Evidence pointing at ``key`` in this file."""
        return Evidence(str(self.path), self.line(key), seen, required)

    def require(self) -> Manifest:
        """The manifest, or an InputError naming its first problem (for render and certify).

        Raises:
            InputError: the manifest could not be read into the model.
        """
        if self.manifest is not None:
            return self.manifest
        first = self.problems[0]
        where = f"line {first.evidence.line}: " if first.evidence.line else ""
        more = len(self.problems) - 1
        tail = f" (and {more} more: run `vmimage offer validate`)" if more else ""
        raise InputError(self.path, f"{where}{first.message}{tail}")


def _read_text(path: Path) -> str:
    """The manifest's text: a regular UTF-8 file of at most 4 MiB (a FIFO is refused, never
    read: it would hang)."""
    return read_bounded_text(path, MAX_MANIFEST_BYTES)


def load_manifest(path: str | os.PathLike[str]) -> LoadedManifest:
    """Read and check the shape of a manifest.

    Raises:
        InputError: the file cannot be read (missing, a directory, unreadable, not UTF-8).
    """
    source = Path(path)
    text = _read_text(source)
    return parse_manifest(text, source)


def parse_manifest(text: str, source: Path) -> LoadedManifest:
    """Check the shape of manifest ``text`` read from ``source``; never raises on content."""
    try:
        document = load_yaml(text)
    except YamlSyntaxError as exc:
        evidence = Evidence(str(source), exc.line or None)
        problem = ManifestProblem(f"not a valid manifest: {exc.problem}", evidence)
        return LoadedManifest(source, None, None, [problem])
    return parse_document(document, source)


def parse_document(document: Document, source: Path) -> LoadedManifest:
    """Check the shape of a manifest already read (its data and lines) from ``source``."""
    try:
        manifest = Manifest.model_validate(document.data)
    except ValidationError as exc:
        problems = [_error_problem(err, document, source) for err in exc.errors()]
        return LoadedManifest(source, None, document, problems)
    return LoadedManifest(source, manifest, document)


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that holds the key at ``loc`` (for 'did you mean')."""
    model: type[BaseModel] | None = Manifest
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _inner_model(model.model_fields[part].annotation)
    return model


def _inner_model(annotation: object) -> type[BaseModel] | None:
    """The BaseModel inside ``X``, ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


#: ``user:password@`` after ``//``: never repeated in a problem's message or evidence.
_USERINFO = re.compile(r"(?<=//)[^/?#@\s]*@")


def _mask(text: str) -> str:
    """``text`` with any URL's user name and password replaced."""
    return _USERINFO.sub("REDACTED@", text)


def _describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, YamlInt):
        return f"the integer {value.source}"
    if isinstance(value, YamlFloat):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = _mask(str(value))
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _seen(value: object) -> str:
    """A scalar as the user wrote it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, YamlInt):
        return value.source
    text = _mask(str(value))
    return text if len(text) <= 80 else text[:77] + "..."


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    loc = tuple(err["loc"])
    value = err.get("input")
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        hint = ""
        if parent is not None:
            close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), 1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {loc[-1]!r}{hint}"
    if kind == "missing":
        return f"missing key {loc[-1]!r}" if loc else "missing"
    if kind in ("string_type", "int_type", "bool_type", "list_type", "model_type",
                "dict_type"):
        wanted = {"string_type": "text", "int_type": "an integer", "bool_type":
                  "true or false", "list_type": "a list", "model_type": "a mapping",
                  "dict_type": "a mapping"}[kind]
        return f"expected {wanted}, got {_describe(value)}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{_describe(value)} is not allowed (choose {expected})"
    if kind == "too_short":
        return "must not be empty"
    message = str(err["msg"])
    return message.removeprefix("Value error, ")


def _error_problem(err: ErrorDetails, document: Document, source: Path) -> ManifestProblem:
    loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
    key = dotted(loc)
    line = document.line_of(loc)
    value = err.get("input")
    scalar = not isinstance(value, (dict, list)) and err["type"] not in ("missing",
                                                                          "extra_forbidden")
    evidence = Evidence(str(source), line, _seen(value) if scalar else None)
    message = _message(err)
    if err["type"] == "model_type" and not loc:
        message = "the manifest must be a mapping of keys (publisher, offer, skus)"
    return ManifestProblem(f"{key}: {message}", evidence)

