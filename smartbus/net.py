"""The NET client: a TCP connection to a SmartBus server (drop-in for
``smartbus.net``)::

    Client.initialize(20)                 # once per process: this process's unit
    c = MyClient.create(client_id=1, client_type=11,
                        master_ip="127.0.0.1", master_port=8089)
    c.activate()                          # connects, registers, reconnects by itself
    c.wait_connected(5)                   # True once registered
    c.send_data(cmd=1, cmd_type=3, dst_unit_id=21, dst_client_id=1,
                dst_client_type=11, data=b"hello")
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Executor
from typing import Any, Callable, Optional

from smartbus import _native
from smartbus._checks import check_executor, check_int, text_or_none
from smartbus._client import ClientAPI
from smartbus.errors import (AlreadyExistsError, AlreadyInitializedError, NotInitializedError,
                             SmartBusError, SMARTBUS_ERR_UNITID_INVALID)

__all__ = ["Client"]

_lock = threading.RLock()

#: ``global_connect_callback(unit_id, client_id, client_type, access_unit_id,
#: status_code, info)``
GlobalConnectCallback = Callable[[int, int, int, int, int, str], Any]
#: slave_port meaning "no slave server"
NO_SLAVE_PORT = 0xFFFF


class Client(ClientAPI):
    """A NET client.  Build it with :meth:`create` after :meth:`initialize`.

    ``master_ip`` and ``slave_ip`` are kept as text (``str(value)``; a
    ``slave_ip`` of None, ``''`` or ``0`` means no slave server), the ports as
    ints (``slave_port`` None or 0 means 0xFFFF, no slave server)."""

    _unit_id: Optional[int] = None          # the process's unit (initialize)
    _event_sink: Optional[_native.EventSink] = None
    _instances: dict[int, Client] = {}

    @classmethod
    def initialize(cls, unit_id: int,
                   global_connect_callback: Optional[GlobalConnectCallback] = None,
                   lib_path: str = "") -> None:
        """Initialises the library for this process: ``unit_id`` (16..47) is the
        process's unit on the bus.  ``global_connect_callback(unit_id,
        client_id, client_type, access_unit_id, status_code, info)`` is called
        when a client anywhere on the bus connects (1), disconnects (0) or is
        already there (2).  ``lib_path`` is accepted and ignored (the SDK is
        built in)."""
        with _lock:
            if Client._unit_id is not None:
                raise AlreadyInitializedError("smartbus.net is already initialised (unit %d)"
                                              % Client._unit_id)
            unit_id = check_int(unit_id, "unit_id")
            if unit_id not in _native.NET_UNIT_IDS:
                raise SmartBusError(SMARTBUS_ERR_UNITID_INVALID)
            if global_connect_callback is not None and not callable(global_connect_callback):
                raise TypeError("global_connect_callback must be callable")
            Client._event_sink = _native.EventSink(global_connect_callback)
            Client._unit_id = unit_id

    @classmethod
    def release(cls) -> None:
        """Closes every NET client and releases the library (initialize may
        be called again)."""
        with _lock:
            for inst in list(Client._instances.values()):
                inst.dispose()
            if Client._event_sink is not None:
                Client._event_sink.close()
            Client._event_sink = None
            Client._unit_id = None

    @classmethod
    def is_initialized(cls) -> bool:
        """True after initialize()."""
        return Client._unit_id is not None

    @classmethod
    def find(cls, client_id: int, default: Optional[Client] = None) -> Optional[Client]:
        """The instance with local client id ``client_id``, or ``default``."""
        return Client._instances.get(client_id, default)

    def __init__(self, client_id: int, client_type: int, master_ip: str, master_port: int,
                 slave_ip: Optional[str] = None, slave_port: Optional[int] = None,
                 user: Optional[str] = None, password: Optional[str] = None,
                 info: Optional[str] = None, event_executor: Optional[Executor] = None) -> None:
        with _lock:
            if Client._unit_id is None:
                raise NotInitializedError("call smartbus.net.Client.initialize(unit_id) first")
            client_id = check_int(client_id, "client_id", 0, 255)
            client_type = check_int(client_type, "client_type", 0, 255)
            master_host = text_or_none(master_ip, "master_ip")
            if not master_host:
                raise ValueError("master_ip must be a server's address, got %r" % (master_ip,))
            master_port = check_int(master_port, "master_port", 1, 65535)
            slave_ip = text_or_none(slave_ip, "slave_ip")
            slave_port = check_int(slave_port, "slave_port", 1, NO_SLAVE_PORT) \
                if slave_port else NO_SLAVE_PORT
            check_executor(event_executor)
            if client_id in Client._instances:
                raise AlreadyExistsError("a NET client with client_id %d exists in this process"
                                         % client_id)
            self._open_client(Client._event_sink, _native.KIND_NET, Client._unit_id, client_id,
                              client_type, user, password, info, event_executor,
                              master_ip=master_host, master_port=master_port,
                              slave_ip=None if slave_ip in ("", "0") else slave_ip,
                              slave_port=slave_port)
            self._local_unit = Client._unit_id
            self._master_ip = master_host
            self._master_port = master_port
            self._slave_ip = slave_ip
            self._slave_port = slave_port
            Client._instances[client_id] = self

    def _forget(self) -> None:
        with _lock:
            client_id = getattr(self, "_client_id", None)     # None: __init__ failed
            if client_id is not None and Client._instances.get(client_id) is self:
                del Client._instances[client_id]

    def _bus_unit(self) -> int:
        return self._local_unit

    @property
    def unit_id(self) -> int:
        """The unit given to :meth:`initialize` until the client registers,
        then the unit of the server it registered with (its access point),
        as in the old package (``launch_flow(client.unit_id, ...)`` reaches
        an IPSC on that server)."""
        unit = self._registered_unit
        return self._local_unit if unit is None else unit

    @property
    def master_ip(self) -> str:
        """The master server's address."""
        return self._master_ip

    @property
    def master_port(self) -> int:
        """The master server's port."""
        return self._master_port

    @property
    def slave_ip(self) -> Optional[str]:
        """The slave server's address as given (None, ``''`` or ``'0'``: none)."""
        return self._slave_ip

    @property
    def slave_port(self) -> int:
        """The slave server's port (0xFFFF: none)."""
        return self._slave_port


def _after_fork_in_child() -> None:
    # the parent's clients are closed in the child (smartbus._native): their
    # ids are free for new ones, which share the NET event sink as before
    Client._instances.clear()
    _lock.release()


# the registry is never copied half-changed into a child of os.fork()
os.register_at_fork(before=_lock.acquire, after_in_parent=_lock.release,
                    after_in_child=_after_fork_in_child)
