"""smartbus: Python client for SmartBus, the message bus of the IPSC
telephony/IVR flow server, over a bundled C SDK.

- :class:`NetClient` (``smartbus.net.Client``): TCP client.
- :class:`IpcClient` (``smartbus.ipc.Client``): local (Unix socket) client.
- ``smartbus.server``: the bundled local SmartBus server (router).

Importing the package also imports ``smartbus.errors``, ``smartbus.head``
and ``smartbus.utils``, as the old ctypes package did.
"""

import os
import warnings


def _warn_if_old_package_left_over() -> None:
    """The old ctypes package (smartbus-client-python) installs the same
    ``smartbus/`` directory; installed over it, ours replaces its modules
    but its private ``smartbus/_c/`` package stays behind (and uninstalling
    it later deletes files of ours).  Say so, with the fix."""
    leftover = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_c")
    if os.path.isdir(leftover):
        warnings.warn(
            "%s is left over from the old package smartbus-client-python, installed in the "
            "same place as this one: run `pip uninstall smartbus-client-python smartbus` and "
            "then install smartbus again (uninstalling only the old package would also "
            "delete files of smartbus)" % leftover, RuntimeWarning, stacklevel=3)


_warn_if_old_package_left_over()

from smartbus.version import __version__  # noqa: E402  (after the check: it may fail)
from smartbus import errors, head, utils  # noqa: E402,F401
from smartbus.net import Client as NetClient  # noqa: E402
from smartbus.ipc import Client as IpcClient  # noqa: E402

__all__ = ["NetClient", "IpcClient", "__version__"]
