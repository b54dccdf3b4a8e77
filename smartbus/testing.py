"""pytest fixtures for code that talks over SmartBus: a real router per
test, a flow server on it, and connected clients, all closed at teardown.
The plugin is registered through the ``pytest11`` entry point: once
smartbus is installed, every test suite has these fixtures, no import
needed (``-p no:smartbus`` turns them off).

    def test_hello(smartbus_client):
        a = smartbus_client("net")
        b = smartbus_client("ipc")
        a.send_data(1, 3, *b.address, b"hello")
        head, data = b.next_message()
        assert data == b"hello"

    def test_add(flow_server, smartbus_client):
        flow_server.add_flow("calc", "add", lambda *xs: [sum(xs)])
        c = smartbus_client("net", cls=MyClient)   # MyClient.on_flow_resp gets [3]
        c.launch_flow(flow_server.unit_id, flow_server.process_index, "calc", "add", 0, 5, [1, 2])

- ``smartbus_server``: a started ``smartbus.server.Server``: unit 0, TCP on
  127.0.0.1 with a free port (``.port``), IPC at a private socket path
  (``.ipc_path``).  ``@pytest.mark.smartbus_server(**kwargs)`` passes
  other arguments to ``Server`` (``user``, ``password``, ``unit_id``,
  ``monitor``...).
- ``flow_server``: a started ``smartbus.ipsc.FlowServer`` on it, process
  index 0 (``@pytest.mark.flow_server(**kwargs)`` for others); register
  flows with ``flow_server.flow(...)`` or ``add_flow``, before or after.
- ``smartbus_client``: a factory, ``smartbus_client(kind="net", client_id=None,
  client_type=3, cls=None, server=None, connect=True, timeout=10.0,
  **kwargs)``: a client of ``server`` (default: ``smartbus_server``),
  registered unless ``connect`` is false.  Without ``cls`` it records what
  it receives: ``next_message(timeout=5.0)`` returns the next ``(head,
  data)``.  NET client ids count up from 1; the IPC client (one per
  process) is client 200.  ``kwargs`` go to the client's constructor.
- ``smartbus_net_unit`` (session): the NET unit of the test process, 40;
  override it in a conftest.py to choose another.
- ``smartbus_net`` (session): ``smartbus.net.Client``, initialised with that
  unit for the session (unless the process had done it already).

Nothing is imported from smartbus until a fixture is used.
"""

import os
import queue
import shutil
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Tuple, Type

import pytest

if TYPE_CHECKING:
    from smartbus.ipsc import FlowServer
    from smartbus.server import Server

__all__ = ["smartbus_server", "flow_server", "smartbus_client", "smartbus_net",
           "smartbus_net_unit", "received"]

DEFAULT_NET_UNIT = 40
DEFAULT_CLIENT_TYPE = 3
IPC_CLIENT_ID = 200
FLOW_SERVER_PROCESS = 0
CONNECT_TIMEOUT = 10.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "smartbus_server(**kwargs): arguments of "
                                       "smartbus.server.Server for the smartbus_server fixture")
    config.addinivalue_line("markers", "flow_server(**kwargs): arguments of "
                                       "smartbus.ipsc.FlowServer for the flow_server fixture")


def _marker_kwargs(request: pytest.FixtureRequest, name: str) -> "dict[str, Any]":
    marker = request.node.get_closest_marker(name)
    return dict(marker.kwargs) if marker is not None else {}


