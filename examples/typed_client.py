"""A fully annotated smartbus program, checked with ``mypy --strict`` (see
tests/test_types.py) and run by the tests too: the package's type
information (smartbus/py.typed, smartbus/_native.pyi) has to describe
what the program really does.

It starts a router on a free port with a private IPC socket, serves a flow
from a FlowServer, and has a NET client and the IPC client of the process
exchange data and call the flow.  Prints what happens; exit code 0 when
everything arrived.

    python examples/typed_client.py
"""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Any, Optional

from smartbus import IpcClient, NetClient
from smartbus.errors import SmartBusError
from smartbus.head import Head
from smartbus.ipsc import FlowServer
from smartbus.server import Server
from smartbus.utils import b2s_recode, to_bytes

NET_UNIT = 20                 # this process's NET unit
CMD, CMD_TYPE = 1, 3          # an application message
TIMEOUT = 10.0


class Sender(NetClient):
    """Sends a greeting to the IPC client and launches a flow."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answer: Optional[str] = None
        self.flow_result: list[Any] = []
        self.answered = threading.Event()
        self.flow_done = threading.Event()

    def on_data(self, head: Head, data: bytes) -> None:
        self.answer = b2s_recode(data, "utf-8")
        self.answered.set()

    def on_flow_resp(self, head: Optional[Head], project_id: str, invoke_id: int,
                     params: list[Any]) -> None:
        self.flow_result = params
        self.flow_done.set()

    def on_flow_error(self, head: Optional[Head], project_id: str, invoke_id: int,
                      error_code: int) -> None:
        print("flow %s invoke %d failed: %d" % (project_id, invoke_id, error_code))
        self.flow_done.set()

    def on_flow_timeout(self, head: Optional[Head], project_id: str, invoke_id: int) -> None:
        print("flow %s invoke %d timed out" % (project_id, invoke_id))
        self.flow_done.set()


class Echo(IpcClient):
    """Answers every application message with its text in upper case."""

    def on_data(self, head: Head, data: bytes) -> None:
        text = b2s_recode(data, "utf-8")
        self.send_data(CMD, CMD_TYPE, head.src_unit_id, head.src_unit_client_id,
                       head.src_unit_client_type, to_bytes(text.upper()))


def run(server: Server, ipc_path: str) -> bool:
    flows = FlowServer(process_index=1, ipc_path=ipc_path)

    @flows.flow("typed", "sum")
    def add(*values: float) -> list[float]:
        return [sum(values)]

    with flows.start(timeout=TIMEOUT):
        echo = Echo.create(client_id=7, client_type=3, ipc_path=ipc_path)
        NetClient.initialize(NET_UNIT)
        sender = Sender.create(client_id=1, client_type=11, master_ip="127.0.0.1",
                               master_port=server.port, info="typed example")
        try:
            echo.activate()
            sender.activate()
            if not (echo.wait_connected(TIMEOUT) and sender.wait_connected(TIMEOUT)):
                print("not registered with the router")
                return False
            unit: Optional[int] = echo.unit_id          # the router's, learnt at registration
            assert unit is not None and IpcClient.get() is echo
            try:
                sender.send_data(CMD, CMD_TYPE, unit, echo.client_id, echo.client_type,
                                 b"hello")
            except SmartBusError as exc:
                print("refused:", exc.code, exc.message)
                return False
            invoke_id: int = sender.launch_flow(unit, flows.process_index, "typed", "sum", 0,
                                                TIMEOUT, [1, 2, 3.5])
            if not (sender.flow_done.wait(TIMEOUT) and sender.answered.wait(TIMEOUT)):
                print("no answer to the message or to flow invoke", invoke_id)
                return False
            print("echo:", sender.answer, "flow:", sender.flow_result)
            return sender.answer == "HELLO" and sender.flow_result == [6.5]
        finally:
            sender.dispose()
            NetClient.release()
            echo.dispose()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="sbtyped") as tmp:
        ipc_path = os.path.join(tmp, "ipc")
        with Server(host="127.0.0.1", port=0, unit_id=0, ipc_path=ipc_path) as server:
            return 0 if run(server, ipc_path) else 1


if __name__ == "__main__":
    raise SystemExit(main())
