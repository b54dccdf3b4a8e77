/*
 * facade_test.c - drives the vendor-compatible C API (SmartBusNetCli_*) of
 * our SDK against a real router, from C, as a C application would.
 *
 * usage: facade_test PORT PEER_UNIT
 * Protocol with tests/test_c_api.py on stdout/stdin: prints "CONNECTED"
 * once registered and the peer was seen; waits for a line on stdin (the
 * test has made the peer send 3 messages) and prints "OK" at the end, or
 * "FAIL <reason>" and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "c_test.h"

#include "smartbus_netcli_interface.h"

#define UNIT 21
#define CLIENT 1

static int connected, connect_code = 1, ping_answers, data_from_peer, peer_present;
static int bad_head, traces;
static char first_data[64];


static void on_connect(void *arg, unsigned char clientid, int ap_unit, int ack)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    if (clientid != CLIENT || (ack == 0 && ap_unit != 0)) bad_head = 1;
    connect_code = ack;
    if (ack == 0) connected = 1;
    pthread_mutex_unlock(&lock);
}

static void on_recv(void *arg, unsigned char clientid, SMARTBUS_PACKET_HEAD *head, void *data,
                    int size)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    if (clientid != CLIENT || head->head_flag != SMARTBUS_HEAD_FLAG || head->datalen != size ||
        (size > 0) != (data != NULL))
        bad_head = 1;
    if (head->cmd == SMARTBUS_SYSCMD_PING_ACK && head->cmdtype == SMARTBUS_CMDTYPE_SYSTEM &&
        size == 5 && memcmp(data, "cping", 5) == 0)
        ping_answers++;
    if (head->cmdtype == SMARTBUS_CMDTYPE_USER && head->dest_unit_id == UNIT) {
        if (data_from_peer == 0 && size < (int)sizeof first_data) {
            memcpy(first_data, data, (size_t)size);
            first_data[size] = 0;
        }
        data_from_peer++;
    }
    pthread_mutex_unlock(&lock);
}

static void on_disconnect(void *arg, unsigned char clientid)
{
    (void)arg;
    (void)clientid;
}

static void on_flow_ret(void *arg, unsigned char clientid, SMARTBUS_PACKET_HEAD *head,
                        const char *project, int invoke_id, int ret, const char *param)
{
    (void)arg; (void)clientid; (void)head; (void)project; (void)invoke_id; (void)ret; (void)param;
}

static void on_global(void *arg, char unit, char client, char type, char ap, char status,
                      const char *info)
{
    (void)arg;
    (void)info;
    pthread_mutex_lock(&lock);
    if (unit == *(int *)arg && client == 1 && type == 11 && ap == 0 && status == 2)
        peer_present = 1;
    pthread_mutex_unlock(&lock);
}

static void on_trace(const char *msg)
{
    (void)msg;
    pthread_mutex_lock(&lock);
    traces++;
    pthread_mutex_unlock(&lock);
}

int main(int argc, char **argv)
{
    if (argc != 3) FAIL("usage: facade_test PORT PEER_UNIT");
    unsigned short port = (unsigned short)atoi(argv[1]);
    static int peer_unit;
    peer_unit = atoi(argv[2]);

    /* before Init */
    CHECK(SmartBusNetCli_SendData(CLIENT, 1, 3, peer_unit, 1, 11, "x", 1) == SMARTBUS_ERR_NON_INIT);
    CHECK(SmartBusNetCli_CreateConnect(CLIENT, 11, "127.0.0.1", port, NULL, 0xFFFF, "", "", "")
          == SMARTBUS_ERR_NON_INIT);
    CHECK(SmartBusNetCli_Init(15) == SMARTBUS_ERR_UNITID_INVALID);
    CHECK(SmartBusNetCli_Init(48) == SMARTBUS_ERR_UNITID_INVALID);
    CHECK(SmartBusNetCli_Init(UNIT) == 0);
    CHECK(SmartBusNetCli_Init(UNIT) == 0);                  /* a second Init returns 0 */

    SmartBusNetCli_SetCallBackFn(on_connect, on_recv, on_disconnect, on_flow_ret, on_global,
                                 &peer_unit);
    CHECK(SmartBusNetCli_SetCallBackFnEx("no_such_callback", NULL) == SMARTBUS_ERR_ARGUMENT);
    SmartBusNetCli_SetTraceStr(on_trace, on_trace);

    /* local checks, in the vendor's order (NET.md §6.1) */
    CHECK(SmartBusNetCli_SendData(CLIENT, 1, 3, 48, 1, 11, "x", 1) == SMARTBUS_ERR_UNITID_INVALID);
    CHECK(SmartBusNetCli_SendData(CLIENT, 1, 3, 16, 1, 11, "x", 0x10000000) == SMARTBUS_ERR_MAX_DATASIZE);
    CHECK(SmartBusNetCli_SendData(CLIENT, 1, 0, 16, 1, 11, "x", 1) == SMARTBUS_ERR_CMDTYPE_INVALID);
    CHECK(SmartBusNetCli_SendData(CLIENT, 1, 3, UNIT, 2, 11, "x", 1) == SMARTBUS_ERR_SEND_OWN);
    CHECK(SmartBusNetCli_SendData(CLIENT, 1, 3, 16, 1, 11, "x", 1) == SMARTBUS_ERR_CLI_NOTEXIST);
    CHECK(SmartBusNetCli_RemoteInvokeFlow(CLIENT, 16, 0, "p", "f", 0, 1000, "[]")
          == SMARTBUS_ERR_UNITID_INVALID);

    CHECK(SmartBusNetCli_CreateConnect(CLIENT, 11, "127.0.0.1", port, NULL, 0xFFFF, "", "",
                                       "c-facade") == 0);
    CHECK(SmartBusNetCli_CreateConnect(CLIENT, 11, "127.0.0.1", port, NULL, 0xFFFF, "", "", "")
          == SMARTBUS_ERR_CLI_EXIST);
    if (!wait_for(&connected, 1)) FAIL("not connected (code %d)", connect_code);
    if (!wait_for(&peer_present, 1)) FAIL("peer not reported by global connect");

    /* a NULL data pointer with size 0 is an empty payload (build C crashed here) */
    CHECK(SmartBusNetCli_SendData(CLIENT, 7, 3, peer_unit, 1, 11, NULL, 0) == 0);
    CHECK(SmartBusNetCli_SendData(CLIENT, 7, 3, peer_unit, 1, 11, "hello-from-c", 12) == 0);
    CHECK(SmartBusNetCli_SendPing(CLIENT, peer_unit, 1, 11, "cping", 5) == 0);
    if (!wait_for(&ping_answers, 1)) FAIL("no ping answer");
    int id1 = SmartBusNetCli_RemoteInvokeFlow(CLIENT, 0, 9, "proj", "flow", 1, 1000, "[1]");
    int id2 = SmartBusNetCli_RemoteInvokeFlow(CLIENT, 0, 9, "proj", "flow", 1, 1000, NULL);
    CHECK(id1 > 0 && id2 == id1 + 1);                 /* ids count up; NULL params allowed */
    CHECK(SmartBusNetCli_SendNotify(CLIENT, 0, 9, "proj", "", 0, 1000, "x") == SMARTBUS_ERR_ARGUMENT);
    CHECK(SmartBusNetCli_SendNotify(CLIENT, 0, 9, "proj", "title", 0, 1000, "text") >= 1);
    report_connected_and_receive(&data_from_peer, first_data);
    CHECK(!bad_head);

    SmartBusNetCli_Release();
    CHECK(SmartBusNetCli_SendData(CLIENT, 1, 3, peer_unit, 1, 11, "x", 1) == SMARTBUS_ERR_NON_INIT);
    SmartBusNetCli_Release();                         /* twice: harmless */
    printf("OK\n");
    return 0;
}
