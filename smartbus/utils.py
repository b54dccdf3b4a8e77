"""Text helpers and the logging mixin (drop-in for ``smartbus.utils``)."""

from __future__ import annotations

import logging
from typing import Optional, Union, overload

__all__ = ["to_bytes", "to_str", "to_unicode", "b2s_recode", "s2b_recode", "LoggerMixin"]

#: what the text helpers take: text, or bytes-like
Text = Union[str, bytes, bytearray, memoryview]
_BYTES_LIKE = (bytes, bytearray, memoryview)


def _not_text(s: object) -> TypeError:
    return TypeError("expected str or bytes, not %s" % type(s).__name__)


@overload
def to_bytes(s: None, encoding: str = ...) -> None: ...
@overload
def to_bytes(s: Text, encoding: str = ...) -> bytes: ...


def to_bytes(s: Optional[Text], encoding: str = "utf-8") -> Optional[bytes]:
    """``str`` -> ``bytes`` in ``encoding``; bytes-like values are returned as
    bytes and None as None; anything else is a TypeError."""
    if s is None or isinstance(s, bytes):
        return s
    if isinstance(s, str):
        return s.encode(encoding)
    if isinstance(s, _BYTES_LIKE):
        return bytes(s)
    raise _not_text(s)


@overload
def to_str(s: None, encoding: str = ...) -> None: ...
@overload
def to_str(s: Text, encoding: str = ...) -> str: ...


def to_str(s: Optional[Text], encoding: str = "utf-8") -> Optional[str]:
    """bytes-like -> ``str`` decoded from ``encoding``; str and None are
    returned as they are; anything else is a TypeError."""
    if s is None or isinstance(s, str):
        return s
    if isinstance(s, _BYTES_LIKE):
        return bytes(s).decode(encoding)
    raise _not_text(s)


#: Python 3 has one text type: to_unicode is to_str
to_unicode = to_str


@overload
def b2s_recode(bs: None, source_encoding: Optional[str] = ...,
               target_encoding: Optional[str] = ...) -> None: ...
@overload
def b2s_recode(bs: Text, source_encoding: Optional[str] = ...,
               target_encoding: Optional[str] = ...) -> str: ...


def b2s_recode(bs: Optional[Text], source_encoding: Optional[str] = None,
               target_encoding: Optional[str] = None) -> Optional[str]:
    """Decodes ``bs`` from ``source_encoding`` (default utf-8) to ``str``.

    ``target_encoding`` is accepted for compatibility (Python 2 returned
    bytes in it); Python 3 strings have no encoding, so it is ignored.
    """
    return to_str(bs, source_encoding or "utf-8")


@overload
def s2b_recode(s: None, source_encoding: Optional[str] = ...,
               target_encoding: Optional[str] = ...) -> None: ...
@overload
def s2b_recode(s: Text, source_encoding: Optional[str] = ...,
               target_encoding: Optional[str] = ...) -> bytes: ...


def s2b_recode(s: Optional[Text], source_encoding: Optional[str] = None,
               target_encoding: Optional[str] = None) -> Optional[bytes]:
    """Encodes ``s`` to bytes in ``target_encoding`` (default utf-8); bytes
    input is first decoded from ``source_encoding`` (default utf-8)."""
    if s is None:
        return None
    return to_bytes(to_str(s, source_encoding or "utf-8"), target_encoding or "utf-8")


class LoggerMixin:
    """Gives a class a logger named ``module.ClassName``."""

    @classmethod
    def get_logger(cls) -> logging.Logger:
        """The class's logger."""
        return logging.getLogger("%s.%s" % (cls.__module__, cls.__qualname__))

    @property
    def logger(self) -> logging.Logger:
        """The logger of this object's class."""
        return self.get_logger()
