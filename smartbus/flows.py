"""What flows and notifications mean on the bus, both directions in one
place: the bytes that launch_flow / notify send (CP936 text, JSON
parameters, the SDK's limits); which on_flow_* handler a flow ack or result
event runs, with what arguments; and for the flow server (smartbus.ipsc)
the parameters of an invoke and the encoding of its result.  The binding
only moves bytes: it hands the raw event fields to flow_event_handler."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from smartbus._checks import check_int, seconds_to_ms
from smartbus._native import FLOW_MODE_NO_RESULT, MAX_FLOW_PARAM_BYTES
from smartbus.errors import SMARTBUS_ERR_OTHER, SMARTBUS_ERR_TIMEOUT

if TYPE_CHECKING:
    from smartbus._client import ClientAPI
    from smartbus.head import Head

#: text sent to / received from IPSC (GBK)
TEXT_ENCODING = "cp936"
#: the code of a flow ack (the flow started) or result (it returned values)
FLOW_OK = 1
#: the on_flow_error code of a flow result that is not a JSON array in
#: CP936 (undecodable bytes, not JSON, nested too deep to decode, a JSON
#: value other than an array): the result is reported, never lost
MALFORMED_RESULT = SMARTBUS_ERR_OTHER
#: how much of a malformed result the error log quotes
_LOG_QUOTE_CHARS = 200
#: project and flow ids, notification titles: at most this many bytes
#: (fields of 32 / 102 bytes with a NUL, NET.md)
MAX_ID_BYTES = 31
MAX_TITLE_BYTES = 101

_log = logging.getLogger("smartbus")


# ---- sending: launch_flow and notify ------------------------------------------

def encode_text(value: Union[str, bytes, bytearray, memoryview, None], name: str, max_bytes: int,
                required: bool = False) -> bytes:
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


def encode_json(value: Any, name: str) -> bytes:
    """JSON text in CP936 (characters CP936 lacks are \\u-escaped), at most
    MAX_FLOW_PARAM_BYTES bytes."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError("%s cannot be sent as JSON: %s" % (name, exc)) from None
    try:
        data = text.encode(TEXT_ENCODING)
    except UnicodeEncodeError:
        data = json.dumps(value, separators=(",", ":")).encode("ascii")
    if len(data) > MAX_FLOW_PARAM_BYTES:
        raise ValueError("%s is %d bytes as JSON, the limit is %d"
                         % (name, len(data), MAX_FLOW_PARAM_BYTES))
    return data


def invoke_args(server_unit_id: int, process_index: int, project_id: Union[str, bytes],
                flow_id: Union[str, bytes], mode: int, timeout: float,
                params: Union[list[Any], tuple[Any, ...], None]
                ) -> tuple[int, int, bytes, bytes, int, int, bytes]:
    """launch_flow's arguments, checked and encoded for NativeClient._invoke_flow."""
    project = encode_text(project_id, "project_id", MAX_ID_BYTES, required=True)
    flow = encode_text(flow_id, "flow_id", MAX_ID_BYTES, required=True)
    mode = check_int(mode, "mode", 0, 2)
    timeout_ms = seconds_to_ms(timeout, "timeout")
    if params is None:
        params = []
    if not isinstance(params, (list, tuple)):
        raise TypeError("params must be a list, not %s" % type(params).__name__)
    data = encode_json(list(params), "params")
    return (check_int(server_unit_id, "server_unit_id"),
            check_int(process_index, "process_index", 0, 255),
            project, flow, mode, timeout_ms, data)


def notify_args(server_unit_id: int, process_index: int, project_id: Union[str, bytes, None],
                title: Union[str, bytes], mode: int, expires: float, txt: Any
                ) -> tuple[int, int, bytes, bytes, int, int, bytes]:
    """notify's arguments, checked and encoded for NativeClient._notify: ``txt``
    is sent as CP936 text, or as JSON if it is not text."""
    project = encode_text(project_id, "project_id", MAX_ID_BYTES)
    title = encode_text(title, "title", MAX_TITLE_BYTES, required=True)
    mode = check_int(mode, "mode", 0, 255)
    expires_ms = seconds_to_ms(expires, "expires")
    if isinstance(txt, (str, bytes, bytearray, memoryview)):
        data = encode_text(txt, "txt", MAX_FLOW_PARAM_BYTES, required=True)
    else:
        data = encode_json(txt, "txt")
    return (check_int(server_unit_id, "server_unit_id"),
            check_int(process_index, "process_index", 0, 255),
            project, title, mode, expires_ms, data)


