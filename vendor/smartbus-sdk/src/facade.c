/*
 * facade.c - the vendor-compatible C API: SmartBusNetCli_* (process-wide,
 * up to 256 local clients on one unit) and SmartBusIpcCli_* (one IPC
 * client per process), built on the client engine and event sinks of
 * smartbus_ext.h.  Each facade owns one sink; its callback thread calls
 * the vendor-style callbacks one event at a time.
 */
#include "platform.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_internal.h"
#include "smartbus_ipccli_interface.h"
#include "smartbus_netcli_interface.h"

#define SINK_FREE_TIMEOUT_MS 5000

/* ---- the facades and their callbacks ---------------------------------------- */

typedef struct callbacks {
    smartbus_connection_cb connection;
    smartbus_recvdata_cb recvdata;
    smartbus_disconnect_cb disconnect;
    smartbus_invokeflow_ret_cb flow_ret;
    smartbus_invokeflow_ack_cb flow_ack;
    smartbus_global_connect_cb global_connect;
    smartbus_trace_cb trace, trace_err;
    smartbus_trace_str_cb trace_str, trace_err_str;
    void *arg;
} callbacks;

/* One facade: NET (clients by local client id, one unit) or IPC (one
 * client, the identity given to Init). */
typedef struct facade {
    pthread_mutex_t lock;
    int kind;                          /* SMARTBUS_KIND_NET / _IPC */
    int inited;                        /* written under lock, read atomically */
    smartbus_sink *sink;
    callbacks cb;
    int unit;                          /* NET: the unit, -1 when not initialised (atomic) */
    int client_type, client_id;        /* IPC: from Init */
    char *ipc_path;                    /* IPC: from SetPath, NULL = default */
    int nslots;                        /* clients[]: 256 (NET), 1 (IPC) */
    smartbus_client *clients[256];     /* atomic pointers */
} facade;

static facade net_facade = { PTHREAD_MUTEX_INITIALIZER, SMARTBUS_KIND_NET, 0, NULL, { 0 },
                             -1, 0, 0, NULL, 256, { 0 } };
static facade ipc_facade = { PTHREAD_MUTEX_INITIALIZER, SMARTBUS_KIND_IPC, 0, NULL, { 0 },
                             -1, 0, 0, NULL, 1, { 0 } };

static void dispatch(void *arg, const smartbus_event *evs, int count)
{
    facade *f = arg;
    callbacks cb;
    if (count <= 0) return;            /* idle notification */
    pthread_mutex_lock(&f->lock);
    cb = f->cb;                        /* callbacks may be changed from a callback */
    pthread_mutex_unlock(&f->lock);
    for (int i = 0; i < count; i++) {
        const smartbus_event *e = &evs[i];
        unsigned char id = (unsigned char)e->client_id;
        SMARTBUS_PACKET_HEAD *head = (SMARTBUS_PACKET_HEAD *)(uintptr_t)e->head;
        switch (e->type) {
        case SMARTBUS_EV_CONNECT:
            if (cb.connection) cb.connection(cb.arg, id, e->unit_id, e->code);
            break;
        case SMARTBUS_EV_DISCONNECT:
            if (cb.disconnect) cb.disconnect(cb.arg, id);
            break;
        case SMARTBUS_EV_DATA:
            if (cb.recvdata) cb.recvdata(cb.arg, id, head, (void *)(uintptr_t)e->data, e->size);
            break;
        case SMARTBUS_EV_FLOW_ACK:
            if (cb.flow_ack)
                cb.flow_ack(cb.arg, id, head, e->project_id, e->invoke_id, e->code, e->text);
            break;
        case SMARTBUS_EV_FLOW_RESULT:
            if (cb.flow_ret)
                cb.flow_ret(cb.arg, id, head, e->project_id, e->invoke_id, e->code, e->text);
            break;
        case SMARTBUS_EV_GLOBAL_CONNECT:
            if (cb.global_connect)
                cb.global_connect(cb.arg, (char)e->unit_id, (char)e->g_client_id,
                                  (char)e->g_client_type, (char)e->g_ap_unit_id, (char)e->code,
                                  e->text);
            break;
        case SMARTBUS_EV_TRACE:
            if (e->code) {
                if (cb.trace_err_str) cb.trace_err_str(e->text);
                if (cb.trace_err) cb.trace_err("%s", e->text);
            } else {
                if (cb.trace_str) cb.trace_str(e->text);
                if (cb.trace) cb.trace("%s", e->text);
            }
            break;
        default:
            break;
        }
    }
}

