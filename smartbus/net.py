"""The NET client: a TCP connection to a SmartBus server (drop-in for
``smartbus.net``).

    Client.initialize(20)                 # once per process: this process's unit
    c = MyClient.create(client_id=1, client_type=11,
                        master_ip="127.0.0.1", master_port=8089)
    c.activate()                          # connects, registers, reconnects by itself
    c.send_data(cmd=1, cmd_type=3, dst_unit_id=21, dst_client_id=1,
                dst_client_type=11, data=b"hello")
"""

import os
import threading

from smartbus import _native
from smartbus._checks import check_executor, check_int
from smartbus._client import ClientAPI
from smartbus.errors import (AlreadyExistsError, AlreadyInitializedError, NotInitializedError,
                             SmartBusError, SMARTBUS_ERR_UNITID_INVALID)

__all__ = ["Client"]

_lock = threading.RLock()


class Client(ClientAPI):
    """A NET client.  Build it with :meth:`create` after :meth:`initialize`."""

    _unit_id = None
    _event_sink = None
    _instances = {}

    @classmethod
    def initialize(cls, unit_id, global_connect_callback=None, lib_path=""):
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
    def release(cls):
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
    def is_initialized(cls):
        """True after initialize()."""
        return Client._unit_id is not None

    @classmethod
    def find(cls, client_id, default=None):
        """The instance with local client id ``client_id``, or ``default``."""
        return Client._instances.get(client_id, default)

    def __init__(self, client_id, client_type, master_ip, master_port, slave_ip=None,
                 slave_port=None, user=None, password=None, info=None, event_executor=None):
        with _lock:
            if Client._unit_id is None:
                raise NotInitializedError("call smartbus.net.Client.initialize(unit_id) first")
            client_id = check_int(client_id, "client_id", 0, 255)
            client_type = check_int(client_type, "client_type", 0, 255)
            if not isinstance(master_ip, str) or not master_ip:
                raise ValueError("master_ip must be a non-empty str, got %r" % (master_ip,))
            master_port = check_int(master_port, "master_port", 1, 65535)
            if slave_ip in (None, "", 0):
                slave_ip = None
            elif not isinstance(slave_ip, str):
                raise ValueError("slave_ip must be a str, None, '' or 0, got %r" % (slave_ip,))
            slave_port = 0xFFFF if slave_port in (None, 0) else \
                check_int(slave_port, "slave_port", 1, 0xFFFF)
            check_executor(event_executor)
            if client_id in Client._instances:
                raise AlreadyExistsError("a NET client with client_id %d exists in this process"
                                         % client_id)
            self._open_client(Client._event_sink, _native.KIND_NET, Client._unit_id, client_id,
                              client_type, user, password, info, event_executor,
                              master_ip=master_ip, master_port=master_port, slave_ip=slave_ip,
                              slave_port=slave_port)
            self._master_ip = master_ip
            self._master_port = master_port
            self._slave_ip = slave_ip
            self._slave_port = slave_port
            Client._instances[client_id] = self

    def _forget(self):
        with _lock:
            if Client._instances.get(getattr(self, "_client_id", None)) is self:
                del Client._instances[self._client_id]

    @property
    def unit_id(self):
        """This process's unit id."""
        return Client._unit_id

    @property
    def master_ip(self):
        return self._master_ip

    @property
    def master_port(self):
        return self._master_port

    @property
    def slave_ip(self):
        return self._slave_ip

    @property
    def slave_port(self):
        return self._slave_port


def _after_fork_in_child():
    # the parent's clients are closed in the child (smartbus._native): their
    # ids are free for new ones, which share the NET event sink as before
    Client._instances.clear()
    _lock.release()


# the registry is never copied half-changed into a child of os.fork()
os.register_at_fork(before=_lock.acquire, after_in_parent=_lock.release,
                    after_in_child=_after_fork_in_child)
