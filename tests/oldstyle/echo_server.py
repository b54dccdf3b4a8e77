# -*- coding: utf-8 -*-
"""A JSON-RPC echo service over SmartBus, written the way programs for the
old ctypes package (smartbus-client-python 2.0.1) were written; it must run
unchanged on ours (tests/test_oldstyle.py).  Usage:

    python echo_server.py HOST PORT

Requests come as cmd 1 / cmd_type 10 packets holding a JSON-RPC 2.0
request; the answer goes back to the sender as cmd 1 / cmd_type 11.
Methods: "echo" (returns its params), "whoami" (the caller's address as
this side sees it), "shutdown" (answers, then the process exits 0).
"""

from __future__ import print_function

import json
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from smartbus.errors import SmartBusError
from smartbus.net import Client
from smartbus.utils import b2s_recode, s2b_recode

UNIT_ID = 30
CLIENT_ID = 1
CLIENT_TYPE = 20
CMD_RPC = 1
CMD_TYPE_REQUEST = 10
CMD_TYPE_RESPONSE = 11

stopped = threading.Event()


class EchoServer(Client):

    def on_connect(self):
        self.logger.info('registered, client %s', self.client_id)
        print('READY')
        sys.stdout.flush()

    def on_connect_fail(self, error_code):
        self.logger.error('connect failed: %s', error_code)

    def on_disconnect(self):
        self.logger.warning('disconnected')

    def on_data(self, head, data):
        if head.cmd != CMD_RPC or head.cmd_type != CMD_TYPE_REQUEST:
            return
        request = json.loads(b2s_recode(data, 'utf-8'))
        method = request.get('method')
        response = {'jsonrpc': '2.0', 'id': request.get('id')}
        if method == 'echo':
            response['result'] = request.get('params')
        elif method == 'whoami':
            response['result'] = [head.src_unit_id, head.src_unit_client_id,
                                  head.src_unit_client_type]
        elif method == 'shutdown':
            response['result'] = 'bye'
        else:
            response['error'] = {'code': -32601, 'message': 'Method not found'}
        text = json.dumps(response, ensure_ascii=False)
        try:
            self.send_data(CMD_RPC, CMD_TYPE_RESPONSE, head.src_unit_id, head.src_unit_client_id,
                           head.src_unit_client_type, s2b_recode(text, 'utf-8', 'utf-8'))
        except SmartBusError as e:
            self.logger.error('cannot answer: %s %s', e.code, e.message)
        if method == 'shutdown':
            stopped.set()


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    logging.basicConfig(level=logging.INFO, format='%(name)s %(levelname)s %(message)s')
    Client.initialize(UNIT_ID)
    server = EchoServer.create(
        client_id=CLIENT_ID, client_type=CLIENT_TYPE, master_ip=host, master_port=port,
        info='echo server', event_executor=ThreadPoolExecutor(max_workers=4))
    server.activate()
    stopped.wait(60)
    print('STOPPED' if stopped.is_set() else 'TIMEOUT')
    return 0 if stopped.is_set() else 1


if __name__ == '__main__':
    sys.exit(main())
