# Part of smartbus._native: the constants the Python layer shares with the
# C SDK, read from the SDK's headers so that each has one source.

def sdk_error_table():
    """The SDK's error codes (smartbus.h): a list of (code, name, description)."""
    cdef int n = 0
    cdef const smartbus_error_info *t = smartbus_error_table(&n)
    return [(t[i].code, t[i].name.decode("ascii"), t[i].description.decode("ascii"))
            for i in range(n)]


cdef extern from "<sys/un.h>" nogil:
    struct sockaddr_un:
        char sun_path[1]          # only its size is used: C's, not this one

#: client kinds of smartbus_client_config (the _open() argument)
KIND_NET = SMARTBUS_KIND_NET
KIND_IPC = SMARTBUS_KIND_IPC
#: the longest flow parameter / result / notification text, in bytes
MAX_FLOW_PARAM_BYTES = SMARTBUS_MAX_FLOW_PARAM_SIZE
#: the launch_flow mode whose flow sends no result
FLOW_MODE_NO_RESULT = SMARTBUS_FLOW_MODE_NORESULT
#: where IPC clients and the router's IPC listener find each other by default
IPC_DEFAULT_PATH = (<bytes>SMARTBUS_IPC_DEFAULT_PATH).decode()
#: the environment variable that overrides IPC_DEFAULT_PATH (read by the SDK)
IPC_PATH_ENV = (<bytes>SMARTBUS_IPC_PATH_ENV).decode()
#: the longest IPC socket path: a Unix socket address with its NUL
MAX_IPC_PATH_BYTES = sizeof((<sockaddr_un *>NULL).sun_path) - 1
#: unit ids of SmartBus servers (routers) and of NET client processes
SERVER_UNIT_IDS = range(MAX_GLOBAL_SMART_NODE)
NET_UNIT_IDS = range(MIN_SMARTBUS_NETCLI_UNITID,
                     MIN_SMARTBUS_NETCLI_UNITID + MAX_SMARTBUS_NETCLI_UNITID_NUM)
#: the packets a flow server answers, and the client type it registers as
CMDTYPE_SYSTEM = SMARTBUS_CMDTYPE_SYSTEM
CMD_INVOKE_FLOW = SMARTBUS_SYSCMD_INVOKE_FLOW
CMD_NOTIFY = SMARTBUS_SYSCMD_NOTIFY
CLIENT_TYPE_IPSC = SMARTBUS_NODECLI_TYPE_IPSC
#: the system facilities the bundled C SDK was built with (its
#: src/platform.h): {"build": "native" or "portable", "waker": "eventfd" or
#: "pipe", "nosigpipe": "MSG_NOSIGNAL", "SO_NOSIGPIPE", both joined by "+"
#: or "none", "timedwait": "monotonic" or "realtime", "poller" (the
#: router's loop): "epoll" or "poll"}
PLATFORM = dict(item.split("=", 1)
                for item in (<bytes>smartbus_platform()).decode("ascii").split())
#: built with SMARTBUS_PORTABLE=1: the Linux fast paths are off, the POSIX
#: fallbacks that macOS uses run instead
PORTABLE_BUILD = PLATFORM["build"] == "portable"
