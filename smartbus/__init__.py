"""smartbus: Python client for SmartBus, the message bus of the IPSC
telephony/IVR flow server, over a bundled C SDK.

- :class:`NetClient` (``smartbus.net.Client``): TCP client.
- :class:`IpcClient` (``smartbus.ipc.Client``): local (Unix socket) client.
- ``smartbus.server``: the bundled local SmartBus server (router).
"""

from smartbus.version import __version__
from smartbus.net import Client as NetClient
from smartbus.ipc import Client as IpcClient

__all__ = ["NetClient", "IpcClient", "__version__"]
