"""The Python face shared by the NET and IPC clients: event handler
defaults, flow and notify argument handling (JSON, CP936, limits)."""

import json
import math
import os

from smartbus._native import MAX_PARAM_BYTES, TEXT_ENCODING
from smartbus.utils import LoggerMixin


def check_int(value, name, low, high):
    """``int(value)`` within [low, high], else a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise TypeError("%s must be an int, not %s" % (name, type(value).__name__)) from None
    if not low <= value <= high:
        raise ValueError("%s must be in %d..%d, got %d" % (name, low, high, value))
    return value


def encode_text(value, name, max_bytes, required=False):
    """str (encoded in CP936) or bytes, at most ``max_bytes`` bytes."""
    if value is None:
        value = b""
    elif isinstance(value, str):
        try:
            value = value.encode(TEXT_ENCODING)
        except UnicodeEncodeError as exc:
            raise ValueError("%s cannot be encoded in %s: %s" % (name, TEXT_ENCODING, exc)) from None
    elif isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
    else:
        raise TypeError("%s must be str or bytes, not %s" % (name, type(value).__name__))
    if b"\0" in value:
        raise ValueError("%s must not contain NUL characters" % name)
    if required and not value:
        raise ValueError("%s must not be empty" % name)
    if len(value) > max_bytes:
        raise ValueError("%s is %d bytes once encoded, the limit is %d"
                         % (name, len(value), max_bytes))
    return value


def encode_json(value, name):
    """JSON text in CP936 (characters CP936 lacks are \\u-escaped), at most
    SMARTBUS_MAX_FLOW_PARAM_SIZE bytes."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError("%s cannot be sent as JSON: %s" % (name, exc)) from None
    try:
        data = text.encode(TEXT_ENCODING)
    except UnicodeEncodeError:
        data = json.dumps(value, separators=(",", ":")).encode("ascii")
    if len(data) > MAX_PARAM_BYTES:
        raise ValueError("%s is %d bytes as JSON, the limit is %d"
                         % (name, len(data), MAX_PARAM_BYTES))
    return data


#: where IPC clients find the server unless told otherwise
DEFAULT_IPC_PATH = "/tmp/smartbus_ipc"
_MAX_UNIX_PATH = 107                # sun_path holds 108 bytes with the NUL


def check_ipc_path(ipc_path):
    """``ipc_path`` (None or a non-empty str); the path actually used (the
    argument, else $SMARTBUS_IPC_PATH, else the default) must fit a Unix
    socket address."""
    if ipc_path is not None and (not isinstance(ipc_path, str) or not ipc_path):
        raise ValueError("ipc_path must be a non-empty str or None")
    path = ipc_path or os.environ.get("SMARTBUS_IPC_PATH") or DEFAULT_IPC_PATH
    n = len(os.fsencode(path))
    if n > _MAX_UNIX_PATH:
        raise ValueError("IPC socket path %r is %d bytes, the limit is %d"
                         % (path, n, _MAX_UNIX_PATH))
    return ipc_path


def seconds_to_ms(value, name):
    """Seconds (int or float, >= 0) to whole milliseconds."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise TypeError("%s must be a number of seconds, not %s"
                        % (name, type(value).__name__)) from None
    if math.isnan(seconds) or seconds < 0 or seconds > 2147483.0:
        raise ValueError("%s must be between 0 and 2147483 seconds, got %r" % (name, value))
    return int(round(seconds * 1000))


class ClientFace(LoggerMixin):
    """Documented methods and handlers common to smartbus.net.Client and
    smartbus.ipc.Client.  Override the ``on_*`` handlers in a subclass; they
    run in the client's ``event_executor`` (by default one SDK thread:
    one at a time, in arrival order, never on the caller's thread)."""

    def launch_flow(self, server_unit_id, process_index, project_id, flow_id, mode, timeout,
                    params):
        """Starts flow ``flow_id`` of project ``project_id`` in IPSC process
        ``process_index`` on unit ``server_unit_id`` (0..15) and returns the
        invoke id.  ``mode`` 0 (or 2): the result comes to on_flow_resp;
        1: no result.  ``timeout`` in seconds.  ``params``: a list of simple
        values, sent as a JSON array (CP936 text, at most 32 KiB)."""
        project = encode_text(project_id, "project_id", 31, required=True)
        flow = encode_text(flow_id, "flow_id", 31, required=True)
        mode = check_int(mode, "mode", 0, 2)
        timeout_ms = seconds_to_ms(timeout, "timeout")
        if params is None:
            params = []
        if not isinstance(params, (list, tuple)):
            raise TypeError("params must be a list, not %s" % type(params).__name__)
        data = encode_json(list(params), "params")
        return self._invoke_flow(check_int(server_unit_id, "server_unit_id", -2**31, 2**31 - 1),
                                 check_int(process_index, "process_index", 0, 255),
                                 project, flow, mode, timeout_ms, data)

    def notify(self, server_unit_id, process_index, project_id, title, mode, expires, txt):
        """Sends a notification to IPSC process ``process_index`` on unit
        ``server_unit_id`` and returns its id.  ``expires`` in seconds; ``txt``
        is text (sent in CP936) or, if not text, sent as JSON."""
        project = encode_text(project_id, "project_id", 31)
        title = encode_text(title, "title", 101, required=True)
        mode = check_int(mode, "mode", 0, 255)
        expires_ms = seconds_to_ms(expires, "expires")
        if isinstance(txt, (str, bytes, bytearray, memoryview)):
            data = encode_text(txt, "txt", MAX_PARAM_BYTES, required=True)
        else:
            data = encode_json(txt, "txt")
        return self._notify(check_int(server_unit_id, "server_unit_id", -2**31, 2**31 - 1),
                            check_int(process_index, "process_index", 0, 255),
                            project, title, mode, expires_ms, data)

    # ---- identity (set by the subclass's constructor) ----------------------------

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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.dispose()

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
