"""The IPC client: a Unix-domain socket to the SmartBus server on this host
(drop-in for ``smartbus.ipc``).  One per process (a singleton).

The socket path is ``/tmp/smartbus_ipc`` unless the ``ipc_path`` keyword or
the ``SMARTBUS_IPC_PATH`` environment variable says otherwise.  The client's
unit id is the server's, learnt when it registers.
"""

import os
import threading

from smartbus import _native
from smartbus._checks import check_executor, check_int, check_ipc_path
from smartbus._client import ClientAPI
from smartbus.errors import AlreadyExistsError, NotInitializedError

__all__ = ["Client"]

_lock = threading.RLock()


class Client(ClientAPI):
    """The IPC client.  Create it once with :meth:`create` (or
    :meth:`get_or_create`), get it back with :meth:`get`/:meth:`instance`,
    release it with :meth:`dispose` (or :meth:`destroy`)."""

    _instance = None

    def __init__(self, client_id, client_type, user=None, password=None, info=None,
                 lib_path="", event_executor=None, ipc_path=None):
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
    def get_or_create(cls, *args, **kwargs):
        """The singleton, created with these arguments if there is none."""
        with _lock:
            if Client._instance is not None:
                return Client._instance
            return cls(*args, **kwargs)

    @classmethod
    def get(cls):
        """The singleton (NotInitializedError if there is none)."""
        inst = Client._instance
        if inst is None:
            raise NotInitializedError("no IPC client: call Client.create(...) first")
        return inst

    instance = get

    @classmethod
    def destroy(cls):
        """Disposes the singleton if there is one."""
        inst = Client._instance
        if inst is not None:
            inst.dispose()

    def _forget(self):
        with _lock:
            if Client._instance is self:
                Client._instance = None

    def __del__(self):
        try:
            self.dispose()
        except Exception:
            pass

    @property
    def unit_id(self):
        """The server's unit id, learnt at registration (None before)."""
        return self.access_unit_id


def _after_fork_in_child():
    # the parent's client is closed in the child (smartbus._native): a new
    # one may be created
    Client._instance = None
    _lock.release()


# the singleton is never copied half-changed into a child of os.fork()
os.register_at_fork(before=_lock.acquire, after_in_parent=_lock.release,
                    after_in_child=_after_fork_in_child)
