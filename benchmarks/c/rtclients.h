/*
 * rtclients.h - who the router benchmarks' clients are (rtload.c,
 * rtturn.c): client k is NET unit 16 + k / 256, client id k % 256, type
 * 11, so 8,192 clients fill units 16..47; its head as a sender and its
 * registration, encoded with the SDK's codec (smartbus_wire.h).  Static
 * inline: each program takes what it uses.
 */
#ifndef BENCH_RTCLIENTS_H
#define BENCH_RTCLIENTS_H

#include <stdio.h>
#include <string.h>

#include "smartbus_wire.h"

#define RT_CLIENT_TYPE  11
#define RT_FIRST_UNIT   16
#define RT_MAX_CLIENTS  (32 * 256)      /* units 16..47 x ids 0..255 */

static inline uint8_t rt_unit(int k)
{
    return (uint8_t)(RT_FIRST_UNIT + k / 256);
}

static inline uint8_t rt_client(int k)
{
    return (uint8_t)(k % 256);
}

/* a packet head from client k to client `to` (-1: no destination) */
static inline sbw_head rt_head(int k, int to, uint8_t cmd, uint8_t cmdtype)
{
    sbw_head h = { .cmd = cmd, .cmdtype = cmdtype, .src_type = RT_CLIENT_TYPE,
                   .src_unit = rt_unit(k), .src_client = rt_client(k) };
    if (to >= 0) {
        h.dst_type = RT_CLIENT_TYPE;
        h.dst_unit = rt_unit(to);
        h.dst_client = rt_client(to);
    }
    return h;
}

/* client k's registration (NET layout A) in pkt: its size, <= 0 on error */
static inline int rt_registration(uint8_t pkt[SBW_REG_NET_A_SIZE], int k, const char *info)
{
    sbw_register reg;
    memset(&reg, 0, sizeof reg);
    reg.layout = SBW_REG_NET_A;
    reg.client_type = RT_CLIENT_TYPE;
    reg.unit_id = rt_unit(k);
    reg.client_id = rt_client(k);
    reg.ap_unit = -1;
    if (info) snprintf(reg.info, sizeof reg.info, "%s", info);
    return sbw_put_register(pkt, SBW_REG_NET_A_SIZE, &reg);
}

#endif /* BENCH_RTCLIENTS_H */
