/*
 * smartbus.h - common definitions of the SmartBus C SDK: the packet head,
 * limits, command classes, client types, error codes and callback types.
 *
 * This is our own implementation of the SmartBus client API; names, values
 * and signatures follow the public SmartBus protocol (see docs/ and the
 * protocol specification NET.md / IPC.md).
 */
#ifndef SMARTBUS_H
#define SMARTBUS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* SMARTBUS_STATIC: the SDK is compiled into another binary (the Python
 * extension) and exports nothing, so it can share a process with the
 * vendor's libbusnetcli.so, which exports the same names. */
#if defined(SMARTBUS_STATIC) || defined(_WIN32)
#  define SMARTBUS_API
#else
#  define SMARTBUS_API __attribute__((visibility("default")))
#endif
#if defined(_WIN32)
#  define SMARTBUS_CALL __stdcall
#else
#  define SMARTBUS_CALL
#endif

/* ---- wire constants ---------------------------------------------------- */

#define SMARTBUS_HEAD_FLAG           0x5B15 /* bytes 15 5B on the wire */
#define SMARTBUS_PACKET_HEAD_SIZE    20
#define SMARTBUS_MAX_DATA_SIZE       0x0FFFFFFF

#define MAX_GLOBAL_SMART_NODE        16   /* server units are 0..15 */
#define MIN_SMARTBUS_NETCLI_UNITID   16   /* NET client units are 16..47 */
#define MAX_SMARTBUS_NETCLI_UNITID_NUM 32
#define MAX_SMARTBUS_NODE_NUM        (MAX_GLOBAL_SMART_NODE + MAX_SMARTBUS_NETCLI_UNITID_NUM)
#define MAX_SMARTBUS_IPADDR_SIZE     64

/* command classes (the head's cmdtype) */
#define SMARTBUS_CMDTYPE_INTERNAL    0
#define SMARTBUS_CMDTYPE_SYSTEM      1
#define SMARTBUS_CMDTYPE_FILE        2
#define SMARTBUS_CMDTYPE_USER        3
#define SMARTBUS_CMDTYPE_GUARD_CMD   4
#define SMARTBUS_CMDTYPE_GUARD_FILE  5

/* commands of class INTERNAL (0) */
#define SMARTBUS_CMD_REGISTER        1
#define SMARTBUS_CMD_REGISTER_ACK    2
#define SMARTBUS_CMD_HEARTBEAT       5
#define SMARTBUS_CMD_HEARTBEAT_ACK   6
/* commands of class SYSTEM (1) */
#define SMARTBUS_SYSCMD_PING         7
#define SMARTBUS_SYSCMD_PING_ACK     8
#define SMARTBUS_SYSCMD_GLOBAL_CONNECT       9
#define SMARTBUS_SYSCMD_GLOBAL_CONNECT_ANSWER 10
#define SMARTBUS_SYSCMD_INVOKE_FLOW  11
#define SMARTBUS_SYSCMD_FLOW_RESULT  12
#define SMARTBUS_SYSCMD_FLOW_ACK     13
#define SMARTBUS_SYSCMD_NOTIFY       15

/* client types */
#define SMARTBUS_NODECLI_TYPE_NULL     0
#define SMARTBUS_NODECLI_TYPE_NODE     1
#define SMARTBUS_NODECLI_TYPE_IPSC     2
#define SMARTBUS_NODECLI_TYPE_MONITOR  3
#define SMARTBUS_NODECLI_TYPE_AGENT    4
#define SMARTBUS_NODECLI_TYPE_DB       5

/* global connect status */
#define SMARTBUS_GLOBAL_DISCONNECTED   0
#define SMARTBUS_GLOBAL_CONNECTED      1
#define SMARTBUS_GLOBAL_EXISTING       2

/* flow invocation modes */
#define SMARTBUS_FLOW_MODE_RESULT      0
#define SMARTBUS_FLOW_MODE_NORESULT    1
#define SMARTBUS_FLOW_MODE_RESULT2     2

/* largest flow / notify parameter text (JSON), bytes without the NUL */
#define SMARTBUS_MAX_FLOW_PARAM_SIZE   32768

/* ---- error codes --------------------------------------------------------
 * The one list of the codes: SMARTBUS_ERROR_LIST(X) calls X(name, code,
 * description) for each.  The enum below makes the names (the vendor's)
 * usable from C; smartbus_error_table() (smartbus_ext.h) hands the whole
 * list to the Python binding, whose smartbus.errors is checked against it. */
