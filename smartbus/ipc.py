"""The IPC client: a Unix-domain socket to the SmartBus server on this host
(drop-in for ``smartbus.ipc``).  One per process (a singleton).

The socket path is ``/tmp/smartbus_ipc`` unless the ``ipc_path`` keyword or
the ``SMARTBUS_IPC_PATH`` environment variable says otherwise.  The client's
unit id is the server's, learnt when it registers.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Executor
from typing import Any, Optional

from smartbus import _native
from smartbus._checks import check_executor, check_int, check_ipc_path
from smartbus._client import ClientAPI
from smartbus.errors import AlreadyExistsError

__all__ = ["Client"]

_lock = threading.RLock()


class Client(ClientAPI):
    """The IPC client.  Create it once with :meth:`create` (or
    :meth:`get_or_create`), get it back with :meth:`get`/:meth:`instance`,
    release it with :meth:`dispose` (or :meth:`destroy`)."""

    _instance: Optional[Client] = None

    def __init__(self, client_id: int, client_type: int, user: Optional[str] = None,
                 password: Optional[str] = None, info: Optional[str] = None, lib_path: str = "",
                 event_executor: Optional[Executor] = None,
                 ipc_path: Optional[str] = None) -> None:
        with _lock:
            if Client._instance is not None:
                raise AlreadyExistsError("an IPC client exists already in this process "
                                         "(use Client.get(), or dispose() it first)")
            client_id = check_int(client_id, "client_id", 0, 255)
            client_type = check_int(client_type, "client_type", 2, 255)
            ipc_path = check_ipc_path(ipc_path)
            check_executor(event_executor)
            # an event sink of its own: IPC events run apart from the NET clients'
            self._open_client(None, _native.KIND_IPC, 0, client_id, client_type, user, password,
                              info, event_executor, ipc_path=ipc_path)
            Client._instance = self

    @classmethod
    def get_or_create(cls, *args: Any, **kwargs: Any) -> Client:
        """The singleton, created with these arguments if there is none (if
        there is one, the arguments are ignored)."""
        with _lock:
            if Client._instance is not None:
                return Client._instance
            return cls(*args, **kwargs)

    @classmethod
    def get(cls) -> Optional[Client]:
        """The singleton, or None if there is none."""
        return Client._instance

    instance = get

    @classmethod
    def destroy(cls) -> None:
        """Disposes the singleton if there is one."""
        inst = Client._instance
        if inst is not None:
            inst.dispose()

    def _forget(self) -> None:
        with _lock:
            if Client._instance is self:
                Client._instance = None

    def __del__(self) -> None:
        try:
            self.dispose()
        except Exception:
            pass

    @property
    def unit_id(self) -> Optional[int]:
        """The server's unit id, learnt at registration (None before)."""
        return self._registered_unit

    def _bus_unit(self) -> Optional[int]:
        return self._registered_unit


def _after_fork_in_child() -> None:
    # the parent's client is closed in the child (smartbus._native): a new
    # one may be created
    Client._instance = None
    _lock.release()


# the singleton is never copied half-changed into a child of os.fork()
os.register_at_fork(before=_lock.acquire, after_in_parent=_lock.release,
                    after_in_child=_after_fork_in_child)
