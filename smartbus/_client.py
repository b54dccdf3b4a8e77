"""ClientAPI: what smartbus.net.Client and smartbus.ipc.Client share over
the binding's NativeClient: the documented flow and notify methods, the
identity properties, construction and disposal, and the default event
handlers."""

from smartbus import _native, flows
from smartbus.utils import LoggerMixin
from smartbus.version import __version__


class ClientAPI(_native.NativeClient, LoggerMixin):
    """Documented methods and handlers common to smartbus.net.Client and
    smartbus.ipc.Client.  Override the ``on_*`` handlers in a subclass; they
    run in the client's ``event_executor`` (by default one SDK thread:
    one at a time, in arrival order, never on the caller's thread)."""

    _own_sink = None        # the event sink made for this client alone, if any

    @classmethod
    def create(cls, *args, **kwargs):
        """Creates a client (same arguments as the constructor)."""
        return cls(*args, **kwargs)

    def _open_client(self, sink, kind, unit_id, client_id, client_type, user, password, info,
                     event_executor, **address):
        """Creates the client in the SDK (not connecting yet) on ``sink``, or
        on an event sink of its own if ``sink`` is None; ``address``: the
        server's (_open's master_ip... or ipc_path)."""
        if not info:
            info = "%s %s" % (type(self).__qualname__, __version__)
        own_sink = _native.EventSink() if sink is None else None
        try:
            self._open(own_sink if sink is None else sink, kind, unit_id, client_id, client_type,
                       user=user, password=password, info=info, event_executor=event_executor,
                       **address)
        except BaseException:
            if own_sink is not None:
                own_sink.close()
            raise
        self._own_sink = own_sink
        self._client_id = client_id
        self._client_type = client_type
        self._user = user
        self._password = password
        self._info = info

    def _forget(self):
        """Removes the client from its class's registry (subclasses)."""

    def dispose(self):
        """Closes the connection and releases the client (idempotent)."""
        self._forget()
        self._close()
        sink, self._own_sink = self._own_sink, None
        if sink is not None:
            sink.close()

    close = dispose

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.dispose()

    def activate(self):
        """Starts connecting and returns at once; the client then registers,
        and reconnects by itself after a failure or a break."""
        self._activate()

    def launch_flow(self, server_unit_id, process_index, project_id, flow_id, mode, timeout,
                    params):
        """Starts flow ``flow_id`` of project ``project_id`` in IPSC process
        ``process_index`` on unit ``server_unit_id`` (0..15) and returns the
        invoke id.  ``mode`` 0 (or 2): the result comes to on_flow_resp;
        1: no result.  ``timeout`` in seconds.  ``params``: a list of simple
        values, sent as a JSON array (CP936 text, at most 32 KiB)."""
        return self._invoke_flow(*flows.invoke_args(server_unit_id, process_index, project_id,
                                                    flow_id, mode, timeout, params))

    def notify(self, server_unit_id, process_index, project_id, title, mode, expires, txt):
        """Sends a notification to IPSC process ``process_index`` on unit
        ``server_unit_id`` and returns its id.  ``expires`` in seconds; ``txt``
        is text (sent in CP936) or, if not text, sent as JSON."""
        return self._notify(*flows.notify_args(server_unit_id, process_index, project_id, title,
                                               mode, expires, txt))

    # ---- identity (set by _open_client) ----------------------------------------

    @property
    def client_id(self):
        """This client's id, 0..255."""
        return self._client_id

    @property
    def client_type(self):
        """This client's type."""
        return self._client_type

    @property
    def user(self):
        return self._user

    @property
    def password(self):
        return self._password

    @property
    def info(self):
        """The additional info sent at registration."""
        return self._info

    # ---- event handlers (override) -------------------------------------------

    def on_connect(self):
        """Registered with the server."""

    def on_connect_fail(self, error_code):
        """Connecting or registering failed (-20: no TCP connection; -10:
        already connected, retried; other codes: refused, not retried)."""

    def on_disconnect(self):
        """The connection was lost (the client reconnects by itself)."""

    def on_data(self, head, data):
        """Data arrived: ``head`` a :class:`smartbus.head.Head`, ``data`` bytes."""

    def on_flow_ack(self, head, project_id, invoke_id, status_code, msg):
        """A flow started (status 1) or could not (error code; -25 = no ack
        in time, with ``head`` None)."""

    def on_flow_resp(self, head, project_id, invoke_id, params):
        """A flow returned: ``params`` is the list it returned."""

    def on_flow_timeout(self, head, project_id, invoke_id):
        """No flow result within the timeout (``head`` is None)."""

    def on_flow_error(self, head, project_id, invoke_id, error_code):
        """The flow failed (the IPSC reported ``error_code``)."""

    def on_global_connect_state_changed(self, unit_id, client_id, client_type, access_unit_id,
                                        status_code, info):
        """A client on the bus connected (1), disconnected (0) or is
        already connected (2)."""
