"""on_data_batch(self, batch), an extension beyond the old API: a client
class that defines it gets its data as lists of (head, data) in arrival
order, one call per burst, and no on_data calls; other events keep their
place between batches; an exception is logged and the next batch still
comes; with an event_executor each batch is one task there.  A NET client
of this process sends to an IPC client of this process through the router."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from smartbus import ipc
from smartbus.head import Head

from helpers import TEST_UNIT, recording, wait_for

RECEIVER = (0, 20, 3)          # the IPC client's address: the router's unit


class BatchReceiver(recording(ipc.Client)):
    """Records each batch as a "batch" event (on_data stays defined, as
    Recording's, and must not be called)."""

    def on_data_batch(self, batch):
        self.log.add("batch", batch, threading.current_thread().name)

    def payloads(self):
        return [d for batch, _ in self.log.of("batch") for _, d in batch]


def payload(i):
    """Message i: its number, then i % 300 filler bytes (sizes 4..303, and 0 for i=0)."""
    return b"" if i == 0 else i.to_bytes(4, "big") + bytes([i % 251]) * (i % 300)


@pytest.fixture
def sender(router, net_client):
    """Our NET client 7 (unit TEST_UNIT), registered."""
    return net_client(7, router.port)


def send(sender, first, count):
    datas = [payload(i) for i in range(first, first + count)]
    assert sender.send_many(9, 3, *RECEIVER, datas) == count


def test_batches_bring_every_message_in_order(router, sender, ipc_client):
    r = ipc_client(RECEIVER[1], router.ipc_path, cls=BatchReceiver)
    send(sender, 0, 3000)
    assert wait_for(lambda: len(r.payloads()) >= 3000, 20), len(r.payloads())
    batches = [b for b, _ in r.log.of("batch")]
    assert r.payloads() == [payload(i) for i in range(3000)]
    assert all(type(b) is list and 0 < len(b) <= 256 for b in batches)
    # one call per burst: 3000 messages sent in one go come in far fewer calls
    assert len(batches) <= 3000 // 10, len(batches)
    head, data = batches[-1][-1]
    assert type(head) is Head and type(data) is bytes
    assert (head.cmd, head.cmd_type, head.src_unit_id, head.src_unit_client_id,
            head.data_length) == (9, 3, TEST_UNIT, 7, len(data))
    assert r.log.of("data") == []           # on_data is not called


def test_pings_are_answered_and_their_answers_batched(router, sender, ipc_client):
    r = ipc_client(RECEIVER[1], router.ipc_path, cls=BatchReceiver)
    r.ping(TEST_UNIT, 7, 11, b"are you there")
    # the NET sender (on_data) gets the answer; the IPC client's own batch
    # handler gets the answer to its ping: the SDK answers pings itself
    assert wait_for(lambda: r.payloads() == [b"are you there"], 5), r.log.timed()
    head = r.log.of("batch")[0][0][0][0]
    assert (head.cmd, head.src_unit_id, head.src_unit_client_id) == (8, TEST_UNIT, 7)


def test_other_events_keep_their_place(router, sender, ipc_client, net_client):
    """The first batch blocks its callback thread while 50 messages, a
    global connect event and 50 more pile up in the SDK's sink: once
    released, they come as data, the event, data, in that order."""
    release = threading.Event()

    class Blocking(BatchReceiver):
        def on_data_batch(self, batch):
            super().on_data_batch(batch)
            release.wait(20)

    r = ipc_client(RECEIVER[1], router.ipc_path, cls=Blocking)
    try:
        send(sender, 0, 1)
        assert wait_for(lambda: r.log.of("batch"), 5)
        send(sender, 1, 50)
        assert wait_for(lambda: r.stats()["recv_msgs"] == 51, 5), r.stats()
        net_client(8, router.port)            # its arrival: a global event to r
        send(sender, 51, 50)
        assert wait_for(lambda: r.stats()["recv_msgs"] == 101, 5), r.stats()
    finally:
        release.set()
    assert wait_for(lambda: len(r.payloads()) == 101, 10)
    # (the receiver heard of client 7 when it registered: not this one)
    arrival = [(k, a) for _, k, a in r.log.timed()
               if k == "batch" or (k == "global" and a[:3] == (TEST_UNIT, 8, 11))]
    kinds = [k for k, _ in arrival]
    g = kinds.index("global")
    before = [d for k, a in arrival[:g] if k == "batch" for _, d in a[0]]
    after = [d for k, a in arrival[g + 1:] if k == "batch" for _, d in a[0]]
    assert before == [payload(i) for i in range(51)]
    assert after == [payload(i) for i in range(51, 101)]
    assert kinds[g + 1:].count("global") == 0


def test_an_exception_is_logged_and_the_next_batch_comes(router, sender, ipc_client, caplog):
    class Failing(BatchReceiver):
        def on_data_batch(self, batch):
            super().on_data_batch(batch)
            raise ValueError("boom in batch handler")

    r = ipc_client(RECEIVER[1], router.ipc_path, cls=Failing)
    with caplog.at_level("ERROR", logger="smartbus"):
        send(sender, 0, 1)
        assert wait_for(lambda: len(r.payloads()) == 1, 5)
        send(sender, 1, 1)
        assert wait_for(lambda: len(r.payloads()) == 2, 5)
        assert wait_for(lambda: sum("boom in batch handler" in (rec.exc_text or "")
                                    for rec in caplog.records) == 2, 5)
    assert r.payloads() == [payload(0), payload(1)]


def test_an_event_executor_runs_each_batch_as_one_task(router, sender, ipc_client):
    with ThreadPoolExecutor(1, thread_name_prefix="batchpool") as pool:
        r = ipc_client(RECEIVER[1], router.ipc_path, cls=BatchReceiver, event_executor=pool)
        send(sender, 0, 2000)
        assert wait_for(lambda: len(r.payloads()) >= 2000, 20)
        assert r.payloads() == [payload(i) for i in range(2000)]
        threads = {t for _, t in r.log.of("batch")}
        assert threads and all(t.startswith("batchpool") for t in threads), threads
        assert len(r.log.of("batch")) <= 200
        r.dispose()


def test_without_it_on_data_gets_each_message(router, sender, ipc_client):
    r = ipc_client(RECEIVER[1], router.ipc_path)
    send(sender, 0, 300)
    assert wait_for(lambda: len(r.received()) == 300, 10)
    assert [d for _, d in r.received()] == [payload(i) for i in range(300)]
