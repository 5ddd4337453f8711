"""Server-sent events: incremental decoding of ``data:`` events from a byte stream."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["DONE", "SSEDecoder"]

DONE = b"[DONE]"
_LF = ord("\n")
_CR = ord("\r")  # an int: ``_CR in chunk`` is a byte lookup (~0.2k CPU instructions), while a bytes
# operand of ``in`` is first tried as an int, raising and clearing a TypeError inside (~2.2k, Python 3.11)


class SSEDecoder:
    """Splits a byte stream into SSE event payloads (the joined ``data:`` lines).

    Feed it chunks in arrival order; each call yields the payloads of the events that
    the chunk completed. Comments (``:`` lines) and non-data fields are skipped.
    Not thread-safe; one decoder per stream.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The payloads of the events ``chunk`` completed, in order (an empty list if none)."""
        if not self._buf and chunk.startswith(b"data: ") and chunk.find(b"\n") == len(chunk) - 2 \
                and chunk[-1] == _LF and chunk[6:7] != b" " and _CR not in chunk:
            return [chunk[6:-2]]  # one event of one data line, alone in the chunk: most chunks of a stream
        buf = self._buf + chunk if self._buf else chunk
        if _CR in buf:
            buf = buf.replace(b"\r\n", b"\n")
        out: list[bytes] = []
        start = 0
        find = buf.find
        while True:
            end = find(b"\n\n", start)
            if end < 0:
                break
            # Nearly every event a runtime sends is one "data: <json>" line: take it without
            # splitting the block into lines (the general parse below gives the same payload).
            if buf.startswith(b"data: ", start) and find(b"\n", start, end) < 0 and buf[start + 6 : start + 7] != b" ":
                out.append(buf[start + 6 : end])
            else:
                payload = _event_data(buf[start:end])
                if payload is not None:
                    out.append(payload)
            start = end + 2
        self._buf = buf[start:] if start else buf
        return out

    def flush(self) -> Iterator[bytes]:
        """Payload of a final event that was not terminated by a blank line."""
        if self._buf.strip():
            payload = _event_data(self._buf)
            self._buf = b""
            if payload is not None:
                yield payload


def _event_data(block: bytes) -> bytes | None:
    lines = [line[5:].lstrip(b" ") if line.startswith(b"data:") else None for line in block.split(b"\n")]
    data = [line for line in lines if line is not None]
    if not data:
        return None
    return b"\n".join(data)
