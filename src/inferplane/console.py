"""The one place every command gets its rich console from.

Contract, for every command, to a terminal or not:

- A message or log line (a ``str`` or rich ``Text``) is never hard-wrapped: it reaches the
  stream as one line, so a path or an error survives ``grep`` and copy-paste. A terminal may
  fold it visually; no newline is inserted.
- Tables and other layouts wrap inside their cells at the terminal's width, or, when the
  stream is not a terminal, at a fixed :data:`PIPE_WIDTH` (never ``$COLUMNS``, so what a
  pipe or a test captures does not depend on the environment's idea of a width).

This module imports only rich, so ``bench`` (which depends on nothing but ``protocol``) may use it.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

__all__ = ["PIPE_WIDTH", "LineConsole", "error_line", "make_console"]

PIPE_WIDTH = 200
"""Width tables lay out at when the stream is not a terminal."""


class LineConsole(Console):
    """A rich Console whose ``print`` of plain text never inserts line breaks (``soft_wrap``)."""

    def print(self, *objects: Any, soft_wrap: bool | None = None, **kwargs: Any) -> None:
        if soft_wrap is None:
            soft_wrap = all(isinstance(o, str | Text) for o in objects)
        super().print(*objects, soft_wrap=soft_wrap, **kwargs)


def make_console(*, stderr: bool = False, file: IO[str] | None = None) -> LineConsole:
    """A console for stdout (default) or stderr that follows the module's contract."""
    stream = file or (sys.stderr if stderr else sys.stdout)
    is_tty = hasattr(stream, "isatty") and stream.isatty()
    return LineConsole(file=file, stderr=stderr, width=None if is_tty else PIPE_WIDTH, soft_wrap=True)


def error_line(console: Console, message: str) -> None:
    """``error: <message>`` as one line; ``message`` is plain text (rich markup in it is escaped)."""
    console.print(f"[red]error:[/] {escape(message)}")
