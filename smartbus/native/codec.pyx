# Part of smartbus._native: the wire codec (wire.c) as Python dicts.
# decode_packet / encode_packet serve tests and tools; decode_invoke /
# decode_notify read the payload of a flow invoke / notification that the
# SDK delivered (smartbus.ipsc, the flow server).

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, uint8_t
from libc.string cimport memcpy, memset

_REG_LAYOUTS = {SBW_REG_NET_A: "net_a", SBW_REG_NET_C: "net_c", SBW_REG_IPC: "ipc"}
_REG_LAYOUT_IDS = {v: k for k, v in _REG_LAYOUTS.items()}
_SYS_KINDS = {SMARTBUS_SYSCMD_PING: "ping", SMARTBUS_SYSCMD_PING_ACK: "ping_ack",
              SMARTBUS_SYSCMD_GLOBAL_CONNECT: "global",
              SMARTBUS_SYSCMD_GLOBAL_CONNECT_ANSWER: "global",
              SMARTBUS_SYSCMD_INVOKE_FLOW: "invoke", SMARTBUS_SYSCMD_FLOW_RESULT: "flow_result",
              SMARTBUS_SYSCMD_FLOW_ACK: "flow_ack", SMARTBUS_SYSCMD_NOTIFY: "notify"}
_DECODE_ERRORS = {SBW_ESHORT: "truncated packet", SBW_EFLAG: "bad head flag",
                  SBW_ESIZE: "bad sizes", SBW_EFORMAT: "bad layout"}


cdef dict _head_dict(const sbw_head *h):
    return {"cmd": h.cmd, "cmdtype": h.cmdtype, "src_type": h.src_type, "src_unit": h.src_unit,
            "src_client": h.src_client, "dst_type": h.dst_type, "dst_unit": h.dst_unit,
            "dst_client": h.dst_client,
            "reserved": PyBytes_FromStringAndSize(<const char *>h.reserved, 2),
            "packet_size": h.packet_size, "datalen": h.datalen}


cdef void _head_from(sbw_head *h, dict d) except *:
    memset(h, 0, sizeof(sbw_head))
    h.cmd = d.get("cmd", 0)
    h.cmdtype = d.get("cmdtype", 0)
    h.src_type = d.get("src_type", 0)
    h.src_unit = d.get("src_unit", 0)
    h.src_client = d.get("src_client", 0)
    h.dst_type = d.get("dst_type", 0)
    h.dst_unit = d.get("dst_unit", 0)
    h.dst_client = d.get("dst_client", 0)
    r = d.get("reserved", b"\0\0")
    h.reserved[0] = r[0]
    h.reserved[1] = r[1]


cdef dict _invoke_fields(const uint8_t *p, size_t n):
    cdef sbw_invoke inv
    if sbw_get_invoke(p, n, &inv) != SBW_OK:
        raise ValueError("bad flow invoke payload")
    return dict(project_id=inv.project, flow_id=inv.flow, mode=inv.mode, channel=inv.channel,
                invoke_id=inv.invoke_id,
                params=PyBytes_FromStringAndSize(inv.params, inv.params_len))


cdef dict _notify_fields(const uint8_t *p, size_t n):
    cdef sbw_notify nt
    if sbw_get_notify(p, n, &nt) != SBW_OK:
        raise ValueError("bad notify payload")
    return dict(project_id=nt.project, mode=nt.mode, notify_id=nt.notify_id,
                expires=nt.expires, title=nt.title,
                params=PyBytes_FromStringAndSize(nt.params, nt.params_len))


def decode_invoke(bytes payload not None):
    """The fields of a flow invoke's payload (cmd 11): ``project_id``,
    ``flow_id``, ``params`` (bytes), ``mode``, ``channel``, ``invoke_id``.
    Raises ValueError for a malformed payload."""
    return _invoke_fields(<const uint8_t *>PyBytes_AS_STRING(payload), len(payload))


def decode_notify(bytes payload not None):
    """The fields of a notification's payload (cmd 15): ``project_id``,
    ``title``, ``params`` (bytes), ``mode``, ``notify_id``, ``expires`` (ms).
    Raises ValueError for a malformed payload."""
    return _notify_fields(<const uint8_t *>PyBytes_AS_STRING(payload), len(payload))


