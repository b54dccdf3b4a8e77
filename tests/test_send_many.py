"""Client.send_many(cmd, cmd_type, unit, client, type, payloads), an
extension beyond the old API: a batch of bytes payloads to one destination
in one native call.  Every payload arrives, in order; a refusal after the
first stops the batch and the count says how many went; a refusal of the
first raises; the items must be bytes; cmd, types and destination are
checked like send_data's; a closed client raises."""

import pytest

from smartbus.errors import SmartBusError

from helpers import TEST_UNIT, start_net_peer, wait_for


@pytest.fixture
def sender(router, net_client):
    """Our NET client 7 (unit TEST_UNIT), registered."""
    return net_client(7, router.port)


def test_a_batch_arrives_whole_and_in_order(router, sender, ipc_client, peers):
    p = start_net_peer(peers, router, 16)
    batch = [b"", b"a", bytes(range(256)) * 40, b"last"]
    assert sender.send_many(9, 3, 16, 1, 11, batch) == 4
    assert sender.send_many(9, 3, 16, 1, 11, (b"tuple",)) == 1
    assert sender.send_many(9, 3, 16, 1, 11, (b"gen%d" % i for i in range(2))) == 2
    assert sender.send_many(9, 3, 16, 1, 11, []) == 0
    # the IPC client has it too
    assert ipc_client(5, router.ipc_path).send_many(8, 3, 16, 1, 11, [b"ipc1", b"ipc2"]) == 2
    got = p.received(9)
    assert [bytes.fromhex(d[5]) for d in got[:7]] == batch + [b"tuple", b"gen0", b"gen1"]
    assert all(d[:5] == [9, 3, TEST_UNIT, 7, len(bytes.fromhex(d[5]))] for d in got[:7])
    assert [d[:4] + [bytes.fromhex(d[5])] for d in got[7:]] == [[8, 3, 0, 5, b"ipc1"],
                                                               [8, 3, 0, 5, b"ipc2"]]


def test_a_full_queue_cuts_the_batch(router, sender):
    # the send queue holds a bounded number of messages: far fewer than this
    batch = [b""] * 150000
    done = sender.send_many(1, 3, 16, 1, 11, batch)
    assert 0 < done < len(batch)
    # exactly those went (to nobody: the router counts them)
    assert wait_for(lambda: router.stats()["dropped_no_route"] == done, 10), router.stats()
    assert sender.send_many(1, 3, 16, 1, 11, [b"again"]) == 1


def test_the_byte_bound_cuts_a_batch_too(router, sender):
    """The queue's byte bound (64 MiB) applies within a batch as between
    send_data calls: of 70 payloads of 1 MiB, those that fit in 64 MiB
    with their heads (and room for padding) go, the rest are refused."""
    mib = bytes(1 << 20)
    assert sender.send_many(1, 3, 16, 1, 11, [mib] * 70) == (64 << 20) // ((1 << 20) + 20 + 3)


def test_a_refused_first_payload_raises(net_client):
    unregistered = net_client(8, 1, activate=False)          # nothing listens on port 1
    with pytest.raises(SmartBusError) as info:
        unregistered.send_many(1, 3, 16, 1, 11, [b"x", b"y"])
    assert info.value.code == -2


def test_items_must_be_bytes_and_nothing_goes_otherwise(router, sender, peers):
    p = start_net_peer(peers, router, 16)
    for batch, message in [([b"ok", "text", b"ok"], "item 1 must be bytes, not str"),
                           ([b"ok", bytearray(b"ba")], "item 1 must be bytes, not bytearray"),
                           ([memoryview(b"mv")], "item 0 must be bytes, not memoryview"),
                           (b"abc", "item 0 must be bytes, not int"),
                           ([None], "item 0 must be bytes, not NoneType")]:
        with pytest.raises(TypeError, match=message):
            sender.send_many(1, 3, 16, 1, 11, batch)
    with pytest.raises(TypeError):
        sender.send_many(1, 3, 16, 1, 11, None)
    # none of those batches sent anything: the marker is the first to arrive
    sender.send_many(2, 3, 16, 1, 11, [b"marker"])
    assert p.received(1) == [[2, 3, TEST_UNIT, 7, 6, b"marker".hex()]]


def test_arguments_are_checked_like_send_data(sender):
    for args, message in [((256, 3, 16, 1, 11), "cmd must be in 0..255"),
                          ((1, -1, 16, 1, 11), "cmd_type must be in 0..255"),
                          ((1, 3, 16, 300, 11), "dst_client_id must be in 0..255"),
                          ((1, 3, 16, 1, 256), "dst_client_type must be in 0..255")]:
        with pytest.raises(ValueError, match=message):
            sender.send_many(*args, [b"x"])
    for args, code in [((1, 3, 48, 1, 11), -12),              # unit > 47
                       ((1, 3, -1, 1, 11), -12),
                       ((1, 0, 16, 1, 11), -16),              # cmd_type 0 is the bus's own
                       ((1, 3, TEST_UNIT, 2, 11), -11)]:      # its own unit
        with pytest.raises(SmartBusError) as info:
            sender.send_many(*args, [b"x"])
        assert info.value.code == code, args
    with pytest.raises(TypeError):
        sender.send_many("1", 3, 16, 1, 11, [b"x"])


def test_a_closed_client_raises(sender):
    sender.dispose()
    with pytest.raises(RuntimeError, match="closed"):
        sender.send_many(1, 3, 16, 1, 11, [b"x"])


def outcome(call, *args):
    """What a call did: ("returned", value) or (exception name, code or text)."""
    try:
        return "returned", call(*args)
    except SmartBusError as exc:
        return "SmartBusError", exc.code
    except Exception as exc:
        return type(exc).__name__, str(exc)


def test_an_empty_batch_is_checked_like_any_other(sender):
    bad = [(1, 3, 48, 1, 11), (1, 0, 16, 1, 11), (1, 3, TEST_UNIT, 2, 11)]
    one_item = [outcome(sender.send_many, *args, [b"x"]) for args in bad]
    assert one_item == [("SmartBusError", -12), ("SmartBusError", -16), ("SmartBusError", -11)]
    empty = [outcome(sender.send_many, *args, []) for args in bad]
    sender.dispose()
    empty.append(outcome(sender.send_many, 1, 3, 16, 1, 11, []))
    assert empty == one_item + [("RuntimeError", "the client is closed")]
