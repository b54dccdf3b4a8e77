"""Programs written for the old ctypes package run unchanged on ours: the
JSON-RPC echo server and its client in tests/oldstyle/ (cmd/cmd_type pairs,
JSON over send_data, on_data handlers decoding with b2s_recode,
Client.initialize / create / activate, an event executor, the global
connect callback), each in its own process, against our router."""

import os
import queue
import subprocess
import sys
import threading

from helpers import TESTS_DIR, package_env

PROGRAMS = os.path.join(TESTS_DIR, "oldstyle")


def test_echo_server_and_client(router):
    server = subprocess.Popen([sys.executable, os.path.join(PROGRAMS, "echo_server.py"),
                               "127.0.0.1", str(router.port)], env=package_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in server.stdout],
                         daemon=True).start()
        assert lines.get(timeout=30) == "READY\n"
        client = subprocess.run([sys.executable, os.path.join(PROGRAMS, "echo_client.py"),
                                 "127.0.0.1", str(router.port)], env=package_env(),
                                capture_output=True, text=True, timeout=120)
        assert client.returncode == 0, client.stdout + client.stderr
        assert client.stdout.splitlines() == [
            "before activate: -2 SMARTBUS_ERR_CONN_NOT_ESTAB",
            'echo ["hello"] -> ["hello"]',
            "echo [1, 2.5, null, true] -> [1, 2.5, null, true]",
            'echo {"text": "汉字", "list": [1, [2]]} -> {"text": "汉字", "list": [1, [2]]}',
            "whoami -> [31, 7, 21]",
            "nope -> -32601 Method not found",
            "shutdown -> bye",
        ], client.stdout + client.stderr
        assert server.wait(30) == 0, server.stderr.read()
        assert lines.get(timeout=5) == "STOPPED\n"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
