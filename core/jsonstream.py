"""Reads the ``objects`` array of a STIX bundle one object at a time, without loading the whole file.

A bundle is a JSON object with an ``objects`` array; the reader walks the top-level keys with
``json.JSONDecoder.raw_decode``, skips values other than ``objects``, and decodes array elements one by one
from a growing buffer. Memory holds one object plus one read chunk, however big the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"
CHUNK = 1 << 20


class StreamError(ValueError):
    """Raised when the text is not a JSON object with an ``objects`` array; carries the byte offset."""

    def __init__(self, message: str, offset: int) -> None:
        # Some messages of the json module already end in "at" ("Unterminated string starting at").
        message = message.removesuffix(" at")
        super().__init__(f"{message} at character {offset}")
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Element:
    """One element of the ``objects`` array: its value and its JSON text."""

    value: Any
    text: str


class _Buffer:
    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.text = ""
        self.pos = 0
        self.consumed = 0  # characters dropped from the front, for offsets in messages
        self.eof = False

    def fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.handle.read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        if self.pos > CHUNK:
            self.consumed += self.pos
            self.text = self.text[self.pos :]
            self.pos = 0
        self.text += chunk
        return True

    def skip_ws(self) -> str:
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.fill():
                return ""

    def expect(self, char: str) -> None:
        found = self.skip_ws()
        if found != char:
            raise StreamError(f"expected {char!r}, found {found or 'end of file'!r}", self.offset)
        self.pos += 1

    @property
    def offset(self) -> int:
        return self.consumed + self.pos

    def decode(self) -> tuple[Any, str]:
        self.skip_ws()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                # The element may continue in the next chunk; only at end of file is it really invalid.
                if self.fill():
                    continue
                raise StreamError(f"invalid JSON: {exc.msg}", self.consumed + exc.pos) from None
            if end == len(self.text) and not self.eof and isinstance(value, (int, float)):
                # A number cut at the chunk edge decodes as a shorter number; read on to be sure.
                if self.fill():
                    continue
            text = self.text[self.pos : end]
            self.pos = end
            return value, text


def iter_bundle_objects(handle: IO[str]) -> Iterator[Element]:
    """Yield each element of the top-level ``objects`` array of a bundle, in order.

    Also accepts a bare JSON array of objects and a single object that is not a bundle (yielded as the one
    element). Raises :class:`StreamError` at the first point the text stops being valid; elements before it
    have already been yielded, so nothing that was readable is lost.
    """
    buffer = _Buffer(handle)
    first = buffer.skip_ws()
    if first == "[":
        buffer.pos += 1
        yield from _iter_array(buffer)
        return
    if first != "{":
        raise StreamError(f"expected a JSON object or array, found {first or 'end of file'!r}", buffer.offset)

    start = buffer.pos
    buffer.pos += 1
    seen_objects = False
    keys: dict[str, Any] = {}
    while True:
        char = buffer.skip_ws()
        if char == "}":
            buffer.pos += 1
            break
        if char == ",":
            buffer.pos += 1
            continue
        key, _ = buffer.decode()
        if not isinstance(key, str):
            raise StreamError("expected a property name", buffer.offset)
        buffer.expect(":")
        if key == "objects" and buffer.skip_ws() == "[":
            buffer.pos += 1
            seen_objects = True
            yield from _iter_array(buffer)
        else:
            keys[key], _ = buffer.decode()

    if not seen_objects and keys.get("type") != "bundle" and "id" in keys:
        # A single STIX object in a file of its own.
        yield Element(keys, buffer.text[start - buffer.consumed : buffer.pos] if buffer.consumed == 0 else "")


def _iter_array(buffer: _Buffer) -> Iterator[Element]:
    while True:
        char = buffer.skip_ws()
        if char == "]":
            buffer.pos += 1
            return
        if char == ",":
            buffer.pos += 1
            continue
        if char == "":
            raise StreamError("unexpected end of file inside the objects array", buffer.offset)
        value, text = buffer.decode()
        yield Element(value, text)