def decode_packet(data):
    """Decodes one whole packet into a dict: the head fields (cmd, cmdtype,
    src_type, src_unit, src_client, dst_type, dst_unit, dst_client, reserved,
    packet_size, datalen), ``pad``, ``payload``, ``kind`` and the fields of
    that kind.  Raises ValueError for a malformed packet."""
    cdef const uint8_t[::1] mv
    cdef sbw_head h
    cdef sbw_register reg
    cdef sbw_heartbeat hb
    cdef sbw_global g
    cdef sbw_flow_reply fr
    cdef int ap = 0, rc
    cdef int32_t result = 0
    raw = bytes(data)
    mv = raw
    n = len(raw)
    if n == 0:
        raise ValueError("empty packet")
    rc = sbw_get_head(&mv[0], n, &h)
    if rc != SBW_OK:
        raise ValueError(_DECODE_ERRORS.get(rc, "malformed packet"))
    if h.packet_size > n:
        raise ValueError("truncated packet: %d of %d bytes" % (n, h.packet_size))
    d = _head_dict(&h)
    d["pad"] = h.packet_size - SBW_HEAD_SIZE - h.datalen
    payload = raw[SBW_HEAD_SIZE:SBW_HEAD_SIZE + h.datalen]
    d["payload"] = payload
    cdef const uint8_t *p = &mv[0] + SBW_HEAD_SIZE
    cdef size_t plen = h.datalen
    kind = "data"
    if h.cmdtype == SMARTBUS_CMDTYPE_INTERNAL:
        kind = "internal"
        if h.cmd == SMARTBUS_CMD_REGISTER:
            rc = sbw_get_register(&mv[0], n, &reg)
            if rc != SBW_OK:
                raise ValueError(_DECODE_ERRORS.get(rc, "bad registration"))
            kind = "register"
            d.update(layout=_REG_LAYOUTS[reg.layout], client_type=reg.client_type,
                     unit_id=reg.unit_id, client_id=reg.client_id, conn_index=reg.conn_index,
                     user=reg.user, password=reg.password, info=reg.info,
                     version=reg.version, pid=reg.pid, ap_unit=reg.ap_unit)
        elif h.cmd == SMARTBUS_CMD_REGISTER_ACK:
            rc = sbw_get_register_ack(&mv[0], n, &ap, &result)
            if rc != SBW_OK:
                raise ValueError("bad registration ack")
            kind = "register_ack"
            d.update(ap_unit=ap, result=result, node_size=h.datalen - 4)
        elif h.cmd == SMARTBUS_CMD_HEARTBEAT or h.cmd == SMARTBUS_CMD_HEARTBEAT_ACK:
            rc = sbw_get_heartbeat(&mv[0], n, &hb)
            if rc != SBW_OK:
                raise ValueError("bad heartbeat")
            kind = "heartbeat" if h.cmd == SMARTBUS_CMD_HEARTBEAT else "heartbeat_ack"
            d.update(layout="old" if hb.layout == SBW_HB_OLD else "new", counter=hb.counter,
                     resend=hb.resend, send_time=hb.send_time, return_time=hb.return_time)
    elif h.cmdtype == SMARTBUS_CMDTYPE_SYSTEM and h.cmd in _SYS_KINDS:
        kind = _SYS_KINDS[h.cmd]
        if kind == "global":
            if sbw_get_global(p, plen, &g) != SBW_OK:
                raise ValueError("global connect payload must be %d bytes, got %d"
                                 % (SBW_GLOBAL_PAYLOAD, plen))
            d.update(unit_id=g.unit_id, client_id=g.client_id, client_type=g.client_type,
                     ap_unit=g.ap_unit, status=g.status, info=g.info,
                     inner=_head_dict(&g.inner))
        elif kind == "invoke":
            d.update(_invoke_fields(p, plen))
        elif kind == "flow_ack" or kind == "flow_result":
            if kind == "flow_ack":
                rc = sbw_get_flow_ack(p, plen, &fr)
            else:
                rc = sbw_get_flow_result(p, plen, &fr)
            if rc != SBW_OK:
                raise ValueError("bad %s payload" % kind)
            d.update(project_id=fr.project, invoke_id=fr.invoke_id, channel=fr.channel,
                     code=fr.code, text=PyBytes_FromStringAndSize(fr.text, fr.text_len))
        elif kind == "notify":
            d.update(_notify_fields(p, plen))
    d["kind"] = kind
    return d


cdef inline void _put_cstr(char *dst, size_t size, s) except *:
    b = s if isinstance(s, bytes) else str(s).encode("utf-8")
    cdef Py_ssize_t n = min(len(b), <Py_ssize_t>size - 1)
    memcpy(dst, <const char *>b, n)
    dst[n] = 0


