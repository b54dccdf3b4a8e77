"""Properties of the codec that Python sees (smartbus._native, over wire.c),
checked by hypothesis: decoding arbitrary bytes returns a dict or raises
ValueError, nothing else (no crash, no other exception); what is encoded
decodes to the same fields; and encoding what was decoded is a fixed point
(encoding it, decoding and encoding again gives the same bytes).  The C
side is fuzzed too: fuzz/codec.c (.ci/fuzz)."""

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartbus import _native

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 255)
i32 = st.integers(-2 ** 31, 2 ** 31 - 1)
i64 = st.integers(-2 ** 63, 2 ** 63 - 1)
HEAD = struct.Struct("<HBBBBBBBBHii")


def text(max_bytes):
    """Bytes without NUL (C strings), at most ``max_bytes``."""
    return st.binary(max_size=max_bytes).map(lambda b: b.replace(b"\0", b"x"))


def heads(cmd=u8, cmdtype=u8):
    return st.fixed_dictionaries({
        "cmd": cmd, "cmdtype": cmdtype, "src_type": u8, "src_unit": u8, "src_client": u8,
        "dst_type": u8, "dst_unit": u8, "dst_client": u8, "reserved": st.binary(min_size=2,
                                                                                max_size=2)})


def with_head(fields, cmd, cmdtype):
    return st.tuples(heads(st.just(cmd), st.just(cmdtype)), st.fixed_dictionaries(fields)).map(
        lambda t: {**t[0], **t[1]})


PACKETS = st.one_of(
    # data: any cmd with a cmdtype that is neither internal (0) nor system (1)
    st.tuples(heads(u8, st.integers(2, 255)), st.binary(max_size=3000), st.booleans()).map(
        lambda t: {**t[0], "kind": "data", "payload": t[1], "pad": int(t[2])}),
    with_head({"kind": st.just("invoke"), "project_id": text(31), "flow_id": text(31),
               "mode": u8, "channel": i32, "invoke_id": i32, "params": text(2000)}, 11, 1),
    with_head({"kind": st.just("flow_ack"), "project_id": text(31), "invoke_id": i32,
               "channel": i32, "code": i32, "text": text(2000)}, 13, 1),
    with_head({"kind": st.just("flow_result"), "project_id": text(31), "invoke_id": i32,
               "channel": i32, "code": i32, "text": text(2000)}, 12, 1),
    with_head({"kind": st.just("notify"), "project_id": text(31), "title": text(101),
               "mode": u8, "notify_id": i32, "expires": i32, "params": text(2000)}, 15, 1),
    with_head({"kind": st.just("global"), "unit_id": u8, "client_id": u8, "client_type": u8,
               "ap_unit": u8, "status": u8, "info": text(255)}, 9, 1),
    with_head({"kind": st.just("heartbeat"), "layout": st.just("old"), "counter": i64,
               "resend": i64, "send_time": i64, "return_time": i64}, 5, 0),
    with_head({"kind": st.just("heartbeat"), "layout": st.just("new"), "counter": i32,
               "resend": i32, "send_time": i64, "return_time": i64}, 5, 0),
    # a registration's head is made from its fields (client type, unit, id)
    st.fixed_dictionaries({
        "kind": st.just("register"), "layout": st.sampled_from(["net_a", "net_c"]),
        "client_type": u8, "unit_id": u8, "client_id": u8, "user": text(63),
        "password": text(127), "info": text(255), "ap_unit": i32}),
)

#: what encode_packet derives itself (sizes, padding) or checks apart (a data payload)
DERIVED = {"pad", "payload"}


def decodes_or_value_error(fn, data):
    try:
        return fn(data)
    except ValueError:
        return None


@SETTINGS
@given(st.binary(max_size=7000))
def test_decoding_arbitrary_bytes_returns_a_dict_or_raises_value_error(data):
    for fn in (_native.decode_packet, _native.decode_invoke, _native.decode_notify):
        d = decodes_or_value_error(fn, data)
        assert d is None or isinstance(d, dict)


@SETTINGS
@given(heads(), st.binary(max_size=7000))
def test_decoding_bytes_behind_a_valid_head(head, body):
    """Bodies behind a well-formed head (the decoders' interesting side):
    every cmd and cmdtype, sizes right or wrong."""
    fields = [head[k] for k in ("cmd", "cmdtype", "src_type", "src_unit", "src_client",
                                "dst_type", "dst_unit", "dst_client")]
    for datalen in {len(body), len(body) // 2, max(0, len(body) - 1)}:
        pkt = HEAD.pack(0x5B15, *fields, 0, 20 + len(body), datalen) + body
        d = decodes_or_value_error(_native.decode_packet, pkt)
        if d is not None:
            assert d["datalen"] == datalen and d["payload"] == body[:datalen]


@SETTINGS
@given(PACKETS)
def test_what_is_encoded_decodes_to_the_same_fields(packet):
    d = _native.decode_packet(_native.encode_packet(packet))
    assert d["kind"] == packet["kind"]
    for key, value in packet.items():
        if key in DERIVED:
            continue
        assert d[key] == value, key
    if packet["kind"] == "data":
        assert d["payload"] == packet["payload"]
        assert d["pad"] == (len(packet["payload"]) % 4 if packet["pad"] else 0)


def encoded_again(data):
    return _native.encode_packet(_native.decode_packet(data))


@SETTINGS
@given(st.one_of(PACKETS.map(_native.encode_packet),
                 st.tuples(heads(), st.binary(max_size=3000)).map(
                     lambda t: HEAD.pack(0x5B15, *[t[0][k] for k in (
                         "cmd", "cmdtype", "src_type", "src_unit", "src_client", "dst_type",
                         "dst_unit", "dst_client")], 0, 20 + len(t[1]), len(t[1])) + t[1])))
def test_encoding_what_was_decoded_is_a_fixed_point(data):
    """encode(decode(x)) may normalise x (undefined bytes zeroed, fields cut
    to their size), once: doing it again changes nothing."""
    try:
        once = encoded_again(data)
    except ValueError:
        return                              # not a packet of its kind's layout
    assert encoded_again(once) == once
    assert _native.decode_packet(once)["kind"] == _native.decode_packet(data)["kind"]
