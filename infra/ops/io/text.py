"""Files people edit by hand (stack files, manifests, workflows) read as UTF-8 text, or refused saying where.

A stray Latin-1 byte must not end a task in a UnicodeDecodeError traceback: the reader gets the file, the byte,
its offset and line, and the fix.
"""
from __future__ import annotations

from pathlib import Path

from infra.ops.errors import Refused


class NotUtf8(Refused, ValueError):
    """The bytes are not UTF-8 (bad input: exit 2); str() reads "not UTF-8 text (byte 0xff at offset 12, line 2)"."""


def utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise NotUtf8(f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}, line {line})") from None


def read_utf8(path: Path) -> str:
    """The file's text; NotUtf8 when it is not UTF-8, OSError (IsADirectoryError, ...) when it cannot be read."""
    return utf8(path.read_bytes())
