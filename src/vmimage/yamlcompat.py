"""YAML inside an image, read by the loader the program that owns the file uses: PyYAML, 1.1.

cloud-init loads ``/etc/cloud/cloud.cfg`` and ``cloud.cfg.d/*.cfg`` with PyYAML's safe loader
(``cloudinit/safeyaml.py``), so YAML 1.1 decides what a value is: ``size: no`` is False,
``size: 0`` is 0, ``size: "0"`` a string. Block, flow, nested, anchored and merged styles all
count; a reader that matches a subset with regexes misses whatever it does not match. Offer
manifests are vmimage's own input and are read as YAML 1.2 (``offer/yamlload.py``); files in
an image are other programs' and are read as those programs read them.

Image content is untrusted: the input is bounded, and whatever PyYAML refuses (or that would
exhaust its recursion) becomes an :class:`~vmimage.errors.InputError` naming the file, the
line and the problem, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from vmimage.errors import InputError

MAX_BYTES = 1024 * 1024  # configuration files are kilobytes; a larger one is refused, not read
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader plus ``!!python/unicode`` as a string, as cloud-init's is."""


_Loader.add_constructor("tag:yaml.org,2002:python/unicode",
                        lambda loader, node: loader.construct_scalar(node))


@dataclass(frozen=True)
class Document:
    """A loaded document: the data ``yaml.safe_load`` returns, and its node tree for lines."""

    data: Any  # None for an empty document
    root: yaml.Node | None

    def line_of(self, *path: str | int) -> int | None:
        """The 1-based line where the item at ``path`` starts (a mapping key's line, a
        sequence item's line), or None when the path is not in the document."""
        node, line = self.root, None
        for step in path:
            found = _child(node, step) if node is not None else None
            if found is None:
                return None
            line, node = found
        return line


def _child(node: yaml.Node, step: str | int) -> tuple[int, yaml.Node] | None:
    """(line, value node) of a mapping key or a sequence index; merged keys count (``<<``),
    and of duplicate keys the last wins, as PyYAML constructs them."""
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int):
        if 0 <= step < len(node.value):
            item = node.value[step]
            return item.start_mark.line + 1, item
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    merged: list[yaml.Node] = []
    for key, value in reversed(node.value):
        if key.tag == _MERGE_TAG:
            merged += value.value if isinstance(value, yaml.SequenceNode) else [value]
        elif isinstance(key, yaml.ScalarNode) and key.value == step:
            return key.start_mark.line + 1, value
    for source in merged:
        found = _child(source, step)
        if found is not None:
            return found
    return None


def _problem(exc: BaseException) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not valid YAML"
        return f"line {mark.line + 1}: {problem}" if mark else problem
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def safe_load(content: bytes | str, source: str) -> Document:
    """Load one YAML document as ``yaml.safe_load`` does (cloud-init's loader).

    Raises:
        InputError: the content is larger than :data:`MAX_BYTES` or is not one valid YAML
            1.1 document; the message names ``source``, the line and the problem.
    """
    size = len(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    if size > MAX_BYTES:
        raise InputError(source, f"larger than {MAX_BYTES // 1024} KiB: not read")
    loader: _Loader | None = None
    try:
        loader = _Loader(content)  # reads the start: refuses bad encodings and characters
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except (yaml.YAMLError, ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        raise InputError(source, _problem(exc)) from None
    finally:
        if loader is not None:
            loader.dispose()
    return Document(data, root)
