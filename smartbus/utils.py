"""Text helpers and the logging mixin (drop-in for ``smartbus.utils``)."""

import logging

__all__ = ["to_bytes", "to_str", "to_unicode", "b2s_recode", "s2b_recode", "LoggerMixin"]


def to_bytes(s, encoding="utf-8"):
    """``str`` -> ``bytes`` in ``encoding``; bytes-like values and None pass through."""
    if s is None or isinstance(s, bytes):
        return s
    if isinstance(s, (bytearray, memoryview)):
        return bytes(s)
    return str(s).encode(encoding)


def to_str(s, encoding="utf-8"):
    """``bytes`` -> ``str`` from ``encoding``; str and None pass through."""
    if s is None or isinstance(s, str):
        return s
    if isinstance(s, (bytes, bytearray, memoryview)):
        return bytes(s).decode(encoding)
    return str(s)


#: Python 3 has one text type: to_unicode is to_str
to_unicode = to_str


def b2s_recode(bs, source_encoding=None, target_encoding=None):
    """Decodes ``bs`` from ``source_encoding`` (default utf-8) to ``str``.

    ``target_encoding`` is accepted for compatibility (Python 2 returned
    bytes in it); Python 3 strings have no encoding, so it is ignored.
    """
    if bs is None:
        return None
    return to_str(bs, source_encoding or "utf-8")


def s2b_recode(s, source_encoding=None, target_encoding=None):
    """Encodes ``s`` to bytes in ``target_encoding`` (default utf-8); bytes
    input is first decoded from ``source_encoding`` (default utf-8)."""
    if s is None:
        return None
    if isinstance(s, (bytes, bytearray, memoryview)):
        s = bytes(s).decode(source_encoding or "utf-8")
    return str(s).encode(target_encoding or "utf-8")


class LoggerMixin:
    """Gives a class a logger named ``module.ClassName``."""

    @classmethod
    def get_logger(cls):
        """The class's logger."""
        return logging.getLogger("%s.%s" % (cls.__module__, cls.__qualname__))

    @property
    def logger(self):
        """The logger of this object's class."""
        return self.get_logger()