@pytest.fixture
def smartbus_server(request: pytest.FixtureRequest) -> Iterator["Server"]:
    """A started router: unit 0, TCP on loopback (free port), IPC at a
    private path; stopped at teardown."""
    from smartbus.server import Server
    # a short directory: Unix socket paths are limited to 107 bytes
    tmp = tempfile.mkdtemp(prefix="sbt")
    kwargs: Dict[str, Any] = dict(host="127.0.0.1", port=0, ipc_path=os.path.join(tmp, "ipc"))
    kwargs.update(_marker_kwargs(request, "smartbus_server"))
    try:
        server = Server(**kwargs).start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def flow_server(request: pytest.FixtureRequest,
                smartbus_server: "Server") -> Iterator["FlowServer"]:
    """A started FlowServer on smartbus_server (process index 0); stopped at
    teardown."""
    from smartbus.ipsc import FlowServer
    kwargs: Dict[str, Any] = dict(process_index=FLOW_SERVER_PROCESS,
                                  ipc_path=smartbus_server.ipc_path)
    kwargs.update(_marker_kwargs(request, "flow_server"))
    server = FlowServer(**kwargs)
    try:
        server.start(timeout=CONNECT_TIMEOUT)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def smartbus_net_unit() -> int:
    """The NET unit of the test process (override to choose another)."""
    return DEFAULT_NET_UNIT


@pytest.fixture(scope="session")
def smartbus_net(smartbus_net_unit: int) -> Iterator[Any]:
    """smartbus.net.Client, initialised for the session with smartbus_net_unit
    (left as it is if the process initialised it already)."""
    from smartbus.net import Client
    ours = not Client.is_initialized()
    if ours:
        Client.initialize(smartbus_net_unit)
    yield Client
    if ours:
        Client.release()


class Received:
    """Mixin of the factory's default clients: what ``on_data`` gets is
    queued for ``next_message``; registration failures are kept in
    ``connect_failures`` (error codes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.messages: "queue.Queue[Tuple[Any, bytes]]" = queue.Queue()
        self.connect_failures: List[int] = []
        super().__init__(*args, **kwargs)

    def on_data(self, head: Any, data: bytes) -> None:
        self.messages.put((head, data))

    def on_connect_fail(self, error_code: int) -> None:
        self.connect_failures.append(error_code)

    def next_message(self, timeout: float = 5.0) -> Tuple[Any, bytes]:
        """The next ``(head, data)`` received; AssertionError when none
        comes within ``timeout`` seconds."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no message within %s s" % timeout) from None


_received_classes: "dict[type, type]" = {}


def received(base: type) -> type:
    """The Received subclass of client class ``base`` (one per base)."""
    cls = _received_classes.get(base)
    if cls is None:
        cls = _received_classes[base] = type(base.__name__, (Received, base), {})
    return cls


def _wait_registered(client: Any, timeout: float) -> None:
    """Waits until ``client`` is registered; AssertionError (with the
    refusals seen) after ``timeout`` seconds."""
    if not client.wait_connected(timeout):
        failures = getattr(client, "connect_failures", None)
        raise AssertionError("client %d not registered within %s s%s" % (
            client.client_id, timeout, " (refused: %s)" % failures if failures else ""))


@pytest.fixture
def smartbus_client(smartbus_server: "Server",
                    request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Factory of connected clients, disposed at teardown; see the module
    documentation."""
    made: List[Any] = []

    def make(kind: str = "net", client_id: Optional[int] = None,
             client_type: int = DEFAULT_CLIENT_TYPE, cls: Optional[Type[Any]] = None,
             server: Optional["Server"] = None, connect: bool = True,
             timeout: float = CONNECT_TIMEOUT, **kwargs: Any) -> Any:
        server = server or smartbus_server
        if kind == "net":
            net = request.getfixturevalue("smartbus_net")
            if client_id is None:
                client_id = next(i for i in range(1, 255) if net.find(i) is None)
            client = (cls or received(net))(client_id, client_type, server.host, server.port,
                                            **kwargs)
        elif kind == "ipc":
            from smartbus import ipc
            client = (cls or received(ipc.Client))(
                IPC_CLIENT_ID if client_id is None else client_id, client_type,
                ipc_path=server.ipc_path, **kwargs)
        else:
            raise ValueError("kind must be 'net' or 'ipc', got %r" % (kind,))
        made.append(client)
        if connect:
            client.activate()
            _wait_registered(client, timeout)
        return client

    try:
        yield make
    finally:
        for client in reversed(made):
            client.dispose()
