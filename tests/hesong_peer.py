"""The Hesong NET client library (``libbusnetcli.so`` from the test-only
package hesong-ipsc-busnetcli, build C 1.0.1.0465) in a process of its own,
driven by the interop tests (tests/interop).

The library keeps process-global state, floods heartbeats and is not safe to
release, so each Hesong client lives in its own process, which ends with
``os._exit``.  It is driven through ctypes with declarations written here
(not Hesong's own Python wrapper, whose head structure and callback wiring
are wrong: NET.md §12, API.md).

Protocol (the loop is peer.serve): one JSON command per line on stdin, one
JSON answer per line on the process's *original* stdout.  File descriptor 1
is redirected to stderr before the library is loaded, because build C
prints its trace to stdout when no trace callback is set.

    {"op": "init", "lib": PATH, "unit": 20, "client_id": 5, "client_type": 11,
     "host": "127.0.0.1", "port": P, "user": "", "password": "", "info": "..."}
    {"op": "send", "cmd": 5, "cmd_type": 3, "dst": [unit, client, type], "data": HEX}
    {"op": "ping", "dst": [unit, client, type], "data": HEX}
    {"op": "events"}       # events since the previous "events" call
    {"op": "trace"}        # the last trace lines of the library
    {"op": "quit"}         # answers, then os._exit(0) without Release

Events: ["connect", clientid, ap_unit, ack, t], ["disconnect", clientid, t],
["recv", clientid, head, data_hex, size, t] (head: dict of the 20 bytes as
received), ["global", unit, client, type, ap_unit, status, info, t],
["flow_ret", clientid, invoke_id, ret, param, t].  ``t`` is
time.monotonic() in this process.
"""

import collections
import ctypes
import os
import struct
import sys
import threading
import time

from peer import serve

# ---- our own declarations of the Hesong C API (NET.md, API.md) -----------------

# callbacks (cdecl); char arguments of the global-connect callback are signed
CONNECTION_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_ubyte, ctypes.c_int,
                                 ctypes.c_int)
RECV_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_ubyte, ctypes.c_void_p,
                           ctypes.c_void_p, ctypes.c_int)
DISCONNECT_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_ubyte)
FLOW_RET_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_ubyte, ctypes.c_void_p,
                               ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_char_p)
GLOBAL_CONNECT_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_byte, ctypes.c_byte,
                                     ctypes.c_byte, ctypes.c_byte, ctypes.c_byte,
                                     ctypes.c_char_p)
TRACE_CB = ctypes.CFUNCTYPE(None, ctypes.c_char_p)

HEAD = struct.Struct("<HBBBBBBBB2sii")        # the packed 20-byte head, two int32 sizes


