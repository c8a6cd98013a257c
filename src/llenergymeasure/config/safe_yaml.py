"""Parse the YAML of a config file, refusing what PyYAML's ``safe_load`` lets through.

``safe_load`` constructs only plain data, but a shared config file can still hang or crash the
program: aliases that expand exponentially (a 400-byte "billion laughs" file), an alias used
inside its own anchor (a self-containing list that every later walk recurses into forever),
brackets nested thousands deep (the scanner slows quadratically, then the composer overflows
the stack), a key written twice (the last one silently wins) and a scalar its tag cannot
convert (``!!int '12abc'`` raises a bare ``ValueError``). :func:`parse_config_yaml` refuses
each with its line, checking the composed node graph before anything is constructed, and
raises only ``yaml.YAMLError`` (or ``RecursionError``), so the caller reports one error type.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_FLOW_DEPTH = 100
"""``[`` and ``{`` nested deeper than this are refused: PyYAML's scanner takes time quadratic in
the depth (a 200 kB line of ``[`` would run for minutes); configs nest a handful deep."""

MAX_ALIAS_EXPANSION = 10_000
"""Values that aliases may add to a file beyond its own: sharing a small mapping a few times
adds tens; an alias bomb adds billions."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_CORE_TAG = "tag:yaml.org,2002:"


class YamlRefused(yaml.YAMLError):
    """Well-formed YAML that a config file must not contain; the message says where and why."""


def parse_config_yaml(text: str) -> Any:
    """The single YAML document in ``text`` as plain data (None when empty).

    Raises:
        YamlRefused: aliases expand past :data:`MAX_ALIAS_EXPANSION` values, an alias is used
            inside its own anchor, brackets nest past :data:`MAX_FLOW_DEPTH`, or a mapping
            repeats a key.
        yaml.YAMLError: the text is not YAML, or a tag cannot be constructed (unknown tag,
            ``!!int`` of a non-number, ...), with the line and column.
        RecursionError: block indentation nests deeper than Python's recursion limit.
    """
    loader = _ConfigLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that checks the node graph first and reports construction errors by line."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.node_paths: dict[int, str] = {}

    def fetch_flow_collection_start(self, TokenClass: type[yaml.Token]) -> None:
        if self.flow_level >= MAX_FLOW_DEPTH:
            raise YamlRefused(
                f"line {self.line + 1}: YAML nested too deeply "
                f"(more than {MAX_FLOW_DEPTH} levels of [ and {{)"
            )
        super().fetch_flow_collection_start(TokenClass)

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _GraphCheck(self, node).size(node, "")
        return self.construct_document(node)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception:  # a tag's constructor failing on its scalar (int('12abc'))
            value = f"{node.value!r}" if isinstance(node, ScalarNode) else "the value"
            problem = f"{value} is not a valid {_short_tag(node.tag)}"
            raise ConstructorError(
                None, None, _at(self.node_paths.get(id(node), "")) + problem, node.start_mark
            ) from None


class _GraphCheck:
    """One walk over the composed nodes (each visited once): sizes, cycles, duplicate keys."""

    def __init__(self, loader: _ConfigLoader, root: Node) -> None:
        self._loader = loader
        self._limit = _count_nodes(root) + MAX_ALIAS_EXPANSION
        self._sizes: dict[int, int] = {}
        self._open: set[int] = set()

    def size(self, node: Node, path: str) -> int:
        """Values in ``node`` with every alias expanded (refusing past the limit)."""
        ident = id(node)
        if ident in self._sizes:
            return self._sizes[ident]
        if ident in self._open:
            raise YamlRefused(
                f"{_line(node, path)}: a recursive YAML alias "
                "(an anchor used inside its own value) cannot be read"
            )
        self._loader.node_paths.setdefault(ident, path)
        self._open.add(ident)
        total = 1
        if isinstance(node, MappingNode):
            for key_node, value_node, value_path in self._entries(node, path):
                total += self.size(key_node, path) + self.size(value_node, value_path)
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                total += self.size(item, _join(path, str(index)))
        self._open.discard(ident)
        if total > self._limit:
            raise YamlRefused(
                f"{_line(node, path)}: YAML aliases expand too far "
                f"(more than {MAX_ALIAS_EXPANSION} values beyond the file's own); "
                "write the values out or share fewer"
            )
        self._sizes[ident] = total
        return total

    def _entries(self, node: MappingNode, path: str) -> list[tuple[Node, Node, str]]:
        """(key, value, value's path) of a mapping; refuses a key written twice."""
        entries = []
        seen: dict[Any, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:  # `<<: *base`: its keys may be overridden here
                entries.append((key_node, value_node, path))
                continue
            label = "?"
            if isinstance(key_node, ScalarNode):
                key = self._loader.construct_object(key_node)
                label = str(key)
                first = seen.setdefault(key, key_node) if _hashable(key) else key_node
                if first is not key_node:
                    raise YamlRefused(
                        f"duplicate key '{_join(path, label)}' (line {first.start_mark.line + 1} "
                        f"and line {key_node.start_mark.line + 1}): the second would silently "
                        "replace the first; keep one"
                    )
            entries.append((key_node, value_node, _join(path, label)))
        return entries


def _count_nodes(root: Node) -> int:
    """Distinct nodes in the graph (an aliased node counts once)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            stack.extend(part for pair in node.value for part in pair)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return len(seen)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE_TAG) :] if tag.startswith(_CORE_TAG) else tag


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _line(node: Node, path: str) -> str:
    """``line 3 (pytorch.extra)``: where a refused node starts."""
    return f"line {node.start_mark.line + 1}" + (f" ({path})" if path else "")


def _at(path: str) -> str:
    return f"{path}: " if path else ""