def encode_packet(dict d):
    """Encodes a packet from a dict shaped like decode_packet's result
    (``kind`` picks the layout; undefined bytes are written as zeros; a
    non-zero ``pad`` selects the client padding rule)."""
    cdef sbw_head h
    cdef sbw_register reg
    cdef sbw_heartbeat hb
    cdef sbw_global g
    cdef sbw_invoke inv
    cdef sbw_flow_reply fr
    cdef sbw_notify nt
    cdef int n
    kind = d.get("kind", "data")
    _head_from(&h, d)
    cdef sbw_padding padding = SBW_PAD_CLIENT if d.get("pad", 0) else SBW_PAD_NONE  # any: client rule
    payload = d.get("payload", b"") or b""
    cdef Py_ssize_t cap = SBW_HEAD_SIZE + 8192 + len(payload) + len(d.get("params", b"")) \
        + len(d.get("text", b""))
    out = PyBytes_FromStringAndSize(NULL, cap)
    cdef uint8_t *o = <uint8_t *>PyBytes_AS_STRING(out)
    if kind == "register":
        memset(&reg, 0, sizeof(reg))
        reg.layout = _REG_LAYOUT_IDS[d["layout"]]
        reg.client_type = d["client_type"]
        reg.unit_id = d.get("unit_id", 0)
        reg.client_id = d["client_id"]
        reg.conn_index = d.get("conn_index", 0)
        _put_cstr(reg.user, sizeof(reg.user), d.get("user", b""))
        _put_cstr(reg.password, sizeof(reg.password), d.get("password", b""))
        _put_cstr(reg.info, sizeof(reg.info), d.get("info", b""))
        _put_cstr(reg.version, sizeof(reg.version), d.get("version", b""))
        reg.pid = d.get("pid", 0)
        reg.ap_unit = d.get("ap_unit", -1)
        n = sbw_put_register(o, cap, &reg)
    elif kind == "register_ack":
        h.src_unit = <uint8_t>(d.get("ap_unit", h.src_unit) & 0xFF)
        n = sbw_put_register_ack(o, cap, &h, d["result"], d.get("node_size", 0))
    elif kind == "heartbeat" or kind == "heartbeat_ack":
        hb.layout = SBW_HB_OLD if d.get("layout", "old") == "old" else SBW_HB_NEW
        hb.counter = d.get("counter", 0)
        hb.resend = d.get("resend", 0)
        hb.send_time = d.get("send_time", 0)
        hb.return_time = d.get("return_time", 0)
        n = sbw_put_heartbeat(o, cap, &h, &hb)
    elif kind == "global":
        memset(&g, 0, sizeof(g))
        _head_from(&g.inner, d.get("inner", {}))
        g.unit_id = d["unit_id"]
        g.client_id = d["client_id"]
        g.client_type = d["client_type"]
        g.ap_unit = d["ap_unit"]
        g.status = d["status"]
        _put_cstr(g.info, sizeof(g.info), d.get("info", b""))
        n = sbw_put_global(o, cap, &h, &g, padding)
    elif kind == "invoke":
        memset(&inv, 0, sizeof(inv))
        _put_cstr(inv.project, sizeof(inv.project), d["project_id"])
        _put_cstr(inv.flow, sizeof(inv.flow), d["flow_id"])
        inv.mode = d.get("mode", 0)
        inv.channel = d.get("channel", -1)
        inv.invoke_id = d["invoke_id"]
        params = d.get("params", b"")
        inv.params = params
        inv.params_len = len(params)
        n = sbw_put_invoke(o, cap, &h, &inv, padding)
    elif kind == "flow_ack" or kind == "flow_result":
        memset(&fr, 0, sizeof(fr))
        _put_cstr(fr.project, sizeof(fr.project), d.get("project_id", b""))
        fr.invoke_id = d["invoke_id"]
        fr.channel = d.get("channel", -1)
        fr.code = d.get("code", 1)
        text = d.get("text", b"")
        fr.text = text
        fr.text_len = len(text)
        if kind == "flow_ack":
            n = sbw_put_flow_ack(o, cap, &h, &fr, padding)
        else:
            n = sbw_put_flow_result(o, cap, &h, &fr, padding)
    elif kind == "notify":
        memset(&nt, 0, sizeof(nt))
        _put_cstr(nt.project, sizeof(nt.project), d.get("project_id", b""))
        nt.mode = d.get("mode", 0)
        nt.notify_id = d["notify_id"]
        nt.expires = d.get("expires", 0)
        _put_cstr(nt.title, sizeof(nt.title), d.get("title", b""))
        params = d.get("params", b"")
        nt.params = params
        nt.params_len = len(params)
        n = sbw_put_notify(o, cap, &h, &nt, padding)
    else:
        n = sbw_put_packet(o, cap, &h, <const char *>payload, len(payload), padding)
    if n < 0:
        raise ValueError("cannot encode %s packet (%d)" % (kind, n))
    return out[:n]