def declare(lib):
    """Argument and result types of the entry points the tests use."""
    lib.SmartBusNetCli_Init.argtypes = [ctypes.c_ubyte]
    lib.SmartBusNetCli_Init.restype = ctypes.c_int
    lib.SmartBusNetCli_SetCallBackFn.argtypes = [CONNECTION_CB, RECV_CB, DISCONNECT_CB,
                                                 FLOW_RET_CB, GLOBAL_CONNECT_CB,
                                                 ctypes.c_void_p]
    lib.SmartBusNetCli_SetCallBackFn.restype = None
    lib.SmartBusNetCli_SetTraceStr.argtypes = [TRACE_CB, TRACE_CB]
    lib.SmartBusNetCli_SetTraceStr.restype = None
    lib.SmartBusNetCli_CreateConnect.argtypes = [
        ctypes.c_ubyte, ctypes.c_int, ctypes.c_char_p, ctypes.c_ushort, ctypes.c_char_p,
        ctypes.c_ushort, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.SmartBusNetCli_CreateConnect.restype = ctypes.c_int
    lib.SmartBusNetCli_SendData.argtypes = [
        ctypes.c_ubyte, ctypes.c_ubyte, ctypes.c_ubyte, ctypes.c_int, ctypes.c_int,
        ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    lib.SmartBusNetCli_SendData.restype = ctypes.c_int
    lib.SmartBusNetCli_SendPing.argtypes = [
        ctypes.c_ubyte, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
        ctypes.c_int]
    lib.SmartBusNetCli_SendPing.restype = ctypes.c_int


def head_dict(raw):
    (flag, cmd, cmdtype, src_type, src_unit, src_client, dst_type, dst_unit, dst_client,
     _reserved, packet_size, datalen) = HEAD.unpack(raw)
    return {"flag": flag, "cmd": cmd, "cmdtype": cmdtype, "src_type": src_type,
            "src_unit": src_unit, "src_client": src_client, "dst_type": dst_type,
            "dst_unit": dst_unit, "dst_client": dst_client, "packet_size": packet_size,
            "datalen": datalen}


def c_payload(data):
    """A buffer for SendData/SendPing: never NULL, since build C crashes on
    NULL even for size 0 (NET.md §12 item 2).  It is NUL-terminated one byte
    past the payload, but that cannot stop build C from reading past its own
    heap copy of the packet when it copies the payload as a C string for its
    trace (harmless without a sanitizer; see docs/protocol-notes.md)."""
    return ctypes.create_string_buffer(data, len(data) + 1)


class HesongPeer:
    def __init__(self):
        self.lib = None
        self.lock = threading.Lock()
        self.events = []
        self.trace = collections.deque(maxlen=200)
        self.client_id = None
        self.keep = []                      # the ctypes callbacks must stay alive

    def record(self, *ev):
        with self.lock:
            self.events.append(list(ev) + [time.monotonic()])

    # callbacks (library threads; ctypes takes the GIL)
    def on_connection(self, arg, clientid, ap_unit, ack):
        self.record("connect", clientid, ap_unit, ack)

    def on_recv(self, arg, clientid, head, data, size):
        raw = ctypes.string_at(head, HEAD.size)
        payload = ctypes.string_at(data, size) if data and size > 0 else b""
        self.record("recv", clientid, head_dict(raw), payload.hex(), size)

    def on_disconnect(self, arg, clientid):
        self.record("disconnect", clientid)

    def on_flow_ret(self, arg, clientid, head, project, invoke_id, ret, param):
        self.record("flow_ret", clientid, invoke_id, ret, (param or b"").decode("latin-1"))

    def on_global(self, arg, unit, client, ctype, ap_unit, status, info):
        self.record("global", unit, client, ctype, ap_unit, status,
                    (info or b"").decode("latin-1"))

    def on_trace(self, text):
        self.trace.append((text or b"").decode("latin-1"))

    def on_trace_err(self, text):
        self.trace.append("ERR " + (text or b"").decode("latin-1"))

    def init(self, cmd):
        lib = ctypes.CDLL(cmd["lib"])
        declare(lib)
        cbs = [TRACE_CB(self.on_trace), TRACE_CB(self.on_trace_err)]
        lib.SmartBusNetCli_SetTraceStr(*cbs)
        rc_init = lib.SmartBusNetCli_Init(cmd["unit"])
        fns = [CONNECTION_CB(self.on_connection), RECV_CB(self.on_recv),
               DISCONNECT_CB(self.on_disconnect), FLOW_RET_CB(self.on_flow_ret),
               GLOBAL_CONNECT_CB(self.on_global)]
        self.keep += cbs + fns
        lib.SmartBusNetCli_SetCallBackFn(*fns, None)
        self.lib = lib
        self.client_id = cmd.get("client_id", 5)

        def text(key):
            value = cmd.get(key)
            return value.encode() if value else None

        rc_conn = lib.SmartBusNetCli_CreateConnect(
            self.client_id, cmd.get("client_type", 11), cmd.get("host", "127.0.0.1").encode(),
            cmd["port"], None, 0xFFFF, text("user"), text("password"), text("info"))
        return {"ok": rc_init == 0 and rc_conn == 0, "init": rc_init, "create": rc_conn}

    def handle(self, cmd):
        op = cmd["op"]
        if op == "init":
            return self.init(cmd)
        if op == "send":
            unit, client, ctype = cmd["dst"]
            data = bytes.fromhex(cmd.get("data", ""))
            rc = self.lib.SmartBusNetCli_SendData(self.client_id, cmd["cmd"], cmd["cmd_type"],
                                                  unit, client, ctype, c_payload(data),
                                                  len(data))
            return {"ok": rc == 0, "rc": rc}
        if op == "ping":
            unit, client, ctype = cmd["dst"]
            data = bytes.fromhex(cmd.get("data", ""))
            rc = self.lib.SmartBusNetCli_SendPing(self.client_id, unit, client, ctype,
                                                  c_payload(data), len(data))
            return {"ok": rc == 0, "rc": rc}
        if op == "events":
            with self.lock:
                events, self.events = self.events, []
            return {"ok": True, "events": events, "now": time.monotonic()}
        if op == "trace":
            return {"ok": True, "trace": list(self.trace)}
        if op == "quit":
            return {"ok": True}
        return {"ok": False, "error": "unknown op %r" % op}


def main():
    # answers go to the original stdout; fd 1 (the library's printf) to stderr
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(HesongPeer().handle, out)
    # Release is not called: the library may crash in it (NET.md §12)
    out.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