static void set_callbacks(facade *f, smartbus_connection_cb connection, smartbus_recvdata_cb recv,
                          smartbus_disconnect_cb disconnect, smartbus_invokeflow_ret_cb flow_ret,
                          smartbus_global_connect_cb global_connect, void *arg)
{
    pthread_mutex_lock(&f->lock);
    f->cb.connection = connection;
    f->cb.recvdata = recv;
    f->cb.disconnect = disconnect;
    f->cb.flow_ret = flow_ret;
    f->cb.global_connect = global_connect;
    f->cb.arg = arg;
    pthread_mutex_unlock(&f->lock);
}

static void set_arg(facade *f, void *arg)
{
    pthread_mutex_lock(&f->lock);
    f->cb.arg = arg;
    pthread_mutex_unlock(&f->lock);
}

/* by-name setter: any callback, by its SMARTBUS_CB_NAME_* name */
static int set_callback_by_name(facade *f, const char *name, void *func)
{
    if (!name) return SMARTBUS_ERR_ARGUMENT;
    int rc = 0;
    pthread_mutex_lock(&f->lock);
    callbacks *cb = &f->cb;
    /* object pointer to function pointer: memcpy, as dlsym users do */
    if (!strcmp(name, SMARTBUS_CB_NAME_CONNECTION)) memcpy(&cb->connection, &func, sizeof func);
    else if (!strcmp(name, SMARTBUS_CB_NAME_RECVDATA)) memcpy(&cb->recvdata, &func, sizeof func);
    else if (!strcmp(name, SMARTBUS_CB_NAME_DISCONNECT)) memcpy(&cb->disconnect, &func, sizeof func);
    else if (!strcmp(name, SMARTBUS_CB_NAME_INVOKEFLOW_RET)) memcpy(&cb->flow_ret, &func, sizeof func);
    else if (!strcmp(name, SMARTBUS_CB_NAME_INVOKEFLOW_ACK)) memcpy(&cb->flow_ack, &func, sizeof func);
    else if (!strcmp(name, SMARTBUS_CB_NAME_GLOBAL_CONNECT))
        memcpy(&cb->global_connect, &func, sizeof func);
    else rc = SMARTBUS_ERR_ARGUMENT;
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static void set_trace(facade *f, smartbus_trace_cb t, smartbus_trace_cb te)
{
    pthread_mutex_lock(&f->lock);
    f->cb.trace = t;
    f->cb.trace_err = te;
    pthread_mutex_unlock(&f->lock);
}

static void set_trace_str(facade *f, smartbus_trace_str_cb t, smartbus_trace_str_cb te)
{
    pthread_mutex_lock(&f->lock);
    f->cb.trace_str = t;
    f->cb.trace_err_str = te;
    pthread_mutex_unlock(&f->lock);
}

/* ---- life --------------------------------------------------------------- */

/* Init: creates the sink on the first call; later calls change nothing. */
static int facade_init(facade *f, int unit, int client_type, int client_id)
{
    int rc = 0;
    pthread_mutex_lock(&f->lock);
    if (!f->inited) {
        f->sink = smartbus_sink_new(dispatch, f, 0);
        if (!f->sink) {
            rc = SMARTBUS_ERR_MEM_ALLOC;
        } else {
            sb_store(&f->inited, 1);           /* read unlocked by ipc_get() */
            f->client_type = client_type;
            f->client_id = client_id;
            sb_store(&f->unit, unit);
        }
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

/* Release: closes every client, then the sink; Init may be called again. */
static void facade_release(facade *f)
{
    pthread_mutex_lock(&f->lock);
    if (!f->inited) {
        pthread_mutex_unlock(&f->lock);
        return;
    }
    sb_store(&f->inited, 0);
    sb_store(&f->unit, -1);
    smartbus_client *cs[256];
    for (int i = 0; i < f->nslots; i++) cs[i] = sb_xchg(&f->clients[i], NULL);
    smartbus_sink *sink = f->sink;
    f->sink = NULL;
    pthread_mutex_unlock(&f->lock);
    for (int i = 0; i < f->nslots; i++) smartbus_client_free(cs[i]);
    smartbus_sink_free(sink, SINK_FREE_TIMEOUT_MS);
}

/* CreateConnect: a client in clients[slot], started.  cfg has what the
 * caller knows; the facade adds its own part.  not_inited: the code to
 * answer before Init (the vendor libraries differ). */
static int facade_connect(facade *f, int slot, smartbus_client_config *cfg, int not_inited)
{
    pthread_mutex_lock(&f->lock);
    int rc = 0;
    if (!f->inited) {
        rc = not_inited;
    } else if (f->clients[slot]) {
        rc = SMARTBUS_ERR_CLI_EXIST;
    } else {
        cfg->kind = f->kind;
        if (f->kind == SMARTBUS_KIND_NET) {
            cfg->unit_id = f->unit;
        } else {
            cfg->client_type = f->client_type;
            cfg->client_id = f->client_id;
            cfg->ipc_path = f->ipc_path;
        }
        smartbus_client *c;
        rc = smartbus_client_new(cfg, f->sink, &c);
        if (rc == 0) rc = smartbus_client_start(c);
        if (rc == 0) sb_store(&f->clients[slot], c);
        else smartbus_client_free(c);
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

/* the credentials and add_info of a CreateConnect */
static smartbus_client_config connect_config(const char *user, const char *password,
                                             const char *info)
{
    smartbus_client_config cfg = { .user = user, .password = password, .info = info };
    return cfg;
}

/* ---- callback setters: the same for both facades ----------------------------- */

/* The vendor API has the same five setters under both prefixes: one
 * definition, expanded once per facade. */

#define FACADE_SETTERS(api, f)                                                                     \
    void api##_SetCallBackFn(smartbus_connection_cb connection, smartbus_recvdata_cb recv,         \
                             smartbus_disconnect_cb disconnect,                                    \
                             smartbus_invokeflow_ret_cb flow_ret,                                  \
                             smartbus_global_connect_cb global_connect, void *arg)                 \
    {                                                                                              \
        set_callbacks(&f, connection, recv, disconnect, flow_ret, global_connect, arg);            \
    }                                                                                              \
    void api##_SetCallBackFnArg(void *arg) { set_arg(&f, arg); }                                   \
    int api##_SetCallBackFnEx(const char *name, void *func)                                        \
    {                                                                                              \
        return set_callback_by_name(&f, name, func);                                               \
    }                                                                                              \
    void api##_SetTrace(smartbus_trace_cb t, smartbus_trace_cb te) { set_trace(&f, t, te); }       \
    void api##_SetTraceStr(smartbus_trace_str_cb t, smartbus_trace_str_cb te)                      \
    {                                                                                              \
        set_trace_str(&f, t, te);                                                                  \
    }

FACADE_SETTERS(SmartBusNetCli, net_facade)
FACADE_SETTERS(SmartBusIpcCli, ipc_facade)

/* ---- NET ---------------------------------------------------------------- */

int SmartBusNetCli_Init(unsigned char unitid)
{
    if (unitid < MIN_SMARTBUS_NETCLI_UNITID || unitid >= MAX_SMARTBUS_NODE_NUM)
        return SMARTBUS_ERR_UNITID_INVALID;
    return facade_init(&net_facade, unitid, 0, 0);
}

int SmartBusNetCli_InitEx(unsigned char unitid, const char *options)
{
    (void)options;     /* NewLoop / TraceHeartbeat / OpenSignalProcess: nothing to do here */
    return SmartBusNetCli_Init(unitid);
}

void SmartBusNetCli_Release(void)
{
    facade_release(&net_facade);
}

int SmartBusNetCli_CreateConnect(unsigned char local_clientid, int local_clienttype,
                                 const char *masterip, unsigned short masterport,
                                 const char *slaverip, unsigned short slaverport,
                                 const char *author_username, const char *author_pwd,
                                 const char *add_info)
{
    smartbus_client_config cfg = connect_config(author_username, author_pwd, add_info);
    cfg.client_id = local_clientid;
    cfg.client_type = local_clienttype;
    cfg.master_ip = masterip;
    cfg.master_port = masterport;
    cfg.slave_ip = slaverip;
    cfg.slave_port = slaverport;
    return facade_connect(&net_facade, local_clientid, &cfg, SMARTBUS_ERR_NON_INIT);
}

/* Finds a local client.  For an unknown one, returns what the vendor
 * library checks first (NET.md §6.1 order), then -9.  cmdtype < 0: not data. */
static int net_lookup(unsigned char id, int dst_unitid, int size, int cmdtype,
                      smartbus_client **out)
{
    int unit = sb_load(&net_facade.unit);
    if (unit < 0) return SMARTBUS_ERR_NON_INIT;
    *out = sb_load(&net_facade.clients[id]);
    if (*out) return 0;
    int rc = sb_check_unit_and_size(dst_unitid, size);
    if (rc) return rc;
    if (cmdtype == SMARTBUS_CMDTYPE_INTERNAL) return SMARTBUS_ERR_CMDTYPE_INVALID;
    if (dst_unitid == unit) return SMARTBUS_ERR_SEND_OWN;
    return SMARTBUS_ERR_CLI_NOTEXIST;
}

/* the local client of a flow invocation or notify to server_unitid */
static int net_flow_lookup(unsigned char id, int server_unitid, smartbus_client **out)
{
    if (sb_load(&net_facade.unit) < 0) return SMARTBUS_ERR_NON_INIT;
    if (server_unitid < 0 || server_unitid >= MAX_GLOBAL_SMART_NODE)
        return SMARTBUS_ERR_UNITID_INVALID;
    if (net_lookup(id, 0, 0, -1, out) != 0) return SMARTBUS_ERR_CLI_NOTEXIST;
    return 0;
}

int SmartBusNetCli_SendData(unsigned char local_clientid, unsigned char cmd, unsigned char cmdtype,
                            int dst_unitid, int dst_clientid, int dst_clienttype, const void *data,
                            int size)
{
    smartbus_client *c;
    int rc = net_lookup(local_clientid, dst_unitid, size, cmdtype, &c);
    if (rc) return rc;
    return smartbus_client_send(c, cmd, cmdtype, dst_unitid, dst_clientid, dst_clienttype, data,
                                size);
}

int SmartBusNetCli_SendPing(unsigned char local_clientid, int dst_unitid, int dst_clientid,
                            int dst_clienttype, const void *data, int size)
{
    smartbus_client *c;
    int rc = net_lookup(local_clientid, dst_unitid, size, -1, &c);
    if (rc) return rc;
    return smartbus_client_ping(c, dst_unitid, dst_clientid, dst_clienttype, data, size);
}

int SmartBusNetCli_RemoteInvokeFlow(unsigned char local_clientid, int server_unitid,
                                    int processindex, const char *projectid, const char *flowid,
                                    int mode, int timeout, const char *in_valuelist)
{
    smartbus_client *c;
    int rc = net_flow_lookup(local_clientid, server_unitid, &c);
    if (rc) return rc;
    return smartbus_client_invoke_flow(c, server_unitid, processindex, projectid, flowid, mode,
                                       timeout, in_valuelist, -1);
}

int SmartBusNetCli_SendNotify(unsigned char local_clientid, int server_unitid, int processindex,
                              const char *projectid, const char *title, int mode, int expires,
                              const char *param)
{
    smartbus_client *c;
    int rc = net_flow_lookup(local_clientid, server_unitid, &c);
    if (rc) return rc;
    return smartbus_client_notify(c, server_unitid, processindex, projectid, title, mode, expires,
                                  param, -1);
}

/* ---- IPC ---------------------------------------------------------------- */

int SmartBusIpcCli_Init(int clienttype, int clientid)
{
    if (clienttype < 2 || clienttype > 255) return SMARTBUS_ERR_CLIENTTYPE_INVALID;
    if (clientid < 0 || clientid > 255) return SMARTBUS_ERR_CLIENTID_INVALID;
    return facade_init(&ipc_facade, -1, clienttype, clientid);
}

void SmartBusIpcCli_Release(void)
{
    facade_release(&ipc_facade);
}

int SmartBusIpcCli_SetPath(const char *path)
{
    char *copy = NULL;
    if (path && *path) {
        copy = strdup(path);
        if (!copy) return SMARTBUS_ERR_MEM_ALLOC;
    }
    pthread_mutex_lock(&ipc_facade.lock);
    free(ipc_facade.ipc_path);
    ipc_facade.ipc_path = copy;
    pthread_mutex_unlock(&ipc_facade.lock);
    return 0;
}

int SmartBusIpcCli_CreateConnect(const char *author_username, const char *author_pwd,
                                 const char *add_info)
{
    smartbus_client_config cfg = connect_config(author_username, author_pwd, add_info);
    /* the vendor library returns -1 before Init */
    return facade_connect(&ipc_facade, 0, &cfg, SMARTBUS_ERR_ARGUMENT);
}

/* the IPC client, or NULL with the code to return */
static smartbus_client *ipc_get(int *rc)
{
    smartbus_client *c = sb_load(&ipc_facade.clients[0]);
    if (c) *rc = 0;
    else *rc = sb_load(&ipc_facade.inited) ? SMARTBUS_ERR_CONN_NOT_ESTAB : SMARTBUS_ERR_NON_INIT;
    return c;
}

int SmartBusIpcCli_SendData(unsigned char cmd, unsigned char cmdtype, int dst_unitid,
                            int dst_clientid, int dst_clienttype, const void *data, int size)
{
    int rc;
    smartbus_client *c = ipc_get(&rc);
    return c ? smartbus_client_send(c, cmd, cmdtype, dst_unitid, dst_clientid, dst_clienttype,
                                    data, size)
             : rc;
}

int SmartBusIpcCli_SendPing(int dst_unitid, int dst_clientid, int dst_clienttype,
                            const void *data, int size)
{
    int rc;
    smartbus_client *c = ipc_get(&rc);
    return c ? smartbus_client_ping(c, dst_unitid, dst_clientid, dst_clienttype, data, size) : rc;
}

int SmartBusIpcCli_RemoteInvokeFlow(int server_unitid, int processindex, const char *projectid,
                                    const char *flowid, int mode, int timeout,
                                    const char *in_valuelist)
{
    int rc;
    smartbus_client *c = ipc_get(&rc);
    return c ? smartbus_client_invoke_flow(c, server_unitid, processindex, projectid, flowid, mode,
                                           timeout, in_valuelist, -1)
             : rc;
}

int SmartBusIpcCli_SendNotify(int server_unitid, int processindex, const char *projectid,
                              const char *title, int mode, int expires, const char *param)
{
    int rc;
    smartbus_client *c = ipc_get(&rc);
    return c ? smartbus_client_notify(c, server_unitid, processindex, projectid, title, mode,
                                      expires, param, -1)
             : rc;
}
