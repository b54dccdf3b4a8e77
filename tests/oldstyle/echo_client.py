# -*- coding: utf-8 -*-
"""The client of echo_server.py, written the way programs for the old
ctypes package (smartbus-client-python 2.0.1) were written: no
wait_connected() then, so it waits for on_connect and for the server's
global connect event, and sends JSON-RPC requests over send_data.  Usage:

    python echo_client.py HOST PORT

Prints one line per call and exits 0 when every answer was right.
"""

from __future__ import print_function

import itertools
import json
import logging
import sys
import threading
from concurrent.futures import Future

from smartbus import NetClient
from smartbus.errors import SmartBusError
from smartbus.utils import b2s_recode, to_bytes

UNIT_ID = 31
SERVER_UNIT_ID, SERVER_CLIENT_ID, SERVER_CLIENT_TYPE = 30, 1, 20
CMD_RPC = 1
CMD_TYPE_REQUEST = 10
CMD_TYPE_RESPONSE = 11

server_online = threading.Event()


def on_global_connect(unit_id, client_id, client_type, access_unit_id, status_code, info):
    # 1: connected now, 2: connected before us
    if (unit_id, client_id) == (SERVER_UNIT_ID, SERVER_CLIENT_ID) and status_code in (1, 2):
        server_online.set()


class RpcClient(NetClient):

    def __init__(self, *args, **kwargs):
        super(RpcClient, self).__init__(*args, **kwargs)
        self.connected = threading.Event()
        self._ids = itertools.count(1)
        self._pending = {}
        self._lock = threading.Lock()

    def on_connect(self):
        self.connected.set()

    def on_data(self, head, data):
        if head.cmd != CMD_RPC or head.cmd_type != CMD_TYPE_RESPONSE:
            return
        response = json.loads(b2s_recode(data, 'utf-8'))
        with self._lock:
            future = self._pending.pop(response['id'], None)
        if future is not None:
            future.set_result(response)

    def call(self, method, params=None, timeout=10):
        request_id = next(self._ids)
        future = Future()
        with self._lock:
            self._pending[request_id] = future
        request = {'jsonrpc': '2.0', 'id': request_id, 'method': method, 'params': params}
        self.send_data(CMD_RPC, CMD_TYPE_REQUEST, SERVER_UNIT_ID, SERVER_CLIENT_ID,
                       SERVER_CLIENT_TYPE, to_bytes(json.dumps(request)))
        return future.result(timeout)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    logging.basicConfig(level=logging.INFO)
    NetClient.initialize(UNIT_ID, global_connect_callback=on_global_connect)
    # positional arguments, no slave server (0xFFFF), as the old docs showed
    client = RpcClient.create(7, 21, host, port, '', 0xFFFF, None, None, 'rpc client')
    try:
        client.send_data(CMD_RPC, CMD_TYPE_REQUEST, SERVER_UNIT_ID, SERVER_CLIENT_ID,
                         SERVER_CLIENT_TYPE, b'{}')
    except SmartBusError as e:
        print('before activate:', e.code, e.message)
    client.activate()
    if not (client.connected.wait(10) and server_online.wait(10)):
        print('no connection')
        return 1
    assert RpcClient.find(7) is client
    ok = True
    for params in (['hello'], [1, 2.5, None, True], {'text': u'汉字', 'list': [1, [2]]}):
        result = client.call('echo', params)['result']
        print('echo', json.dumps(params, ensure_ascii=False), '->',
              json.dumps(result, ensure_ascii=False))
        ok = ok and result == params
    whoami = client.call('whoami')['result']
    print('whoami ->', whoami)
    ok = ok and whoami == [UNIT_ID, 7, 21]
    error = client.call('nope')['error']
    print('nope ->', error['code'], error['message'])
    ok = ok and error['code'] == -32601
    print('shutdown ->', client.call('shutdown')['result'])
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
