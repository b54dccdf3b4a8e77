"""Argument checks shared by the public classes: each returns the value to
use or raises a TypeError / ValueError that names the bad argument."""

import math
import os

from smartbus._native import IPC_DEFAULT_PATH, IPC_PATH_ENV, MAX_IPC_PATH_BYTES

#: the range of a C int (unit ids and the like are passed to the SDK as int)
INT_MIN, INT_MAX = -2**31, 2**31 - 1


def check_int(value, name, low=INT_MIN, high=INT_MAX):
    """``int(value)`` within [low, high], else a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise TypeError("%s must be an int, not %s" % (name, type(value).__name__)) from None
    if not low <= value <= high:
        raise ValueError("%s must be in %d..%d, got %d" % (name, low, high, value))
    return value


def seconds_to_ms(value, name):
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


def check_executor(event_executor):
    """None, or something with ``submit`` (a concurrent.futures.Executor)."""
    if event_executor is not None and not hasattr(event_executor, "submit"):
        raise TypeError("event_executor must be a concurrent.futures.Executor")
    return event_executor


def ipc_path_in_effect(ipc_path=None):
    """The IPC socket path used for ``ipc_path``: the argument, else
    $SMARTBUS_IPC_PATH, else the SDK's default."""
    return ipc_path or os.environ.get(IPC_PATH_ENV) or IPC_DEFAULT_PATH


def check_ipc_path(ipc_path):
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


def span(ids):
    """A range of ids as text: ``range(16, 48)`` -> ``'16..47'``."""
    return "%d..%d" % (ids.start, ids.stop - 1)
