/*
 * gil.h - GIL handling for the threads the C SDK calls back on (the event
 * sinks' callback threads), and the process-wide "exiting" flag that stops
 * them touching Python once the interpreter shuts down.  Included once, by
 * the binding (smartbus/_native.pyx through smartbus/native/events.pyx).
 */
#ifndef SMARTBUS_NATIVE_GIL_H
#define SMARTBUS_NATIVE_GIL_H

#include <Python.h>

/* set by the binding's atexit hook: from then on no callback enters Python */
static int sbpy_exiting = 0;

static inline int sbpy_is_exiting(void) {
#if PY_VERSION_HEX >= 0x030D0000
    return __atomic_load_n(&sbpy_exiting, __ATOMIC_ACQUIRE) || Py_IsFinalizing();
#else
    return __atomic_load_n(&sbpy_exiting, __ATOMIC_ACQUIRE) || _Py_IsFinalizing();
#endif
}

static inline void sbpy_set_exiting(void) {
    __atomic_store_n(&sbpy_exiting, 1, __ATOMIC_RELEASE);
}

/* The GIL held by a sink's callback thread from the first batch of a
 * burst to the sink's idle call (count 0): one acquisition per burst,
 * not per batch.  Other Python threads still get it at every switch
 * interval (the handlers run bytecode, which honours drop requests).
 * The thread state made by the first PyGILState_Ensure is kept between
 * bursts (PyEval_SaveThread / RestoreThread: no thread state created
 * and destroyed per burst) and released at the thread's last call. */
static _Thread_local int sbpy_held = 0, sbpy_have_ts = 0;
static _Thread_local PyGILState_STATE sbpy_gstate;
static _Thread_local PyThreadState *sbpy_saved;

static inline void sbpy_gil_hold(void) {
    if (sbpy_held) return;
    if (sbpy_have_ts) {
        PyEval_RestoreThread(sbpy_saved);
    } else {
        sbpy_gstate = PyGILState_Ensure();
        sbpy_have_ts = 1;
    }
    sbpy_held = 1;
}

static inline void sbpy_gil_release(void) {
    if (sbpy_held) {
        sbpy_held = 0;
        sbpy_saved = PyEval_SaveThread();
    }
}

/* the sink thread ends: free its thread state (left to the interpreter's
 * own cleanup once it is finalizing) */
static inline void sbpy_gil_end(int exiting) {
    if (!sbpy_have_ts) return;
    if (!sbpy_held) {
        if (exiting) return;
        PyEval_RestoreThread(sbpy_saved);
    }
    sbpy_held = 0;
    sbpy_have_ts = 0;
    PyGILState_Release(sbpy_gstate);
}

#endif /* SMARTBUS_NATIVE_GIL_H */
