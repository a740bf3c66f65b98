"""What the holder's reviewer is shown: held files as text, never as terminal commands."""

from __future__ import annotations

from gateway.cli.site import printable


def test_control_characters_in_held_files_are_shown_not_obeyed() -> None:
    shown = printable(b"mean\t5.5\n\x1b]0;owned\x07\x1b[2J\x9b31m")
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert shown.startswith("mean\t5.5\n")
    assert "\\x1b]0;owned\\x07" in shown
