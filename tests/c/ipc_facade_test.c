/*
 * ipc_facade_test.c - drives the vendor-compatible IPC C API
 * (SmartBusIpcCli_*) of our SDK against a real router over a private Unix
 * socket, from C, as a C application would.
 *
 * usage: ipc_facade_test IPC_PATH PEER_UNIT
 * Protocol with tests/test_c_api.py on stdout/stdin: prints "CONNECTED"
 * once registered, the NET peer (PEER_UNIT, client 1, type 11) was
 * reported, a ping was answered and a flow invocation timed out; waits for
 * a line on stdin (the test has made the peer send 3 messages) and prints
 * "OK" at the end, or "FAIL <reason>" and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "c_test.h"

#include "smartbus_ipccli_interface.h"

#define IPC_TYPE 3
#define IPC_ID 5
#define ROUTER_UNIT 0

static int connected, connect_code = 1, connect_ap = -1, ping_answers, data_from_peer;
static int peer_present, flow_ack_timeouts, flow_ret_timeouts, bad_event;
static char first_data[64];
static int first_data_src_unit = -1;

static void on_connect(void *arg, unsigned char clientid, int ap_unit, int ack)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    if (clientid != IPC_ID) bad_event = 1;
    connect_code = ack;
    connect_ap = ap_unit;
    if (ack == 0) connected = 1;
    pthread_mutex_unlock(&lock);
}

static void on_recv(void *arg, unsigned char clientid, SMARTBUS_PACKET_HEAD *head, void *data,
                    int size)
{
    int peer_unit = *(int *)arg;
    pthread_mutex_lock(&lock);
    if (clientid != IPC_ID || head->head_flag != SMARTBUS_HEAD_FLAG || head->datalen != size ||
        (size > 0) != (data != NULL))
        bad_event = 1;
    if (head->cmd == SMARTBUS_SYSCMD_PING_ACK && head->cmdtype == SMARTBUS_CMDTYPE_SYSTEM &&
        head->src_unit_id == peer_unit && size == 5 && memcmp(data, "iping", 5) == 0)
        ping_answers++;
    if (head->cmdtype == SMARTBUS_CMDTYPE_USER && head->dest_unit_id == ROUTER_UNIT &&
        head->dest_unit_client_id == IPC_ID) {
        if (data_from_peer == 0 && size < (int)sizeof first_data) {
            memcpy(first_data, data, (size_t)size);
            first_data[size] = 0;
            first_data_src_unit = head->src_unit_id;
        }
        data_from_peer++;
    }
    pthread_mutex_unlock(&lock);
}

/* the flow goes to an IPSC nobody serves: ack and result time out (-25,
 * no head); counts the expected ones, flags anything else */
static void flow_timed_out(int *count, unsigned char clientid, SMARTBUS_PACKET_HEAD *head,
                           const char *project, int code)
{
    pthread_mutex_lock(&lock);
    if (clientid == IPC_ID && head == NULL && code == SMARTBUS_ERR_TIMEOUT &&
        strcmp(project, "proj") == 0)
        (*count)++;
    else
        bad_event = 1;
    pthread_mutex_unlock(&lock);
}

static void on_flow_ack(void *arg, unsigned char clientid, SMARTBUS_PACKET_HEAD *head,
                        const char *project, int invoke_id, int ack, const char *msg)
{
    (void)arg; (void)invoke_id; (void)msg;
    flow_timed_out(&flow_ack_timeouts, clientid, head, project, ack);
}

static void on_flow_ret(void *arg, unsigned char clientid, SMARTBUS_PACKET_HEAD *head,
                        const char *project, int invoke_id, int ret, const char *param)
{
    (void)arg; (void)invoke_id; (void)param;
    flow_timed_out(&flow_ret_timeouts, clientid, head, project, ret);
}

/* the peer is already there when we register: cmd 10, status 2 */
static void on_global(void *arg, char unit, char client, char type, char ap, char status,
                      const char *info)
{
    int peer_unit = *(int *)arg;
    char peer_info[32];
    snprintf(peer_info, sizeof peer_info, "unit-%d", peer_unit);
    pthread_mutex_lock(&lock);
    if (unit == peer_unit && client == 1 && type == 11 && ap == ROUTER_UNIT && status == 2 &&
        strcmp(info, peer_info) == 0)
        peer_present = 1;
    pthread_mutex_unlock(&lock);
}

