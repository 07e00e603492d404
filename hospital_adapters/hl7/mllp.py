"""MLLP framing: ``<VT> message <FS><CR>`` over a TCP byte stream.

Owns: turning an arbitrary sequence of received chunks into complete message payloads (a frame split
across reads, several frames in one read, junk between frames) with a hard size bound. Must never
interpret the payload, and never buffer more than one maximum-size frame.
"""

from __future__ import annotations

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\r"


class FrameTooLarge(Exception):
    """A frame grew past the limit before its end block; the stream cannot be trusted any more."""


def encode_frame(payload: bytes) -> bytes:
    return START_BLOCK + payload + END_BLOCK


class MllpFramer:
    """Feed it received bytes; it returns every payload completed so far, in order.

    Bytes outside a frame are discarded (a sender's stray newline or a half frame from a dropped
    connection). A start block inside an unfinished frame starts over: the earlier frame was cut off.
    """

    def __init__(self, max_message_bytes: int) -> None:
        self._max_message_bytes = max_message_bytes
        self._buffer = bytearray()
        self._in_frame = False
        self._scanned = 0  # bytes of the current frame already searched for the end block

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        payloads: list[bytes] = []
        while True:
            if not self._in_frame:
                start = self._buffer.find(START_BLOCK)
                if start < 0:
                    self._buffer.clear()
                    return payloads
                del self._buffer[: start + 1]
                self._in_frame = True
                self._scanned = 0
            # Back up one byte: the FS of the end block may have been the last byte of the previous read.
            search_from = max(self._scanned - 1, 0)
            end = self._buffer.find(END_BLOCK, search_from)
            restart = self._buffer.find(START_BLOCK, search_from)
            if restart >= 0 and (end < 0 or restart < end):
                del self._buffer[: restart + 1]
                self._scanned = 0
                continue
            if end < 0:
                self._scanned = len(self._buffer)
                if len(self._buffer) > self._max_message_bytes + len(END_BLOCK):
                    raise FrameTooLarge(f"frame exceeds {self._max_message_bytes} bytes without an end block")
                return payloads
            payload = bytes(self._buffer[:end])
            del self._buffer[: end + len(END_BLOCK)]
            self._in_frame = False
            if len(payload) > self._max_message_bytes:
                raise FrameTooLarge(f"frame of {len(payload)} bytes exceeds {self._max_message_bytes}")
            payloads.append(payload)