#define SMARTBUS_ERROR_LIST(X) \
    X(SMARTBUS_ERR_OK,                    0, "no error") \
    X(SMARTBUS_ERR_ARGUMENT,             -1, "invalid argument") \
    X(SMARTBUS_ERR_CONN_NOT_ESTAB,       -2, "connection not established") \
    X(SMARTBUS_ERR_CONNECT_BREAK,        -3, "connection broken") \
    X(SMARTBUS_ERR_AUTHOR,               -4, "authentication failed") \
    X(SMARTBUS_ERR_USER,                 -5, "bad user") \
    X(SMARTBUS_ERR_PWD,                  -6, "bad password") \
    X(SMARTBUS_ERR_BUFF_FULL,            -7, "send queue or table full") \
    X(SMARTBUS_ERR_NODE_NOTEXIST,        -8, "node does not exist") \
    X(SMARTBUS_ERR_CLI_NOTEXIST,         -9, "client does not exist") \
    X(SMARTBUS_ERR_CONNECTED,           -10, "already connected") \
    X(SMARTBUS_ERR_SEND_OWN,            -11, "destination is the sender's own unit") \
    X(SMARTBUS_ERR_UNITID_INVALID,      -12, "invalid unit id") \
    X(SMARTBUS_ERR_CLIENTID_INVALID,    -13, "invalid client id") \
    X(SMARTBUS_ERR_NON_INIT,            -14, "not initialised") \
    X(SMARTBUS_ERR_MAX_DATASIZE,        -15, "data too large") \
    X(SMARTBUS_ERR_CMDTYPE_INVALID,     -16, "invalid cmd_type") \
    X(SMARTBUS_ERR_CLIENTTYPE_INVALID,  -17, "invalid client type") \
    X(SMARTBUS_ERR_SEND_DATA,           -18, "send error") \
    X(SMARTBUS_ERR_MEM_ALLOC,           -19, "memory allocation error") \
    X(SMARTBUS_ERR_ESTABLI_CONNECT,     -20, "TCP connection could not be established") \
    X(SMARTBUS_ERR_CLI_TOOMANY,         -21, "too many clients") \
    X(SMARTBUS_ERR_CLI_EXIST,           -22, "client exists") \
    X(SMARTBUS_ERR_DEST_NONEXIST,       -23, "destination does not exist") \
    X(SMARTBUS_ERR_REGISTERED_REPEAT,   -24, "duplicate registration") \
    X(SMARTBUS_ERR_TIMEOUT,             -25, "timeout") \
    X(SMARTBUS_ERR_OTHER,               -99, "other error")

#define SMARTBUS_ERROR_ENUM_ITEM(name, code, description) name = code,
enum smartbus_error_code { SMARTBUS_ERROR_LIST(SMARTBUS_ERROR_ENUM_ITEM) };

/* ---- packet head ---------------------------------------------------------
 * 20 bytes, packed, little-endian on the wire.  Callbacks receive a pointer
 * to the head exactly as it was received; on a little-endian host the
 * integer fields can be read directly. */
#pragma pack(push, 1)
typedef struct _SMARTBUS_PACKET_HEAD {
    uint16_t head_flag;              /* SMARTBUS_HEAD_FLAG */
    uint8_t  cmd;
    uint8_t  cmdtype;
    uint8_t  src_unit_client_type;
    uint8_t  src_unit_id;
    uint8_t  src_unit_client_id;
    uint8_t  dest_unit_client_type;
    uint8_t  dest_unit_id;
    uint8_t  dest_unit_client_id;
    uint8_t  reserved[2];
    int32_t  packet_size;            /* head + payload + padding */
    int32_t  datalen;                /* payload bytes */
} SMARTBUS_PACKET_HEAD;
#pragma pack(pop)

typedef char smartbus_static_assert_head_size[sizeof(SMARTBUS_PACKET_HEAD) == 20 ? 1 : -1];

/* ---- callback types (shared by the NET and IPC APIs) -------------------- */

/* registration result: ack 0 = connected, otherwise an error code */
typedef void (SMARTBUS_CALL *smartbus_connection_cb)(void *arg, unsigned char local_clientid,
                                                     int accesspoint_unitid, int ack);
/* registered link lost (no other link of that client still registered) */
typedef void (SMARTBUS_CALL *smartbus_disconnect_cb)(void *arg, unsigned char local_clientid);
/* data (and ping / ping answer) received; data is NULL when size is 0 */
typedef void (SMARTBUS_CALL *smartbus_recvdata_cb)(void *arg, unsigned char local_clientid,
                                                   SMARTBUS_PACKET_HEAD *head,
                                                   void *data, int size);
/* flow ack (ack 1 = started, -25 = timeout with head NULL) */
typedef void (SMARTBUS_CALL *smartbus_invokeflow_ack_cb)(void *arg, unsigned char local_clientid,
                                                         SMARTBUS_PACKET_HEAD *head,
                                                         const char *projectid, int invoke_id,
                                                         int ack, const char *msg);
/* flow result (ret 1 = result, -25 = timeout with head NULL) */
typedef void (SMARTBUS_CALL *smartbus_invokeflow_ret_cb)(void *arg, unsigned char local_clientid,
                                                         SMARTBUS_PACKET_HEAD *head,
                                                         const char *projectid, int invoke_id,
                                                         int ret, const char *param);
/* some client on the bus connected (1), disconnected (0) or is present (2).
 * Six values as the libraries really pass them (the access point included). */
typedef void (SMARTBUS_CALL *smartbus_global_connect_cb)(void *arg, char unitid, char clientid,
                                                         char clienttype, char accesspoint_unitid,
                                                         char status, const char *add_info);
/* trace output */
typedef void (SMARTBUS_CALL *smartbus_trace_str_cb)(const char *msg);
typedef void (SMARTBUS_CALL *smartbus_trace_cb)(const char *fmt, ...);

/* names accepted by SetCallBackFnEx */
#define SMARTBUS_CB_NAME_CONNECTION      "smartbus_connection_cb"
#define SMARTBUS_CB_NAME_RECVDATA        "smartbus_recvdata_cb"
#define SMARTBUS_CB_NAME_DISCONNECT      "smartbus_disconnect_cb"
#define SMARTBUS_CB_NAME_INVOKEFLOW_RET  "smartbus_invokeflow_ret_cb"
#define SMARTBUS_CB_NAME_INVOKEFLOW_ACK  "smartbus_invokeflow_ack_cb"
#define SMARTBUS_CB_NAME_GLOBAL_CONNECT  "smartbus_global_connect_cb"

#ifdef __cplusplus
}
#endif

#endif /* SMARTBUS_H */
