"""Log records that user input cannot forge: one record is one line.

Names, ids and other values that reach a log message come from callers (a site's name, an
asset id in a path). A line break in one of them would start a line of its own that reads
like a record of its own. :func:`install_safe_records` makes every record of the process
escape control characters in its message (``\\n`` becomes the two characters ``\\n``),
whichever logger, handler or formatter writes it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_control(text: str) -> str:
    """``text`` with every control character (C0, DEL, C1, line and paragraph separators)
    written as an escape; printable text, any script, is left as it is."""

    def one(match: re.Match[str]) -> str:
        char = match.group(0)
        named = _NAMED.get(char)
        if named is not None:
            return named
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _CONTROL.sub(one, text)


class SafeLogRecord(logging.LogRecord):
    """A record whose message has its control characters escaped."""

    def getMessage(self) -> str:
        return escape_control(super().getMessage())


def install_safe_records() -> None:
    """Make every log record of this process a :class:`SafeLogRecord` (idempotent)."""
    current: Any = logging.getLogRecordFactory()
    if current is SafeLogRecord:
        return
    if current is not logging.LogRecord:
        logging.getLogger(__name__).warning("replacing a custom log record factory")
    logging.setLogRecordFactory(SafeLogRecord)