# ---- receiving -----------------------------------------------------------------

def decode_text(raw: bytes) -> str:
    """Text received from IPSC (undecodable bytes replaced)."""
    return raw.decode(TEXT_ENCODING, "replace")


def json_array(text: str) -> list[Any]:
    """The list that JSON text from a flow holds; empty text means no values
    ([]).  Raises ValueError if the text is not JSON, nests too deep for
    the decoder, or holds another value than an array."""
    if not text.strip():
        return []
    try:
        values = json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deep to decode") from None
    if not isinstance(values, list):
        raise ValueError("a JSON %s" % type(values).__name__)
    return values


def result_values(raw: bytes) -> list[Any]:
    """The list a flow result's bytes hold: ValueError saying what is wrong
    when they are not a JSON array in CP936 (see json_array)."""
    try:
        text = raw.decode(TEXT_ENCODING)
    except UnicodeDecodeError as exc:
        raise ValueError("not %s text (%s)" % (TEXT_ENCODING, exc.reason)) from None
    return json_array(text)


def flow_event_handler(client: ClientAPI, is_result: bool, head: Optional[Head], project: Any,
                       invoke_id: int, code: int, text: Any
                       ) -> tuple[Callable[..., None], tuple[Any, ...]]:
    """``(handler, args)``: the handler of ``client`` that a flow ack
    (``is_result`` False) or flow result event runs, and its arguments.
    ``project`` and ``text`` are the event's bytes; ``head`` is a Head, or
    None when the SDK reports a timeout of its own.  A result whose text is
    malformed runs on_flow_error with MALFORMED_RESULT."""
    project = decode_text(project)
    if is_result and code == FLOW_OK:
        try:
            params = result_values(text)
        except ValueError as exc:
            _log.error("flow %s invoke %d: malformed result (%s): %r%s", project, invoke_id, exc,
                       text[:_LOG_QUOTE_CHARS], "..." if len(text) > _LOG_QUOTE_CHARS else "")
            return client.on_flow_error, (head, project, invoke_id, MALFORMED_RESULT)
        return client.on_flow_resp, (head, project, invoke_id, params)
    text = decode_text(text)
    if not is_result:
        return client.on_flow_ack, (head, project, invoke_id, code, text)
    if code == SMARTBUS_ERR_TIMEOUT:
        return client.on_flow_timeout, (head, project, invoke_id)
    if text:
        _log.warning("flow %s invoke %d failed (%d): %s", project, invoke_id, code, text)
    return client.on_flow_error, (head, project, invoke_id, code)


# ---- serving (smartbus.ipsc) ------------------------------------------------------

def check_flow_id(value: str, name: str) -> str:
    """A project or flow id for FlowServer: a str of 1..MAX_ID_BYTES bytes in CP936."""
    if not isinstance(value, str):
        raise TypeError("%s must be a str, not %s" % (name, type(value).__name__))
    try:
        n = len(value.encode(TEXT_ENCODING))
    except UnicodeEncodeError as exc:
        raise ValueError("%s cannot be encoded in %s: %s" % (name, TEXT_ENCODING, exc)) from None
    if not 0 < n <= MAX_ID_BYTES:
        raise ValueError("%s must be 1..%d bytes in %s, got %d"
                         % (name, MAX_ID_BYTES, TEXT_ENCODING, n))
    return value


def invoke_params(raw: bytes) -> list[Any]:
    """The parameters of a received flow invoke: a list (ValueError if the
    bytes are not a JSON array, see json_array)."""
    return json_array(decode_text(raw))


def encode_result(mode: int, values: Union[list[Any], tuple[Any, ...]]) -> Optional[bytes]:
    """The flow result to send for what a flow handler returned (a list or
    tuple, else TypeError), or None for a mode that returns no result."""
    if not isinstance(values, (list, tuple)):
        raise TypeError("flow handler returned %s, not a list" % type(values).__name__)
    return encode_json(list(values), "flow result") if mode != FLOW_MODE_NO_RESULT else None


def encode_message(text: Union[str, bytes]) -> bytes:
    """A flow ack's message (str, or bytes as they are) in CP936."""
    return text.encode(TEXT_ENCODING, "replace") if isinstance(text, str) else text
