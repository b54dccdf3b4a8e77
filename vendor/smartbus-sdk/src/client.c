/*
 * client.c - a client's life: checks its configuration and creates it,
 * frees it (after the engine has let go of it), and answers its getters.
 * What a client does is in engine.c, link.c, flows.c and sendq.c (see
 * client_internal.h).
 */
#include "platform.h"
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "smartbus_ipccli_interface.h"

#define DEFAULT_MAX_MSGS   100000
#define DEFAULT_MAX_BYTES  ((size_t)64 << 20)

int smartbus_client_new(const smartbus_client_config *cfg, smartbus_sink *sink,
                        smartbus_client **out)
{
    *out = NULL;
    if (!cfg || !sink) return SMARTBUS_ERR_ARGUMENT;
    if (cfg->client_id < 0 || cfg->client_id > 255) return SMARTBUS_ERR_CLIENTID_INVALID;
    if (cfg->client_type < 0 || cfg->client_type > 255) return SMARTBUS_ERR_CLIENTTYPE_INVALID;
    smartbus_client *c = calloc(1, sizeof *c);
    if (!c) return SMARTBUS_ERR_MEM_ALLOC;
    c->kind = cfg->kind;
    c->client_id = cfg->client_id;
    c->client_type = cfg->client_type;
    c->sink = sink;
    c->active = -1;
    c->ap_unit = -1;
    c->max_bytes = cfg->max_send_bytes ? cfg->max_send_bytes : DEFAULT_MAX_BYTES;
    c->max_msgs = cfg->max_send_msgs > 0 ? cfg->max_send_msgs : DEFAULT_MAX_MSGS;
    sb_copy_str(c->user, sizeof c->user, cfg->user);
    sb_copy_str(c->password, sizeof c->password, cfg->password);
    sb_copy_str(c->info, sizeof c->info, cfg->info);
    for (int i = 0; i < 2; i++) {
        c->links[i].index = i;
        c->links[i].fd = -1;
    }
    int rc = 0;
    if (cfg->kind == SMARTBUS_KIND_NET) {
        c->unit_id = cfg->unit_id;
        if (cfg->unit_id < MIN_SMARTBUS_NETCLI_UNITID || cfg->unit_id >= MAX_SMARTBUS_NODE_NUM)
            rc = SMARTBUS_ERR_UNITID_INVALID;
        else if (!cfg->master_ip || !*cfg->master_ip ||
                 strlen(cfg->master_ip) >= MAX_SMARTBUS_IPADDR_SIZE ||
                 cfg->master_port <= 0 || cfg->master_port > 65535)
            rc = SMARTBUS_ERR_ARGUMENT;
        else {
            sb_copy_str(c->links[0].host, MAX_SMARTBUS_IPADDR_SIZE, cfg->master_ip);
            c->links[0].port = cfg->master_port;
            c->nlinks = 1;
            if (cfg->slave_ip && *cfg->slave_ip && cfg->slave_port > 0 &&
                cfg->slave_port < 0xFFFF) {
                if (strlen(cfg->slave_ip) >= MAX_SMARTBUS_IPADDR_SIZE) rc = SMARTBUS_ERR_ARGUMENT;
                sb_copy_str(c->links[1].host, MAX_SMARTBUS_IPADDR_SIZE, cfg->slave_ip);
                c->links[1].port = cfg->slave_port;
                c->nlinks = 2;
            }
        }
    } else if (cfg->kind == SMARTBUS_KIND_IPC) {
        c->unit_id = -1;
        if (cfg->client_type < 2) rc = SMARTBUS_ERR_CLIENTTYPE_INVALID;
        const char *path = cfg->ipc_path;
        if (!path || !*path) path = getenv(SMARTBUS_IPC_PATH_ENV);
        if (!path || !*path) path = SMARTBUS_IPC_DEFAULT_PATH;
        if (strlen(path) >= sizeof c->ipc_path) rc = SMARTBUS_ERR_ARGUMENT;
        else sb_copy_str(c->ipc_path, sizeof c->ipc_path, path);
        c->nlinks = 1;
    } else {
        rc = SMARTBUS_ERR_ARGUMENT;
    }
    if (rc != 0) {
        free(c);
        return rc;
    }
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return 0;
}

void smartbus_client_free(smartbus_client *c)
{
    if (!c) return;
    /* the parent's (fork): leaked; or freed later by the I/O thread */
    if (sb_engine_detach(c) == 0) sb_client_destroy(c);
}

void sb_client_destroy(smartbus_client *c)
{
    for (int i = 0; i < 2; i++) {
        sb_buf_free(&c->links[i].rbuf);
        sb_buf_free(&c->links[i].wbuf);
    }
    sb_buf_free(&c->sendq[0]);
    sb_buf_free(&c->sendq[1]);
    sb_buf_free(&c->resend);
    sb_buf_free(&c->direct_rest);
    free(c->flows);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int smartbus_client_unit_id(smartbus_client *c) { return sb_load(&c->unit_id); }
int smartbus_client_ap_unit_id(smartbus_client *c) { return sb_load(&c->ap_unit); }
int smartbus_client_connected(smartbus_client *c) { return sb_load(&c->registered) > 0; }

void smartbus_client_get_stats(smartbus_client *c, smartbus_client_stats *st)
{
    sb_sendq_lock(c);
    /* field by field: the I/O thread adds to recv_* without the lock, so a
     * copy of the whole struct would read them racily */
    st->sent_msgs = c->st.sent_msgs;
    st->sent_bytes = c->st.sent_bytes;
    st->send_full = c->st.send_full;
    st->direct_msgs = c->st.direct_msgs;
    st->recv_msgs = sb_relaxed(&c->st.recv_msgs);
    st->recv_bytes = sb_relaxed(&c->st.recv_bytes);
    st->queued_msgs = (uint64_t)sb_sendq_count(c);
    st->queued_bytes = c->sendq[c->half].len;
    sb_sendq_unlock(c);
}
