"""Stubs for the parts of PyYAML that vmimage calls (vmimage.yamlcompat)."""

from collections.abc import Callable
from typing import Any, ClassVar

class Mark:
    name: str
    index: int
    line: int
    column: int

class YAMLError(Exception): ...

class MarkedYAMLError(YAMLError):
    context: str | None
    context_mark: Mark | None
    problem: str | None
    problem_mark: Mark | None
    note: str | None

class Node:
    tag: str
    value: Any
    start_mark: Mark
    end_mark: Mark

class ScalarNode(Node):
    value: str
    style: str | None

class CollectionNode(Node):
    flow_style: bool | None

class SequenceNode(CollectionNode):
    value: list[Node]

class MappingNode(CollectionNode):
    value: list[tuple[Node, Node]]

class SafeLoader:
    yaml_constructors: ClassVar[dict[str | None, Callable[..., Any]]]
    def __init__(self, stream: str | bytes) -> None: ...
    def get_single_node(self) -> Node | None: ...
    def construct_document(self, node: Node) -> Any: ...
    def construct_scalar(self, node: ScalarNode) -> str: ...
    def dispose(self) -> None: ...
    @classmethod
    def add_constructor(cls, tag: str, constructor: Callable[[Any, Any], Any]) -> None: ...
