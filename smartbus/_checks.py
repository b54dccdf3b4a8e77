"""Argument checks shared by the public classes: each returns the value to
use or raises a TypeError / ValueError that names the bad argument."""

from __future__ import annotations

import math
import os
from typing import Any, Optional

from smartbus._native import IPC_DEFAULT_PATH, IPC_PATH_ENV, MAX_IPC_PATH_BYTES

#: the range of a C int (unit ids and the like are passed to the SDK as int)
INT_MIN, INT_MAX = -2**31, 2**31 - 1


def check_int(value: Any, name: str, low: int = INT_MIN, high: int = INT_MAX) -> int:
    """``int(value)`` within [low, high], else an error naming the argument:
    TypeError for a value int() does not take, ValueError for one it
    refuses (``'abc'``) or one out of range (as the old package's ``int()``
    did for client ids)."""
    number: int
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        try:
            number = int(value)
        except TypeError:
            raise TypeError("%s must be an int, not %s" % (name, type(value).__name__)) from None
        except ValueError:
            raise ValueError("%s must be an int, got %r" % (name, value)) from None
    if not low <= number <= high:
        raise ValueError("%s must be in %d..%d, got %d" % (name, low, high, number))
    return number


def seconds_to_ms(value: Any, name: str) -> int:
    """Seconds (int or float, >= 0) to whole milliseconds."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise TypeError("%s must be a number of seconds, not %s"
                        % (name, type(value).__name__)) from None
    if math.isnan(seconds) or seconds < 0 or seconds > INT_MAX // 1000:   # ms fit a C int
        raise ValueError("%s must be between 0 and %d seconds, got %r"
                         % (name, INT_MAX // 1000, value))
    return int(round(seconds * 1000))


def text_or_none(value: Any, name: str) -> Optional[str]:
    """A text setting (user, password, info, addresses): None stays None,
    a str is kept, bytes are decoded from UTF-8, anything else becomes
    ``str(value)`` as in the old package (``password=123456`` is
    ``'123456'``)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError("%s is not UTF-8 text: %s" % (name, exc)) from None
    return str(value)


def check_executor(event_executor: Any) -> Any:
    """None, or something with ``submit`` (a concurrent.futures.Executor)."""
    if event_executor is not None and not hasattr(event_executor, "submit"):
        raise TypeError("event_executor must be a concurrent.futures.Executor")
    return event_executor


def ipc_path_in_effect(ipc_path: Optional[str] = None) -> str:
    """The IPC socket path used for ``ipc_path``: the argument, else
    $SMARTBUS_IPC_PATH, else the SDK's default."""
    return ipc_path or os.environ.get(IPC_PATH_ENV) or IPC_DEFAULT_PATH


def check_ipc_path(ipc_path: Optional[str]) -> Optional[str]:
    """``ipc_path`` (None or a non-empty str); the path actually used (see
    ipc_path_in_effect) must fit a Unix socket address."""
    if ipc_path is not None and (not isinstance(ipc_path, str) or not ipc_path):
        raise ValueError("ipc_path must be a non-empty str or None")
    path = ipc_path_in_effect(ipc_path)
    n = len(os.fsencode(path))
    if n > MAX_IPC_PATH_BYTES:
        raise ValueError("IPC socket path %r is %d bytes, the limit is %d"
                         % (path, n, MAX_IPC_PATH_BYTES))
    return ipc_path


def span(ids: range) -> str:
    """A range of ids as text: ``range(16, 48)`` -> ``'16..47'``."""
    return "%d..%d" % (ids.start, ids.stop - 1)
