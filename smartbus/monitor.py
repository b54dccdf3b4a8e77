"""The router's monitoring endpoint: a small HTTP server beside the router
(``smartbus.server.Server(monitor=("127.0.0.1", 8090))``, or ``--monitor
HOST:PORT`` on the command line) that answers

- ``GET /`` or ``GET /json``: the router and its connections as JSON
  (:func:`report`);
- ``GET /metrics``: the same in the Prometheus text format, written by
  ``prometheus_client`` (the optional extra ``smartbus[monitor]``).

It is off unless asked for and listens on loopback unless told otherwise:
it shows who is on the bus to anyone who can reach it.  Each request takes
a fresh snapshot from the router's loop (``Router.snapshot``), so nothing
is cached and nothing runs between requests.  ``smartbus monitor`` reads
the JSON.
"""

import http.server
import json
import socket
import socketserver
import threading
import time
from typing import Any, Dict, Iterator, Optional, Protocol, Tuple

from smartbus.version import __version__

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "INSTALL_HINT", "MonitorEndpoint", "parse_address",
           "report"]

#: where the endpoint listens when only a port, or nothing, is given
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090
#: what to install for /metrics
INSTALL_HINT = "the router monitor needs prometheus_client: pip install 'smartbus[monitor]'"

#: the router's counters (Server.stats()) that only grow, with their help text
COUNTERS = {
    "accepted": "connections accepted",
    "registered": "registrations accepted",
    "refused": "registrations refused",
    "closed": "connections closed",
    "routed_msgs": "packets delivered to a destination (each copy of a broadcast)",
    "routed_bytes": "payload bytes delivered to a destination",
    "dropped_no_route": "packets dropped: destination not connected",
    "dropped_unregistered": "packets dropped: sender not registered",
    "heartbeats": "heartbeats received from registered clients",
    "heartbeat_answers": "heartbeats answered (at most one per connection per "
                         "heartbeat_answer_interval)",
    "stalled_disconnects": "connections closed by the stall rule",
    "paused_reads": "times a sender was paused by back-pressure",
}
#: a connection's counters, with their help text
CONNECTION_COUNTERS = {
    "msgs_in": "packets received from the connection (all kinds)",
    "bytes_in": "bytes read from the connection",
    "msgs_out": "packets queued for the connection",
    "bytes_out": "bytes written to the connection",
}
#: a connection's queues now, with their help text
CONNECTION_GAUGES = {
    "queued_bytes": "bytes queued for the connection, not yet written",
    "buffered_bytes": "bytes read from the connection, not yet handled",
}
_CONNECTION_LABELS = ["kind", "unit", "client", "type"]
_JSON_PATHS = ("/", "/json")
_HANDLER_TIMEOUT = 10.0            # seconds a client may take to send its request
_SNAPSHOT_TIMEOUT = 2.0            # seconds the router's loop may take to answer


class Monitored(Protocol):
    """What the endpoint needs of the server it watches
    (smartbus.server.Server)."""

    unit_id: int
    host: str
    port: int
    ipc_path: Optional[str]

    def snapshot(self, timeout: float = ...) -> Dict[str, Any]: ...


