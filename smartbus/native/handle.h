/*
 * handle.h - the guard of a native handle (an SDK client or router pointer
 * held by a Python object) that one thread may close while other threads
 * are inside calls using it.  Included once, by the binding
 * (smartbus/_native.pyx through smartbus/native/convert.pyx).
 *
 * The rule: a call counts itself in (the object's in-flight count) BEFORE
 * it reads the handle; close takes the handle (sets it NULL) and THEN
 * waits for the count to drop to 0 before freeing it.  Either the call
 * sees NULL (and raises "closed"), or close sees the call counted and
 * waits: with sequentially consistent operations on both sides one of the
 * two always happens, so no call ever uses a freed handle.
 *
 * With the GIL (the default CPython build) the GIL already orders all of
 * this: the operations compile to plain loads and stores, and a call that
 * keeps the GIL throughout (the small sends) need not count itself at all
 * (sbpy_enter_attached / sbpy_leave_attached cost nothing there).  On a
 * free-threaded build (Py_GIL_DISABLED) every one is atomic.
 */
#ifndef SMARTBUS_NATIVE_HANDLE_H
#define SMARTBUS_NATIVE_HANDLE_H

#include <Python.h>

#ifdef Py_GIL_DISABLED
#define SBPY_FREE_THREADED 1
#else
#define SBPY_FREE_THREADED 0
#endif

/* counts a call in and returns the handle; NULL (not counted) once closed */
static inline void *sbpy_enter(void *const *handle, int *inflight) {
#if SBPY_FREE_THREADED
    void *h;
    __atomic_add_fetch(inflight, 1, __ATOMIC_SEQ_CST);
    h = __atomic_load_n(handle, __ATOMIC_SEQ_CST);
    if (h == NULL) __atomic_sub_fetch(inflight, 1, __ATOMIC_SEQ_CST);
    return h;
#else
    if (*handle != NULL) ++*inflight;
    return *handle;
#endif
}

/* ends a call begun with sbpy_enter (that returned a handle) */
static inline void sbpy_leave(int *inflight) {
#if SBPY_FREE_THREADED
    __atomic_sub_fetch(inflight, 1, __ATOMIC_SEQ_CST);
#else
    --*inflight;
#endif
}

/* the same for a call that never releases the GIL: counted only where
 * there is no GIL to keep close() out */
static inline void *sbpy_enter_attached(void *const *handle, int *inflight) {
#if SBPY_FREE_THREADED
    return sbpy_enter(handle, inflight);
#else
    (void)inflight;
    return *handle;
#endif
}

static inline void sbpy_leave_attached(int *inflight) {
#if SBPY_FREE_THREADED
    sbpy_leave(inflight);
#else
    (void)inflight;
#endif
}

/* the handle for a test "is it closed?" (no call made with it) */
static inline void *sbpy_peek(void *const *handle) {
#if SBPY_FREE_THREADED
    return __atomic_load_n(handle, __ATOMIC_RELAXED);
#else
    return *handle;
#endif
}

/* close, first half: takes the handle (NULL if another thread took it) */
static inline void *sbpy_take(void **handle) {
#if SBPY_FREE_THREADED
    return __atomic_exchange_n(handle, NULL, __ATOMIC_SEQ_CST);
#else
    void *h = *handle;
    *handle = NULL;
    return h;
#endif
}

/* close, second half: calls still counted in (wait while nonzero) */
static inline int sbpy_busy(const int *inflight) {
#if SBPY_FREE_THREADED
    return __atomic_load_n(inflight, __ATOMIC_SEQ_CST);
#else
    return *inflight;
#endif
}

#endif /* SMARTBUS_NATIVE_HANDLE_H */
