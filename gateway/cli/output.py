"""How every command prints: JSON for machines, tables and short lines for people, and one
line per failure on stderr (never a traceback)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn

import click

from gateway.client import ApiError, GatewayUnreachable

URL_HINT = "set --url or BLINDGATE_URL"


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    click.echo(click.style("error:", fg="red", bold=True) + f" {message}", err=True)
    sys.exit(code)


def note(message: str) -> None:
    """A line for the person at the terminal, on stderr (stdout stays for the answer)."""
    click.echo(message, err=True)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def when(value: str | None) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM`` (UTC), ``-`` for none."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M")


def number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return "-" if value is None else str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str) -> None:
    """Print aligned columns under a header, or ``empty`` when there are no rows."""
    if not rows:
        click.echo(empty)
        return
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    click.echo(click.style(line(headers), bold=True))
    for row in cells:
        click.echo(line(row))


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """Print ``label  value`` lines, labels aligned."""
    width = max(len(label) for label, _ in pairs)
    for label, value in pairs:
        click.echo(f"{label.ljust(width)}  {value}")


def report_api_error(exc: ApiError, *, source: str | None = None) -> NoReturn:
    """One line ``error: <code>: <message>``; a refused request adds one line per field."""
    refused = exc.fields
    issues = (exc.body or {}).get("issues")
    if refused:
        lines = [f"  {f.field}: {f.message}" for f in refused]
        message = f"the gateway refused {len(refused)} field" + ("s:" if len(refused) > 1 else ":")
    elif isinstance(issues, list) and issues:
        lines = [_issue_line(i, source) for i in issues if isinstance(i, dict)]
        message = exc.detail or exc.message
    else:
        lines = []
        message = exc.detail or exc.message
    click.echo(click.style("error:", fg="red", bold=True) + f" {exc.code}: {message}", err=True)
    for text in lines:
        click.echo(text, err=True)
    sys.exit(1)


def _issue_line(issue: dict[str, Any], source: str | None) -> str:
    line = issue.get("line")
    if source:
        where = f"{source}:{line}:{issue.get('column')}: " if line else f"{source}: "
    else:
        where = f"line {line}: " if line else ""
    return f"  {where}{issue.get('path', '')}: {issue.get('message', '')}"


@contextmanager
def failures(*, source: str | None = None) -> Iterator[None]:
    """Turn the client's errors into one clear line (and exit 1) instead of a traceback."""
    try:
        yield
    except ApiError as exc:
        report_api_error(exc, source=source)
    except GatewayUnreachable as exc:
        hint = f" — {URL_HINT}" if exc.kind == "connect" else ""
        fail(exc.reason + hint)
