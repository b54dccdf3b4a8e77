"""``python -m smartbus.demo``: a SmartBus on this machine, in one process.

Starts the bundled router, connects a NET client (unit 20) and an IPC
client (attached at the router's unit 0), and shows them seeing each other
arrive, exchanging data and pinging each other; then a FlowServer stands in
for IPSC process 1 and the NET client launches a flow on it.  Prints what
happens.
"""

import os
import shutil
import sys
import tempfile
import threading
import time
from typing import Any, List, Optional

from smartbus import ipc, net
from smartbus.head import Head
from smartbus.ipsc import FlowServer
from smartbus.server import Server

CMD_TYPE_USER = 3
ALICE_UNIT = 20                   # the NET unit of this process (Client.initialize)
_print_lock = threading.Lock()


def say(who: str, text: str) -> None:
    with _print_lock:             # handlers of both clients print concurrently
        print("%-6s %s" % (who, text), flush=True)


class Alice(net.Client):
    """A NET client: TCP to the router."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connected = threading.Event()
        self.got = threading.Event()
        self.pinged = threading.Event()
        self.flow_done = threading.Event()

    def on_connect(self) -> None:
        # (unit_id is the access point's once registered, as in the old package)
        say("alice", "registered (NET unit %d, client %d), access point unit %s"
            % (ALICE_UNIT, self.client_id, self.access_unit_id))
        self.connected.set()

    def on_data(self, head: Head, data: bytes) -> None:
        if head.cmd == 8:        # a ping answer, sent by the peer's library
            say("alice", "ping answered by unit %d client %d: %r"
                % (head.src_unit_id, head.src_unit_client_id, data))
            self.pinged.set()
        else:
            say("alice", "got %r (cmd %d) from unit %d client %d"
                % (data, head.cmd, head.src_unit_id, head.src_unit_client_id))
            self.got.set()


    def on_flow_ack(self, head: Optional[Head], project_id: str, invoke_id: int,
                    status_code: int, msg: str) -> None:
        say("alice", "flow %s invoke %d acknowledged: %d %r"
            % (project_id, invoke_id, status_code, msg))

    def on_flow_resp(self, head: Optional[Head], project_id: str, invoke_id: int,
                     params: List[Any]) -> None:
        say("alice", "flow %s invoke %d returned %r" % (project_id, invoke_id, params))
        self.flow_done.set()

    def on_flow_timeout(self, head: Optional[Head], project_id: str, invoke_id: int) -> None:
        say("alice", "flow %s invoke %d timed out" % (project_id, invoke_id))

    def on_flow_error(self, head: Optional[Head], project_id: str, invoke_id: int,
                      error_code: int) -> None:
        say("alice", "flow %s invoke %d failed: %d" % (project_id, invoke_id, error_code))


class Bob(ipc.Client):
    """An IPC client: Unix socket to the router on this host."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connected = threading.Event()
        self.got = threading.Event()

    def on_connect(self) -> None:
        say("bob", "registered (IPC, unit %s learnt from the router, client %d)"
            % (self.unit_id, self.client_id))
        self.connected.set()

    def on_global_connect_state_changed(self, unit_id: int, client_id: int, client_type: int,
                                        access_unit_id: int, status_code: int,
                                        info: str) -> None:
        state = {0: "left", 1: "arrived", 2: "is already here"}.get(status_code, status_code)
        say("bob", "bus: unit %d client %d (type %d, %r) %s"
            % (unit_id, client_id, client_type, info, state))

    def on_data(self, head: Head, data: bytes) -> None:
        if head.cmd == 7:
            say("bob", "pinged by unit %d (my library answers by itself)" % head.src_unit_id)
            return
        say("bob", "got %r (cmd %d) from unit %d client %d; answering"
            % (data, head.cmd, head.src_unit_id, head.src_unit_client_id))
        self.send_data(2, CMD_TYPE_USER, head.src_unit_id, head.src_unit_client_id,
                       head.src_unit_client_type, b"hello alice, this is bob")
        self.got.set()


def wait(event: threading.Event, what: str, timeout: float = 5.0) -> None:
    if not event.wait(timeout):
        raise SystemExit("demo: %s did not happen within %s s" % (what, timeout))


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="smartbus-demo")
    ipc_path = os.path.join(tmp, "ipc")
    try:
        with Server(host="127.0.0.1", port=0, unit_id=0, ipc_path=ipc_path) as server:
            say("router", "listening on 127.0.0.1:%d and %s (unit 0)" % (server.port, ipc_path))
            bob = Bob.create(10, 3, info="bob (IPC)", ipc_path=ipc_path)
            bob.activate()
            wait(bob.connected, "bob's registration")

            net.Client.initialize(ALICE_UNIT)
            alice = Alice.create(1, 11, "127.0.0.1", server.port, info="alice (NET)")
            alice.activate()
            wait(alice.connected, "alice's registration")

            say("alice", "sending to unit 0 client 10")
            alice.send_data(1, CMD_TYPE_USER, 0, 10, 3, b"hello bob, this is alice")
            wait(bob.got, "bob receiving")
            wait(alice.got, "alice receiving the answer")

            t0 = time.perf_counter()
            alice.ping(0, 10, 3, b"are you there?")
            wait(alice.pinged, "the ping answer")
            say("alice", "ping round trip %.3f ms" % ((time.perf_counter() - t0) * 1000))

            fs = FlowServer(process_index=1, ipc_path=ipc_path)

            @fs.flow("demo", "greet")
            def greet(name: str, count: int) -> List[Any]:
                say("flows", "greet(%r, %r) running in the FlowServer" % (name, count))
                return ["你好, %s" % name, count * 2]

            with fs.start(timeout=5):
                say("alice", "launching flow demo/greet on unit 0, IPSC process 1")
                alice.launch_flow(0, 1, "demo", "greet", 0, 5.0, ["alice", 21])
                wait(alice.flow_done, "the flow result")

            alice.dispose()
            time.sleep(0.2)              # let bob hear that alice left
            net.Client.release()
            bob.dispose()
            stats = server.stats()
            say("router", "routed %d messages, %d clients registered in all"
                % (stats["routed_msgs"], stats["registered"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say("demo", "done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