def parse_address(text: str) -> Tuple[str, int]:
    """``"PORT"``, ``":PORT"``, ``"HOST:PORT"`` or ``"[V6]:PORT"`` as
    ``(host, port)``; the host defaults to loopback.  ValueError otherwise."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError("%r is not HOST:PORT or PORT" % text) from None
    if not 0 <= port <= 65535:
        raise ValueError("port must be in 0..65535, got %d" % port)
    return host or DEFAULT_HOST, port


def report(server: Monitored, started: float) -> Dict[str, Any]:
    """The JSON document: ``server`` (version, unit, listeners, uptime),
    ``totals`` (the router's counters and the number of connections) and
    ``connections`` (each with its identity, peer address, counters and
    queues).  ``started``: time.monotonic() when the router started."""
    snap = server.snapshot(_SNAPSHOT_TIMEOUT)
    totals = dict(snap["stats"], connections=len(snap["connections"]))
    return {
        "server": {"version": __version__, "unit_id": server.unit_id,
                   "tcp": "%s:%d" % (server.host, server.port) if server.port > 0 else None,
                   "ipc": server.ipc_path, "uptime": round(time.monotonic() - started, 3),
                   "time": time.time()},
        "totals": totals,
        "connections": snap["connections"],
    }


def _metric_families(doc: Dict[str, Any]) -> Iterator[Any]:
    """The Prometheus metric families of a report()."""
    from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                        InfoMetricFamily)
    yield InfoMetricFamily("smartbus_router", "the router",
                           value={"version": __version__, "unit": str(doc["server"]["unit_id"])})
    totals = doc["totals"]
    for key, text in COUNTERS.items():
        yield CounterMetricFamily("smartbus_router_" + key, text, value=totals[key])
    yield GaugeMetricFamily("smartbus_router_clients", "registered clients",
                            value=totals["clients"])
    yield GaugeMetricFamily("smartbus_router_connections", "open connections",
                            value=totals["connections"])
    registered = [c for c in doc["connections"] if c["registered"]]   # one per identity
    for kind, metrics in ((CounterMetricFamily, CONNECTION_COUNTERS),
                          (GaugeMetricFamily, CONNECTION_GAUGES)):
        for key, text in metrics.items():
            family = kind("smartbus_router_connection_" + key, text, labels=_CONNECTION_LABELS)
            for c in registered:
                family.add_metric([str(c[name]) for name in _CONNECTION_LABELS], c[key])
            yield family


class _HTTPServer(http.server.ThreadingHTTPServer):
    # request threads are joined by server_close() (bounded by the handler
    # timeout), so none is left calling the router once it is freed
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: Tuple[str, int], handler: type) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer's own looks the host's name up (getfqdn): a DNS query
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]


class MonitorEndpoint:
    """The HTTP endpoint of one server: binds at creation (``port`` 0 picks
    a free port: read ``address``), serves from ``start()`` to ``close()``
    on a thread of its own.  ImportError (with :data:`INSTALL_HINT`) when
    prometheus_client is missing, OSError when it cannot listen."""

    def __init__(self, server: Monitored, host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT) -> None:
        try:
            from prometheus_client import CollectorRegistry
        except ImportError:
            raise ImportError(INSTALL_HINT) from None
        self._server = server
        self._started = time.monotonic()
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)      # collect() below, once per scrape
        try:
            self._httpd = _HTTPServer((host, port), self._handler_class())
        except OSError as exc:
            raise OSError(exc.errno, "cannot listen on %s:%d for the monitor: %s"
                          % (host, port, exc.strerror or exc)) from None
        self.address: Tuple[str, int] = (host, self._httpd.server_address[1])
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT/``"""
        host, port = self.address
        return "http://%s:%d/" % ("[%s]" % host if ":" in host else host, port)

    def start(self) -> "MonitorEndpoint":
        """Serves on a background thread; returns self."""
        if self._thread is None:
            self._started = time.monotonic()
            self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.2,),
                                            name="smartbus-monitor", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stops serving and waits for the requests in progress (idempotent)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def report(self) -> Dict[str, Any]:
        """The JSON document (see :func:`report`)."""
        return report(self._server, self._started)

    def metrics(self) -> bytes:
        """The Prometheus text."""
        from prometheus_client import generate_latest
        return bytes(generate_latest(self._registry))

    def collect(self) -> Iterator[Any]:
        """prometheus_client's collector interface: one snapshot per scrape."""
        return _metric_families(self.report())

    def _handler_class(self) -> type:
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = _HANDLER_TIMEOUT
            server_version = "smartbus-monitor/" + __version__

            def do_GET(self) -> None:
                from prometheus_client import CONTENT_TYPE_LATEST
                path = self.path.split("?", 1)[0]
                try:
                    if path in _JSON_PATHS:
                        body = json.dumps(endpoint.report(), indent=1).encode() + b"\n"
                        ctype = "application/json"
                    elif path == "/metrics":
                        body, ctype = endpoint.metrics(), CONTENT_TYPE_LATEST
                    else:
                        self.send_error(404, "not found: try / (JSON) or /metrics (Prometheus)")
                        return
                except (TimeoutError, RuntimeError) as exc:   # router busy or stopped
                    self.send_error(503, str(exc))
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass                       # no line on stderr per request

        return Handler
