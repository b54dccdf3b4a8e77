/*
 * smartbus_ipccli_interface.h - the SmartBus IPC client API (Unix-domain
 * socket to the SmartBus server on the same host).  A process-wide
 * singleton: one IPC identity per process; its unit id is learnt from the
 * server's registration answer.
 *
 * The socket path defaults to /tmp/smartbus_ipc.  Extension: the
 * environment variable SMARTBUS_IPC_PATH, or SmartBusIpcCli_SetPath(),
 * selects another one.
 */
#ifndef SMARTBUS_IPCCLI_INTERFACE_H
#define SMARTBUS_IPCCLI_INTERFACE_H

#include "smartbus.h"

#ifdef __cplusplus
extern "C" {
#endif

/* the socket path when none is set, and the environment variable that
 * overrides it (the client, the router runner and the binding use these) */
#define SMARTBUS_IPC_DEFAULT_PATH "/tmp/smartbus_ipc"
#define SMARTBUS_IPC_PATH_ENV     "SMARTBUS_IPC_PATH"

/* clienttype >= 2 (else -17), clientid 0..255 (else -13) */
SMARTBUS_API int  SMARTBUS_CALL SmartBusIpcCli_Init(int clienttype, int clientid);
SMARTBUS_API void SMARTBUS_CALL SmartBusIpcCli_Release(void);

SMARTBUS_API void SMARTBUS_CALL SmartBusIpcCli_SetCallBackFn(
    smartbus_connection_cb client_connect_cb,
    smartbus_recvdata_cb recv_cb,
    smartbus_disconnect_cb disconnect_cb,
    smartbus_invokeflow_ret_cb invokeflow_ret_cb,
    smartbus_global_connect_cb global_connect_cb,
    void *arg);
SMARTBUS_API void SMARTBUS_CALL SmartBusIpcCli_SetCallBackFnArg(void *arg);
SMARTBUS_API int  SMARTBUS_CALL SmartBusIpcCli_SetCallBackFnEx(const char *name, void *func);
SMARTBUS_API void SMARTBUS_CALL SmartBusIpcCli_SetTrace(smartbus_trace_cb trace,
                                                        smartbus_trace_cb trace_err);
SMARTBUS_API void SMARTBUS_CALL SmartBusIpcCli_SetTraceStr(smartbus_trace_str_cb trace,
                                                           smartbus_trace_str_cb trace_err);

/* Extension: socket path used by the next CreateConnect (NULL: default). */
SMARTBUS_API int  SMARTBUS_CALL SmartBusIpcCli_SetPath(const char *path);

SMARTBUS_API int SMARTBUS_CALL SmartBusIpcCli_CreateConnect(
    const char *author_username, const char *author_pwd, const char *add_info);

SMARTBUS_API int SMARTBUS_CALL SmartBusIpcCli_SendData(
    unsigned char cmd, unsigned char cmdtype, int dst_unitid, int dst_clientid,
    int dst_clienttype, const void *data, int size);

SMARTBUS_API int SMARTBUS_CALL SmartBusIpcCli_SendPing(
    int dst_unitid, int dst_clientid, int dst_clienttype, const void *data, int size);

SMARTBUS_API int SMARTBUS_CALL SmartBusIpcCli_RemoteInvokeFlow(
    int server_unitid, int processindex, const char *projectid, const char *flowid,
    int mode, int timeout, const char *in_valuelist);

SMARTBUS_API int SMARTBUS_CALL SmartBusIpcCli_SendNotify(
    int server_unitid, int processindex, const char *projectid, const char *title,
    int mode, int expires, const char *param);

#ifdef __cplusplus
}
#endif

#endif /* SMARTBUS_IPCCLI_INTERFACE_H */
