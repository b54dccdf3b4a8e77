/*
 * smartbus_netcli_interface.h - the SmartBus NET client API (TCP to a
 * SmartBus server).  A process-wide facade: one unit id per process, up to
 * 256 local clients addressed by their local client id.
 *
 * Return codes are the SMARTBUS_ERR_* values of smartbus.h.  Callbacks run
 * on the SDK's callback thread, never on the caller's thread and never on
 * the I/O thread.
 */
#ifndef SMARTBUS_NETCLI_INTERFACE_H
#define SMARTBUS_NETCLI_INTERFACE_H

#include "smartbus.h"

#ifdef __cplusplus
extern "C" {
#endif

/* unitid 16..47 (else -12).  A second Init returns 0. */
SMARTBUS_API int  SMARTBUS_CALL SmartBusNetCli_Init(unsigned char unitid);
/* options is accepted for compatibility ("Key=1;..."); unknown keys are ignored */
SMARTBUS_API int  SMARTBUS_CALL SmartBusNetCli_InitEx(unsigned char unitid, const char *options);
/* closes every connection, stops the threads; Init may be called again */
SMARTBUS_API void SMARTBUS_CALL SmartBusNetCli_Release(void);

SMARTBUS_API void SMARTBUS_CALL SmartBusNetCli_SetCallBackFn(
    smartbus_connection_cb client_connect_cb,
    smartbus_recvdata_cb recv_cb,
    smartbus_disconnect_cb disconnect_cb,
    smartbus_invokeflow_ret_cb invokeflow_ret_cb,
    smartbus_global_connect_cb global_connect_cb,
    void *arg);
SMARTBUS_API void SMARTBUS_CALL SmartBusNetCli_SetCallBackFnArg(void *arg);
/* name: one of the SMARTBUS_CB_NAME_* strings; returns 0 or -1 */
SMARTBUS_API int  SMARTBUS_CALL SmartBusNetCli_SetCallBackFnEx(const char *name, void *func);
SMARTBUS_API void SMARTBUS_CALL SmartBusNetCli_SetTrace(smartbus_trace_cb trace,
                                                        smartbus_trace_cb trace_err);
SMARTBUS_API void SMARTBUS_CALL SmartBusNetCli_SetTraceStr(smartbus_trace_str_cb trace,
                                                           smartbus_trace_str_cb trace_err);

/* Creates local client `local_clientid` and starts connecting (returns at
 * once).  slaverip NULL/"" or slaverport 0xFFFF: no slave server. */
SMARTBUS_API int SMARTBUS_CALL SmartBusNetCli_CreateConnect(
    unsigned char local_clientid, int local_clienttype,
    const char *masterip, unsigned short masterport,
    const char *slaverip, unsigned short slaverport,
    const char *author_username, const char *author_pwd, const char *add_info);

SMARTBUS_API int SMARTBUS_CALL SmartBusNetCli_SendData(
    unsigned char local_clientid, unsigned char cmd, unsigned char cmdtype,
    int dst_unitid, int dst_clientid, int dst_clienttype, const void *data, int size);

SMARTBUS_API int SMARTBUS_CALL SmartBusNetCli_SendPing(
    unsigned char local_clientid, int dst_unitid, int dst_clientid, int dst_clienttype,
    const void *data, int size);

/* returns the invoke id (> 0) or an error code (< 0); timeout in ms */
SMARTBUS_API int SMARTBUS_CALL SmartBusNetCli_RemoteInvokeFlow(
    unsigned char local_clientid, int server_unitid, int processindex,
    const char *projectid, const char *flowid, int mode, int timeout,
    const char *in_valuelist);

/* returns the notify id (> 0) or an error code (< 0); expires in ms */
SMARTBUS_API int SMARTBUS_CALL SmartBusNetCli_SendNotify(
    unsigned char local_clientid, int server_unitid, int processindex,
    const char *projectid, const char *title, int mode, int expires,
    const char *param);

#ifdef __cplusplus
}
#endif

#endif /* SMARTBUS_NETCLI_INTERFACE_H */