int main(int argc, char **argv)
{
    if (argc != 3) FAIL("usage: ipc_facade_test IPC_PATH PEER_UNIT");
    const char *path = argv[1];
    static int peer_unit;
    peer_unit = atoi(argv[2]);

    /* before Init */
    CHECK(SmartBusIpcCli_SendData(1, 3, peer_unit, 1, 11, "x", 1) == SMARTBUS_ERR_NON_INIT);
    CHECK(SmartBusIpcCli_CreateConnect("", "", "") == SMARTBUS_ERR_ARGUMENT);
    CHECK(SmartBusIpcCli_Init(1, IPC_ID) == SMARTBUS_ERR_CLIENTTYPE_INVALID);
    CHECK(SmartBusIpcCli_Init(IPC_TYPE, 256) == SMARTBUS_ERR_CLIENTID_INVALID);
    CHECK(SmartBusIpcCli_Init(IPC_TYPE, IPC_ID) == 0);
    CHECK(SmartBusIpcCli_Init(IPC_TYPE, IPC_ID) == 0);          /* a second Init returns 0 */
    /* initialised, not connected */
    CHECK(SmartBusIpcCli_SendData(1, 3, peer_unit, 1, 11, "x", 1) == SMARTBUS_ERR_CONN_NOT_ESTAB);

    CHECK(SmartBusIpcCli_SetPath(path) == 0);
    /* no disconnect callback: a NULL callback is allowed and never called */
    SmartBusIpcCli_SetCallBackFn(on_connect, on_recv, NULL, on_flow_ret, on_global, &peer_unit);
    void *ack_cb;
    smartbus_invokeflow_ack_cb ack_fn = on_flow_ack;
    memcpy(&ack_cb, &ack_fn, sizeof ack_cb);          /* the by-name setter takes a void * */
    CHECK(SmartBusIpcCli_SetCallBackFnEx(SMARTBUS_CB_NAME_INVOKEFLOW_ACK, ack_cb) == 0);
    CHECK(SmartBusIpcCli_SetCallBackFnEx("no_such_callback", NULL) == SMARTBUS_ERR_ARGUMENT);

    CHECK(SmartBusIpcCli_CreateConnect("", "", "c-ipc-facade") == 0);
    CHECK(SmartBusIpcCli_CreateConnect("", "", "") == SMARTBUS_ERR_CLI_EXIST);
    if (!wait_for(&connected, 1)) FAIL("not connected (code %d)", connect_code);
    CHECK(connect_ap == ROUTER_UNIT);                  /* the IPC unit is the router's */
    if (!wait_for(&peer_present, 1)) FAIL("peer not reported by global connect");

    /* local checks: not to itself, not the internal command class */
    CHECK(SmartBusIpcCli_SendData(1, 3, ROUTER_UNIT, IPC_ID, IPC_TYPE, "x", 1)
          == SMARTBUS_ERR_SEND_OWN);
    CHECK(SmartBusIpcCli_SendData(1, 0, peer_unit, 1, 11, "x", 1) == SMARTBUS_ERR_CMDTYPE_INVALID);
    CHECK(SmartBusIpcCli_SendData(1, 3, 48, 1, 11, "x", 1) == SMARTBUS_ERR_UNITID_INVALID);

    /* to the NET peer through the router: an empty payload, then text */
    CHECK(SmartBusIpcCli_SendData(7, 3, peer_unit, 1, 11, NULL, 0) == 0);
    CHECK(SmartBusIpcCli_SendData(7, 3, peer_unit, 1, 11, "hello-from-ipc", 14) == 0);
    CHECK(SmartBusIpcCli_SendPing(peer_unit, 1, 11, "iping", 5) == 0);
    if (!wait_for(&ping_answers, 1)) FAIL("no ping answer");

    /* a flow to an IPSC nobody serves, then a notify */
    CHECK(SmartBusIpcCli_RemoteInvokeFlow(16, 9, "proj", "flow", 0, 1000, "[1]")
          == SMARTBUS_ERR_UNITID_INVALID);
    int id = SmartBusIpcCli_RemoteInvokeFlow(ROUTER_UNIT, 9, "proj", "flow", 0, 1000, "[1]");
    CHECK(id > 0);
    CHECK(SmartBusIpcCli_SendNotify(ROUTER_UNIT, 9, "proj", "", 0, 1000, "x")
          == SMARTBUS_ERR_ARGUMENT);
    CHECK(SmartBusIpcCli_SendNotify(ROUTER_UNIT, 9, "proj", "title", 0, 1000, "text") >= 1);
    if (!wait_for(&flow_ack_timeouts, 1)) FAIL("flow ack did not time out");
    if (!wait_for(&flow_ret_timeouts, 1)) FAIL("flow result did not time out");
    report_connected_and_receive(&data_from_peer, first_data);
    CHECK(first_data_src_unit == peer_unit);
    pthread_mutex_lock(&lock);
    CHECK(!bad_event);
    CHECK(flow_ack_timeouts == 1 && flow_ret_timeouts == 1);
    pthread_mutex_unlock(&lock);

    SmartBusIpcCli_Release();
    CHECK(SmartBusIpcCli_SendData(1, 3, peer_unit, 1, 11, "x", 1) == SMARTBUS_ERR_NON_INIT);
    SmartBusIpcCli_Release();                         /* twice: harmless */
    printf("OK\n");
    return 0;
}
