/*
 * sb_internal.h - declarations shared by the SDK's source files and not part
 * of its API: byte buffers, strings, clock, random numbers, socket helpers,
 * the wake-up channel, trace output (util.c), the sink's producer side
 * (sink.c), atomics.
 */
#ifndef SB_INTERNAL_H
#define SB_INTERNAL_H

#include "platform.h"        /* first: it sets the feature-test macros */

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include "smartbus.h"
#include "smartbus_ext.h"
#include "smartbus_wire.h"

/* C99 code with GCC/Clang atomics */
#define sb_load(p)        __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define sb_store(p, v)    __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define sb_xchg(p, v)     __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#define sb_add(p, v)      __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
#define sb_relaxed(p)     __atomic_load_n((p), __ATOMIC_RELAXED)

/* ---- growable byte buffer ------------------------------------------------ */
typedef struct sb_buf {
    uint8_t *p;
    size_t len;     /* bytes held */
    size_t off;     /* bytes already consumed (written / parsed) */
    size_t cap;
} sb_buf;

/* makes room for `extra` more bytes after len; 0 or -1 (out of memory) */
SB_HIDDEN int  sb_buf_reserve(sb_buf *b, size_t extra);
SB_HIDDEN void sb_buf_free(sb_buf *b);
/* drops consumed bytes (moves the rest to the front) */
SB_HIDDEN void sb_buf_compact(sb_buf *b);
/* gives memory back when a big buffer is empty */
SB_HIDDEN void sb_buf_trim(sb_buf *b, size_t keep);
static inline void sb_buf_swap(sb_buf *a, sb_buf *b) { sb_buf t = *a; *a = *b; *b = t; }

/* ---- strings ------------------------------------------------------------ */
/* copies at most size-1 bytes of src (NULL: empty) into dst, NUL-terminated */
SB_HIDDEN void sb_copy_str(char *dst, size_t size, const char *src);

/* ---- send checks (NET.md §6.1): the engine's and the NET facade's ------ */
/* the destination unit and the payload size of data and pings; inline: it
 * is on the per-message send path */
static inline int sb_check_unit_and_size(int dst_unit, int size)
{
    if (dst_unit >= MAX_SMARTBUS_NODE_NUM) return SMARTBUS_ERR_UNITID_INVALID;
    if (size > SMARTBUS_MAX_DATA_SIZE) return SMARTBUS_ERR_MAX_DATASIZE;
    return 0;
}

/* ---- clock, random numbers ------------------------------------------------ */
SB_HIDDEN int64_t sb_now_ms(void);         /* monotonic */
/* 32 random bits from the kernel's CSPRNG (/dev/urandom); not for hot paths */
SB_HIDDEN uint32_t sb_random_u32(void);

/* ---- sockets ------------------------------------------------------------ */
SB_HIDDEN int sb_set_nonblock(int fd);
SB_HIDDEN void sb_set_nodelay(int fd);

/* ---- trace (stderr when SMARTBUS_TRACE is set in the environment) ------ */
SB_HIDDEN int  sb_trace_enabled(void);
SB_HIDDEN void sb_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- sink producer side (used by the I/O thread) ----------------------- */
/* One event as the I/O thread records it. */
typedef struct sb_evin {
    int type, client_id, code, unit_id, invoke_id;
    int g_client_id, g_client_type, g_ap_unit_id;
    const uint8_t *head;          /* 20 bytes or NULL */
    const uint8_t *data; size_t size;
    const char *project_id;       /* or NULL */
    const char *text; size_t text_len;   /* or NULL */
} sb_evin;

/* Called on a sink's callback thread when it has taken the events of a sink
 * whose producer had stopped reading for it (see sb_sink_full). */
typedef void (*sb_resume_fn)(void *arg);

/* Appends events; the sink is locked from the first append to the flush. */
typedef struct sb_sink_writer {
    smartbus_sink *sink;
    int locked;
    int signal;
    sb_resume_fn resume;          /* handed to every sink this writer pauses */
    void *resume_arg;
    smartbus_sink *ready, *ready_last;   /* inline sinks with events to deliver */
    int delivered;                /* inline sinks delivered (sb_sink_deliver adds) */
} sb_sink_writer;
SB_HIDDEN void sb_sink_put(sb_sink_writer *w, smartbus_sink *sink, const sb_evin *ev);
/* Ends a burst of appends: unlocks, wakes the callback threads. */
SB_HIDDEN void sb_sink_flush(sb_sink_writer *w);
/* sb_sink_flush, then the callbacks of the inline sinks that got events, on
 * the calling (I/O) thread; returns how many.  Only where the I/O thread
 * holds no lock and no link is half-way through an operation: a callback
 * may call the API (send, free clients and sinks, start clients). */
SB_HIDDEN int  sb_sink_deliver(sb_sink_writer *w);
/* An inline sink that drops every event: a client freed from an inline
 * callback is switched to it while the I/O thread lets go of it (the
 * application may free its real sink at once). */
SB_HIDDEN smartbus_sink *sb_sink_discard(void);
/* 1 on the engine's I/O thread (engine.c): calls that would wait for it
 * must not wait there. */
SB_HIDDEN int  sb_on_io_thread(void);
/* Non-zero when the sink holds more than its bound: stop reading.  Marks the
 * sink paused and hands it the writer's resume hook, which its callback
 * thread calls once it has taken the events. */
SB_HIDDEN int  sb_sink_full(sb_sink_writer *w, smartbus_sink *sink);

#endif /* SB_INTERNAL_H */
