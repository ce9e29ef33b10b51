"""Read YAML keeping the line of every value, so errors can name file, line and field.

Values are plain Python data. Numbers stay what YAML made them — callers that expect
money reject them, because money is always written as a string. Timestamps are kept as
the text written in the file (YAML 1.1 would otherwise turn them into naive datetimes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from fairbill.errors import Location

Path = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    pass


# Keep timestamps as text: the contract reads them in the merchant's timezone.
_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class LineMap:
    """Maps a path of keys/indices to the 1-based line where that value starts."""

    def __init__(self, path: str, lines: dict[Path, int]) -> None:
        self.path = path
        self._lines = lines

    def line(self, at: Sequence[str | int]) -> int | None:
        key = tuple(at)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return self._lines.get((), None)

    def locate(self, at: Sequence[str | int]) -> Location:
        return Location(self.path, self.line(at), ".".join(str(p) for p in at))


def _walk(node: yaml.Node, loader: _Loader, at: Path, lines: dict[Path, int]) -> Any:
    lines[at] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            lines[(*at, key)] = key_node.start_mark.line + 1
            result[key] = _walk(value_node, loader, (*at, key), lines)
            lines[(*at, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, loader, (*at, i), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml(text: str, path: str) -> tuple[Any, LineMap]:
    """Parse ``text``; raise ``yaml.YAMLError`` (with its mark) on a syntax error."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Path, int] = {}
        data = _walk(node, loader, (), lines) if node is not None else None
    finally:
        loader.dispose()
    return data, LineMap(path, lines)


def syntax_location(exc: yaml.YAMLError, path: str) -> Location:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return Location(path, mark.line + 1 if mark is not None else None, "")
