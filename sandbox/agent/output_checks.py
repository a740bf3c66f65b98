"""The automatic checks a Python job's outputs pass before anyone reviews them.

Every file the job wrote must have a plain name (no control characters; ``::`` is kept for
the logs), be of a type the policy lists (by its extension), parse as
that type (UTF-8 text; CSV; JSON; a PNG signature) and hold no value of an identifier
column of the asset, nor, on one line (a CSV row, a line of text, one JSON object), the
complete combination of a row's quasi-identifier values: either would show a person.
The logs (standard output and error) are text and get the same identifier checks.  A
failed check rejects the outputs with its code; the holder never has to look at them.

Images cannot be searched: a PNG output is allowed only where the policy lists ``png``,
and always waits for the holder's review.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sandbox.agent.projection import Sensitive, normalise

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TOKEN = re.compile(r"[^\s,;|\t\"'()\[\]{}<>=]+")
TEXT_TYPES = frozenset({"csv", "json", "txt", "md"})


@dataclass(frozen=True)
class Verdict:
    """The checks' result: problem codes (``code:path``), and whether a person must look."""

    problems: tuple[str, ...]
    needs_review: bool


def _suffix(path: str) -> str:
    return path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""


def _lines_of_json(value: Any) -> Iterator[list[str]]:
    """Leaves of a JSON document, one list per object or array of scalars."""
    if isinstance(value, dict):
        scalars = [normalise(v) for v in value.values() if not isinstance(v, dict | list)]
        scalars += [normalise(k) for k in value]
        yield scalars
        for item in value.values():
            if isinstance(item, dict | list):
                yield from _lines_of_json(item)
    elif isinstance(value, list):
        scalars = [normalise(v) for v in value if not isinstance(v, dict | list)]
        if scalars:
            yield scalars
        for item in value:
            if isinstance(item, dict | list):
                yield from _lines_of_json(item)
    else:
        yield [normalise(value)]


def _lines(kind: str, text: str) -> Iterator[list[str]]:
    if kind == "csv":
        for row in csv.reader(io.StringIO(text)):
            yield [cell for cell in row if cell.strip()]
        return
    if kind == "json":
        yield from _lines_of_json(json.loads(text))
        return
    for line in text.splitlines():
        yield _TOKEN.findall(line)


def _person(line: list[str], sensitive: Sensitive) -> str | None:
    """``identifier`` or ``quasi_identifiers`` if the line shows a person, else ``None``."""
    tokens = set(line)
    for cell in line:
        tokens.update(_TOKEN.findall(cell))
    hashed = {sensitive.digest(token) for token in tokens}
    if hashed & sensitive.identifiers:
        return "identifier"
    if sensitive.width and len(hashed) >= sensitive.width and sensitive.combination_in(hashed):
        return "quasi_identifiers"
    return None


def check_outputs(
    files: list[tuple[str, str, bytes]], allowed: tuple[str, ...], sensitive: Sensitive
) -> Verdict:
    """Check ``(kind, path, bytes)`` files (``output``, ``stdout``, ``stderr``)."""
    problems: list[str] = []
    needs_review = False
    for kind, path, data in files:
        if kind == "output" and (
            path.startswith("::") or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in path)
        ):
            problems.append("output_name:" + path.encode("unicode_escape").decode("ascii"))
            continue
        suffix = "txt" if kind != "output" else _suffix(path)
        if kind == "output" and suffix not in allowed:
            problems.append(f"output_type:{path}")
            continue
        if suffix == "png":
            needs_review = True
            if not data.startswith(PNG_SIGNATURE):
                problems.append(f"output_unparseable:{path}")
            continue
        if suffix not in TEXT_TYPES:
            problems.append(f"output_type:{path}")
            continue
        try:
            text = data.decode("utf-8")
            lines = list(_lines(suffix, text))
        except (UnicodeDecodeError, ValueError, csv.Error, RecursionError):
            problems.append(f"output_unparseable:{path}")
            continue
        for line in lines:
            found = _person(line, sensitive)
            if found is not None:
                problems.append(f"output_{found}:{path}")
                break
    return Verdict(tuple(problems), needs_review)
