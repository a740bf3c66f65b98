"""YAML reading that remembers where every value came from.

Policy documents are read with a restricted loader: YAML 1.2 core scalars only (so
``on``, ``yes`` and ``9:30`` stay strings and ``1e-6`` is a number), no aliases, no
custom tags, no duplicate keys. Composition keeps each node's position, so a schema
error on ``/columns/age/control`` can be reported at the line and column it was written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from yaml.composer import Composer, ComposerError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from policies.errors import Path, PolicyIssue, json_pointer, render_path

MAX_DOCUMENT_CHARS: Final = 256 * 1024
MAX_DEPTH: Final = 32

_TAG = "tag:yaml.org,2002:"
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")


class _CoreLoader(Reader, Scanner, Parser, Composer, BaseResolver):
    """Composes one document with YAML 1.2 core-schema tags and refuses aliases."""

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        BaseResolver.__init__(self)

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise ComposerError(
                None, None, "aliases are not allowed in policy documents", event.start_mark
            )
        return super().compose_node(parent, index)


_CoreLoader.add_implicit_resolver(f"{_TAG}null", _NULL, ["~", "n", "N", ""])
_CoreLoader.add_implicit_resolver(f"{_TAG}bool", _BOOL, list("tTfF"))
_CoreLoader.add_implicit_resolver(f"{_TAG}int", _INT, list("-+0123456789"))
_CoreLoader.add_implicit_resolver(f"{_TAG}float", _FLOAT, list("-+0123456789."))


@dataclass
class SourceMap:
    """Positions (1-based line, column) of values and of mapping keys, by document path."""

    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Position of ``path`` (its key if ``key``), else of its nearest known ancestor."""
        if key and path in self.keys:
            return self.keys[path]
        probe = path
        while probe:
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), (1, 1))

    def issue(self, path: Path, message: str, *, key: bool = False) -> PolicyIssue:
        """An issue at ``path`` located through this map."""
        line, column = self.locate(path, key=key)
        return PolicyIssue(line, column, render_path(path), json_pointer(path), message)


def _position(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _issue_at(node: Node, path: Path, message: str) -> PolicyIssue:
    line, column = _position(node)
    return PolicyIssue(line, column, render_path(path), json_pointer(path), message)


def _scalar(node: ScalarNode) -> Any:
    tag, text = node.tag, node.value
    if tag == f"{_TAG}str":
        return text
    if tag == f"{_TAG}null" and _NULL.match(text):
        return None
    if tag == f"{_TAG}bool" and _BOOL.match(text):
        return text.lower() == "true"
    if tag == f"{_TAG}int" and _INT.match(text):
        if text.startswith(("0o", "0x")):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text, 10)
    if tag == f"{_TAG}float" and _FLOAT.match(text):
        lowered = text.lower()
        if lowered.endswith(".nan"):
            return float("nan")
        if lowered.endswith(".inf"):
            return float("-inf") if lowered.startswith("-") else float("inf")
        return float(text)
    raise ValueError(f"value {text!r} with tag {tag!r} is not supported")


def _convert(node: Node, path: Path, source: SourceMap, issues: list[PolicyIssue]) -> Any:
    source.values[path] = _position(node)
    if len(path) > MAX_DEPTH:
        issues.append(source.issue(path, f"nesting deeper than {MAX_DEPTH} levels"))
        return None
    if isinstance(node, ScalarNode):
        try:
            return _scalar(node)
        except ValueError as exc:
            issues.append(source.issue(path, str(exc)))
            return None
    if isinstance(node, SequenceNode) and node.tag == f"{_TAG}seq":
        return [_convert(item, (*path, i), source, issues) for i, item in enumerate(node.value)]
    if isinstance(node, MappingNode) and node.tag == f"{_TAG}map":
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                issues.append(_issue_at(key_node, path, "mapping keys must be plain names"))
                continue
            name = key_node.value
            child = (*path, name)
            if name in mapping:
                issues.append(_issue_at(key_node, child, f"duplicate key '{name}'"))
                continue
            source.keys[child] = _position(key_node)
            mapping[name] = _convert(value_node, child, source, issues)
        return mapping
    issues.append(source.issue(path, f"tag {node.tag!r} is not supported"))
    return None


def _yaml_error_issue(exc: yaml.YAMLError, text: str) -> PolicyIssue:
    line, column = 1, 1
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            line, column = mark.line + 1, mark.column + 1
        message = ": ".join(part for part in (exc.context, exc.problem) if part)
    elif isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        line = before.count("\n") + 1
        column = exc.position - (before.rfind("\n") + 1) + 1
        character = exc.character
        shown = f"#x{character:04x}" if isinstance(character, int) else repr(character)
        message = f"unacceptable character {shown}"
    else:
        message = "not valid YAML"
    return PolicyIssue(line, column, "", "", message or "not valid YAML")


def read_yaml(text: str) -> tuple[Any, SourceMap, list[PolicyIssue]]:
    """Parse one YAML document into plain data, its source map and any issues found.

    Never raises for bad input: every problem is returned as an issue.
    """
    source = SourceMap()
    if len(text) > MAX_DOCUMENT_CHARS:
        return None, source, [PolicyIssue(1, 1, "", "", "document is too large")]
    try:
        loader = _CoreLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        return None, source, [_yaml_error_issue(exc, text)]
    except RecursionError:
        return None, source, [PolicyIssue(1, 1, "", "", "document is nested too deeply")]
    if root is None:
        return None, source, [PolicyIssue(1, 1, "", "", "document is empty")]
    issues: list[PolicyIssue] = []
    data = _convert(root, (), source, issues)
    return data, source, issues
