"""Fixtures shared by the whole suite: routers on loopback, our clients in
this process (smartbus.net initialised once, unit TEST_UNIT), peer processes
and router processes.  Every fixture that makes things records them and
closes them at teardown; a teardown that would hang fails instead (every
close is bounded).  The plain helpers behind them are in helpers.py; the
fixtures of our pytest plugin (smartbus.testing: smartbus_server,
flow_server, smartbus_client, smartbus_net) serve here too."""

import contextlib
import shutil
import tempfile

import pytest

from helpers import TEST_UNIT, PeerProcess, ServerProcess, closing_all, recording


def pytest_configure(config):
    # registered here rather than in pyproject.toml: the suite also runs
    # from a copy of tests/ against an installed wheel
    config.addinivalue_line("markers", "interop: wire compatibility with the Hesong client "
                                       "library (hesong-ipsc-busnetcli, Linux x86-64)")


@pytest.fixture
def short_tmp():
    """A short directory under /tmp (Unix socket paths are limited to 107 bytes)."""
    d = tempfile.mkdtemp(prefix="sbt")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_router():
    """Factory of started routers (smartbus.server.Server: unit 0, TCP on
    loopback with a free port, no IPC unless ``ipc_path`` is given)."""
    from smartbus.server import Server
    with closing_all(lambda **kw: Server(**kw).start(), lambda srv: srv.stop()) as make:
        yield make


@pytest.fixture
def router(smartbus_server):
    """A running router (unit 0) with TCP on loopback and an IPC socket."""
    return smartbus_server


@pytest.fixture(scope="session")
def net_lib():
    """smartbus.net initialised for this process with unit TEST_UNIT; the
    global connect events of the initialize() callback land in
    ``net_lib.global_events``."""
    from smartbus.net import Client
    events = []
    Client.initialize(TEST_UNIT, lambda *a: events.append(a))
    Client.global_events = events
    yield Client
    Client.release()


@pytest.fixture(scope="session")
def smartbus_net(net_lib):
    """The plugin's smartbus.net (smartbus_client's NET clients): net_lib."""
    return net_lib


@contextlib.contextmanager
def client_factory(create):
    """A factory of our clients made by ``create(*args, **kwargs)``:
    ``make(*args, activate=True, connect=True, **kwargs)`` activates the
    client and, with ``connect``, waits until it is registered.  All are
    disposed on exit."""
    with closing_all(create, lambda c: c.dispose()) as created:
        def make(*args, activate=True, connect=True, **kwargs):
            c = created(*args, **kwargs)
            if activate:
                c.activate()
                if connect:
                    assert c.connected.wait(10), "client %d did not register: %r" % (
                        c.client_id, c.log.timed())
            return c

        yield make


@pytest.fixture
def net_client(net_lib):
    """Factory of our NET clients in this process (unit TEST_UNIT, class
    helpers.Recording or a subclass ``cls`` of it):
    ``make(client_id, port, client_type=11, cls=None, **kwargs)``, see
    client_factory."""
    def create(client_id, port, client_type=11, cls=None, **kwargs):
        cls = cls or recording(net_lib)
        return cls.create(client_id, client_type, "127.0.0.1", port, **kwargs)

    with client_factory(create) as make:
        yield make


@pytest.fixture
def ipc_client():
    """Factory of our IPC client in this process (one at a time, class
    helpers.Recording or a subclass ``cls`` of it):
    ``make(client_id, ipc_path, client_type=3, cls=None, **kwargs)``, see
    client_factory."""
    from smartbus.ipc import Client

    def create(client_id, ipc_path, client_type=3, cls=None, **kwargs):
        cls = cls or recording(Client)
        return cls.create(client_id, client_type, ipc_path=ipc_path, **kwargs)

    with client_factory(create) as make:
        yield make


@pytest.fixture(params=["net", "ipc"])
def caller(request, router, net_client, ipc_client):
    """A registered NET (unit TEST_UNIT, client 7) or IPC (client 20) client
    of this process, on ``router``; ``caller.kind`` says which."""
    if request.param == "net":
        c = net_client(7, router.port)
    else:
        c = ipc_client(20, router.ipc_path)
    c.kind = request.param
    return c


@pytest.fixture
def peers():
    """Factory of peer processes (tests/peer.py), all stopped at teardown
    (a peer that does not exit within its timeout fails the test)."""
    with closing_all(PeerProcess, lambda p: p.close()) as make:
        yield make


@pytest.fixture
def server_process():
    """Factory of ``python -m smartbus.server`` processes
    (helpers.ServerProcess), all killed at teardown."""
    with closing_all(ServerProcess, lambda s: s.kill()) as make:
        yield make
