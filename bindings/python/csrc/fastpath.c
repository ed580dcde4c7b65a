/*
 * shmline._fastpath: the per-frame calls of `Writer` and `Reader` compiled against the CPython
 * API (bindings/python/setup.py builds it beside the cffi module; without it the package uses
 * its cffi paths instead).
 *
 * API-mode builds compile it against the full CPython API; ABI-mode builds made by CPython 3.11+
 * (the wheels) against the limited API of CPython 3.11 (Py_LIMITED_API 0x030B0000: one
 * `_fastpath.abi3.so` for every CPython from 3.11), which the package loads on those versions
 * only (shmline/_hot.py). The two builds differ in one place: how a slot's
 * `__enter__`/`__exit__` get their arguments (BoundCall, below).
 *
 * Why: a cffi call converts every pointer argument from a cdata object, unpacks an argument
 * tuple and releases and retakes the GIL around the call: about three times the instructions of
 * the library call itself for a 64-byte frame. Here each handle's pointers are held as C values,
 * the arguments come as a vector, and calls that never wait keep the GIL (they copy at most
 * FAST_MAX bytes, a few microseconds).
 *
 * Every function here does the common case only, and says so by its result: when it returns
 * None (or False for `write`) it did nothing, and the Python method runs its full path, which
 * checks the arguments, raises the right exception and waits. So this file holds no policy: it
 * never waits, never raises a shmline error of its own, and never guesses what the Python code
 * would do (where an outcome needs one, it calls the Python method that decides it).
 *
 * The zero-copy slots too: `WriteSlotBase` and `ReadSlotBase` are the C bases of the public
 * `WriteSlot` and `ReadSlot` (their `with` protocol), and `WriterCore.reserve_slot` and
 * `ReaderCore.acquire_slot` reserve or acquire and re-arm the handle's one slot object in one
 * call, so that a `with writer.reserve() as frame:` block runs no Python-level code of the
 * package but the first line of `reserve()`.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#include "shmline.h"

/* Frames up to this many bytes are copied with the GIL held; larger ones go through the cffi
 * path, which releases it during the copy. */
#define FAST_MAX 65536
/* The most dimensions a schema has for the fast path to check them here. */
#define MAX_DIMS 16

/*
 * The leading fields of a NumPy array object, as NumPy's public header declares them
 * (PyArrayObject_fields: unchanged since NumPy 1.7, and in 2.x). Read here without NumPy's
 * headers, so that building needs none; shmline/_hot.py checks at import that what `facts()`
 * reads agrees with what NumPy says of a few arrays, and does without this module otherwise.
 */
typedef struct {
    PyObject_HEAD
    char *data;
    int nd;
    Py_ssize_t *dimensions;
    Py_ssize_t *strides;
    PyObject *base;
    PyObject *descr;
    int flags;
} np_array;

#define NP_C_CONTIGUOUS 0x0001
#define NP_WRITEABLE 0x0400

/* What a frame must be to take the fast path: an ndarray (exactly, no subclass) of the schema's
 * dtype (the same dtype object: NumPy's builtin dtypes are singletons) and shape, C-contiguous,
 * and writable too for reading into it. `descr` is NULL for a bytes stream. */
typedef struct {
    PyTypeObject *ndarray;
    PyObject *descr;
    int nd;
    Py_ssize_t dims[MAX_DIMS];
    size_t frame_size;
} schema;

static int schema_init(schema *s, PyObject *ndarray, PyObject *dtype, PyObject *shape,
                       Py_ssize_t frame_size) {
    if (!PyType_Check(ndarray)) {
        PyErr_SetString(PyExc_TypeError, "ndarray must be numpy.ndarray");
        return -1;
    }
    Py_INCREF(ndarray);
    s->ndarray = (PyTypeObject *)ndarray;
    s->frame_size = (size_t)frame_size;
    if (dtype == Py_None) {
        s->descr = NULL;
        s->nd = 0;
        return 0;
    }
    if (!PyTuple_Check(shape) || PyTuple_Size(shape) > MAX_DIMS) {
        PyErr_SetString(PyExc_ValueError, "shape must be a tuple of at most 16 dimensions");
        return -1;
    }
    s->nd = (int)PyTuple_Size(shape);
    for (int i = 0; i < s->nd; i++) {
        s->dims[i] = PyLong_AsSsize_t(PyTuple_GetItem(shape, i));
        if (s->dims[i] == -1 && PyErr_Occurred())
            return -1;
    }
    Py_INCREF(dtype);
    s->descr = dtype;
    return 0;
}

static void schema_clear(schema *s) {
    Py_CLEAR(s->descr);
    Py_CLEAR(s->ndarray);
}

/* The data of `o` if it is an array of the schema (writable if `writable`), else NULL. */
static char *schema_data(const schema *s, PyObject *o, int writable) {
    if (Py_TYPE(o) != s->ndarray)
        return NULL;
    np_array *a = (np_array *)o;
    int need = NP_C_CONTIGUOUS | (writable ? NP_WRITEABLE : 0);
    if (a->descr != s->descr || a->nd != s->nd || (a->flags & need) != need)
        return NULL;
    for (int i = 0; i < s->nd; i++)
        if (a->dimensions[i] != s->dims[i])
            return NULL;
    return a->data;
}

/* `flags` as the library's 32-bit frame flags, or -1 (no exception set) for anything the cffi
 * path must judge (not an int, out of range). */
static int64_t frame_flags(PyObject *flags) {
    if (!PyLong_Check(flags))
        return -1;
    unsigned long long v = PyLong_AsUnsignedLongLong(flags);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return v > UINT32_MAX ? -1 : (int64_t)v;
}

/* Stores `value` (a reference taken over) in `*field`, dropping what was there. */
static void replace(PyObject **field, PyObject *value) {
    PyObject *old = *field;
    *field = value;
    Py_XDECREF(old);
}

/* Frees an object of one of this module's types (heap types: the object held a reference to
 * its type). */
static void free_object(PyObject *self) {
    PyTypeObject *type = Py_TYPE(self);
    freefunc free = (freefunc)PyType_GetSlot(type, Py_tp_free);
    free(self);
    Py_DECREF(type);
}

/* A C handle given as the integer value of its cffi pointer. */
static void *handle_of(PyObject *address) {
    void *p = PyLong_AsVoidPtr(address);
    if (p == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "the handle is NULL");
    return p;
}


/* Whether `timeout` lets a call succeed now without a word from the Python method: None, or a
 * float or int that is not negative (and not NaN). Anything else, the Python method judges. */
static int timeout_now(PyObject *timeout) {
    if (timeout == Py_None)
        return 1;
    if (PyFloat_CheckExact(timeout))
        return PyFloat_AsDouble(timeout) >= 0;
    if (PyLong_CheckExact(timeout)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(timeout, &overflow);
        return overflow > 0 || (overflow == 0 && v >= 0);
    }
    return 0;
}


/*
 * The object made once per slot (a writer's array of the slot, a reader's read-only view of it)
 * by payload address: a C mirror of the Python handle's dict (`_arrays`, `_views`), so that the
 * common case builds no int key. Open addressing, linear probing, at most half full; address 0
 * marks an empty entry (no payload is there). Holds a reference to each object.
 */
typedef struct {
    uintptr_t *keys;
    PyObject **values;
    size_t mask; /* entries - 1; 0 with no entries */
    size_t used;
} slot_table;

static size_t table_start(uintptr_t key, size_t mask) {
    uint64_t h = (uint64_t)key * 0x9E3779B97F4A7C15ull;
    return (size_t)(h ^ (h >> 32)) & mask;
}

/* The object of `key`, borrowed, or NULL (no exception) if there is none. */
static PyObject *table_get(const slot_table *t, uintptr_t key) {
    if (t->keys == NULL)
        return NULL;
    for (size_t i = table_start(key, t->mask);; i = (i + 1) & t->mask) {
        if (t->keys[i] == key)
            return t->values[i];
        if (t->keys[i] == 0)
            return NULL;
    }
}

static void table_place(slot_table *t, uintptr_t key, PyObject *value) {
    size_t i = table_start(key, t->mask);
    while (t->keys[i] != 0)
        i = (i + 1) & t->mask;
    t->keys[i] = key;
    t->values[i] = value;
}

/* Adds `value` (a new reference taken) for `key`, which has none: 0, or -1 with MemoryError. */
static int table_add(slot_table *t, uintptr_t key, PyObject *value) {
    if (t->keys == NULL || 2 * (t->used + 1) > t->mask + 1) {
        size_t entries = t->keys == NULL ? 16 : 2 * (t->mask + 1);
        slot_table grown = {PyMem_Calloc(entries, sizeof(uintptr_t)),
                            PyMem_Calloc(entries, sizeof(PyObject *)), entries - 1, t->used};
        if (grown.keys == NULL || grown.values == NULL) {
            PyMem_Free(grown.keys);
            PyMem_Free(grown.values);
            PyErr_NoMemory();
            return -1;
        }
        for (size_t i = 0; t->keys != NULL && i <= t->mask; i++)
            if (t->keys[i] != 0)
                table_place(&grown, t->keys[i], t->values[i]);
        PyMem_Free(t->keys);
        PyMem_Free(t->values);
        *t = grown;
    }
    Py_INCREF(value);
    table_place(t, key, value);
    t->used++;
    return 0;
}

static int table_traverse(const slot_table *t, visitproc visit, void *arg) {
    for (size_t i = 0; t->keys != NULL && i <= t->mask; i++)
        Py_VISIT(t->values[i]);
    return 0;
}

/* Drops every object (the handle closed: they must not keep the mapping alive). */
static void table_clear(slot_table *t) {
    uintptr_t *keys = t->keys;
    PyObject **values = t->values;
    size_t entries = keys == NULL ? 0 : t->mask + 1;
    *t = (slot_table){NULL, NULL, 0, 0};
    for (size_t i = 0; i < entries; i++)
        Py_XDECREF(values[i]);
    PyMem_Free(keys);
    PyMem_Free(values);
}

/* The object made once for the slot at `data`: from the table, else the Python handle's dict,
 * else made by the handle's method `make` (which checks the address against the layout and
 * fills the dict); then remembered in the table. A new reference, or NULL with an exception. */
static PyObject *per_slot(slot_table *t, PyObject *dict, PyObject *handle, const char *make,
                          const void *data) {
    PyObject *o = table_get(t, (uintptr_t)data);
    if (o != NULL) {
        Py_INCREF(o);
        return o;
    }
    PyObject *address = PyLong_FromVoidPtr((void *)data);
    if (address == NULL)
        return NULL;
    o = PyDict_GetItemWithError(dict, address);
    if (o != NULL)
        Py_INCREF(o);
    else if (!PyErr_Occurred())
        o = PyObject_CallMethod(handle, make, "O", address);
    Py_DECREF(address);
    if (o != NULL && table_add(t, (uintptr_t)data, o) != 0)
        Py_CLEAR(o);
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* Slots: the C bases of WriteSlot and ReadSlot                                               */

/*
 * One struct for both: `owner` is the writer (reader) while the slot is armed, NULL once it was
 * committed, aborted or released; the Python classes see it as `_writer` (`_reader`), None when
 * NULL. `core` is set only while a slot armed by `reserve_slot`/`acquire_slot` is armed: its exit
 * then commits or releases here; a slot armed by the Python method's full path has none, and its
 * exit calls the Python methods (`_commit_now`, `_release_now`, `_finish`).
 */
typedef struct {
    PyObject_HEAD
    PyObject *owner;
    PyObject *view;
    Py_ssize_t length; /* the writer's: bytes to commit */
    PyObject *flags;   /* the writer's: flags to commit */
    PyObject *core;
    PyObject *bound[2]; /* its `__enter__` and `__exit__` (BoundCall), made on first use */
} Slot;

/*
 * A slot's `__enter__` or `__exit__` as the `with` statement gets it: made once per slot and
 * handed out again every time, where a method of a C type would be bound anew (an allocation
 * for the garbage collector) at every `with`. The slot owns it; it points back at the slot
 * without a reference (no cycle), and the slot's end sets that pointer to NULL, so a kept
 * `slot.__exit__` outliving its slot raises instead of touching freed memory.
 */
typedef PyObject *(*slot_fn)(Slot *, PyObject *const *, Py_ssize_t);

typedef struct {
    PyObject_HEAD
#ifndef Py_LIMITED_API
    vectorcallfunc vectorcall;
#endif
    Slot *slot;
    slot_fn fn;
} BoundCall;

static PyObject *BoundCall_run(BoundCall *b, PyObject *const *args, Py_ssize_t nargs) {
    Slot *slot = b->slot;
    if (slot == NULL) {
        PyErr_SetString(PyExc_ReferenceError, "the slot of this method no longer exists");
        return NULL;
    }
    Py_INCREF((PyObject *)slot);
    PyObject *r = b->fn(slot, args, nargs);
    Py_DECREF((PyObject *)slot);
    return r;
}

static const char no_keywords[] = "a slot's __enter__ and __exit__ take no keywords";

#ifndef Py_LIMITED_API
/* The full API: the `with` statement passes the arguments as a vector. */
static PyObject *BoundCall_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                                      PyObject *kwnames) {
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
        PyErr_SetString(PyExc_TypeError, no_keywords);
        return NULL;
    }
    return BoundCall_run((BoundCall *)callable, args, PyVectorcall_NARGS(nargsf));
}
#endif

/* The limited API of 3.11 has no vectorcall for classes: the arguments come as a tuple. */
static PyObject *BoundCall_call(PyObject *callable, PyObject *args, PyObject *kwargs) {
    if (kwargs != NULL && PyDict_Size(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, no_keywords);
        return NULL;
    }
    PyObject *stack[3];
    Py_ssize_t nargs = PyTuple_Size(args);
    if (nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "__exit__ takes 3 arguments");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        stack[i] = PyTuple_GetItem(args, i);
    return BoundCall_run((BoundCall *)callable, stack, nargs);
}

static PyTypeObject *BoundCallType;

static PyMemberDef BoundCall_members[] = {
#ifndef Py_LIMITED_API
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(BoundCall, vectorcall), READONLY, NULL},
#endif
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot BoundCall_slots[] = {
    {Py_tp_doc, "The __enter__ or __exit__ of one slot."},
    {Py_tp_call, BoundCall_call},
    {Py_tp_dealloc, free_object},
    {Py_tp_members, BoundCall_members},
    {0, NULL},
};

static PyType_Spec BoundCall_spec = {
    "shmline._fastpath.BoundCall", sizeof(BoundCall), 0,
#ifndef Py_LIMITED_API
    Py_TPFLAGS_HAVE_VECTORCALL |
#endif
        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    BoundCall_slots,
};

/* The slot's `__enter__` (which = 0) or `__exit__` (1), made on first use. */
static PyObject *bound_of(Slot *self, int which, slot_fn fn) {
    if (self->bound[which] == NULL) {
        BoundCall *b = PyObject_New(BoundCall, BoundCallType);
        if (b == NULL)
            return NULL;
#ifndef Py_LIMITED_API
        b->vectorcall = BoundCall_vectorcall;
#endif
        b->slot = self;
        b->fn = fn;
        self->bound[which] = (PyObject *)b;
    }
    Py_INCREF(self->bound[which]);
    return self->bound[which];
}

/* Drops the slot's bound calls, telling any kept elsewhere that the slot is gone. */
static void unbind(Slot *self) {
    for (int i = 0; i < 2; i++) {
        if (self->bound[i] != NULL) {
            ((BoundCall *)self->bound[i])->slot = NULL;
            Py_CLEAR(self->bound[i]);
        }
    }
}

static int Slot_traverse(Slot *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE((PyObject *)self));
    Py_VISIT(self->owner);
    Py_VISIT(self->view);
    Py_VISIT(self->flags);
    Py_VISIT(self->core);
    return 0;
}

static int Slot_clear(Slot *self) {
    Py_CLEAR(self->owner);
    Py_CLEAR(self->view);
    Py_CLEAR(self->flags);
    Py_CLEAR(self->core);
    return 0;
}

static void Slot_dealloc(Slot *self) {
    PyObject_GC_UnTrack(self);
    unbind(self);
    Slot_clear(self);
    free_object((PyObject *)self);
}

static PyObject *Slot_get_owner(Slot *self, void *closure) {
    PyObject *owner = self->owner ? self->owner : Py_None;
    Py_INCREF(owner);
    return owner;
}

/* Setting the owner (the Python methods arm and disarm the slot this way) forgets the core: only
 * `reserve_slot`/`acquire_slot` set it. */
static int Slot_set_owner(Slot *self, PyObject *value, void *closure) {
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "the owner of a slot cannot be deleted");
        return -1;
    }
    Py_CLEAR(self->core);
    if (value == Py_None) {
        Py_CLEAR(self->owner);
    } else {
        Py_INCREF(value);
        replace(&self->owner, value);
    }
    return 0;
}

/* __enter__(): the view. */
static PyObject *Slot_enter(Slot *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 0) {
        PyErr_SetString(PyExc_TypeError, "__enter__() takes no arguments");
        return NULL;
    }
    PyObject *view = self->view ? self->view : Py_None;
    Py_INCREF(view);
    return view;
}

static PyObject *Slot_get_enter(Slot *self, void *closure) {
    return bound_of(self, 0, Slot_enter);
}

/* Calls `name` of `o` with no argument and drops its result: 0, or -1 with its exception. */
static int call_method_0(PyObject *o, const char *name) {
    PyObject *r = PyObject_CallMethod(o, name, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* The library's status from the Python method `name(*args)` of `owner`: 0 (OK) or another
 * status; -1 and a Python exception are told apart by PyErr_Occurred. */
static long status_of(PyObject *r) {
    if (r == NULL)
        return -1;
    long status = PyLong_AsLong(r);
    Py_DECREF(r);
    return status;
}

/* Runs `_finish` of `slot` after a library call through Python that may have raised: 0 if
 * neither raised; -1 with the call's exception (or `_finish`'s, which wins) otherwise. The
 * slot is finished either way, as the Python `commit()`/`release()` do in their `finally`. */
static int finish_keeping_error(PyObject *slot) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    if (call_method_0(slot, "_finish") < 0) {
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
        return -1;
    }
    if (type != NULL) {
        PyErr_Restore(type, value, traceback);
        return -1;
    }
    return 0;
}

/* The end of a slot's `__exit__`: None if `status` is OK, else what the owner's Python method
 * `report(status)` does with it (it raises the status's exception, or ignores it). Takes the
 * reference to `owner`. */
static PyObject *report_status(PyObject *owner, long status, const char *report) {
    if (status == SHMLINE_OK) {
        Py_DECREF(owner);
        Py_RETURN_NONE;
    }
    PyObject *r = PyObject_CallMethod(owner, report, "l", status);
    Py_DECREF(owner);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyMemberDef WriteSlot_members[] = {
    {"view", T_OBJECT, offsetof(Slot, view), 0, "The view of the slot in shared memory."},
    {"_length", T_PYSSIZET, offsetof(Slot, length), 0, NULL},
    {"_flags", T_OBJECT, offsetof(Slot, flags), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMemberDef ReadSlot_members[] = {
    {"view", T_OBJECT, offsetof(Slot, view), 0, "The view of the frame in shared memory."},
    {NULL, 0, 0, 0, NULL},
};


/* ------------------------------------------------------------------------------------------ */
/* Writer                                                                                     */

typedef struct {
    PyObject_HEAD
    struct shmline_writer *h; /* NULL once detached (the Python writer closed it) */
    schema s;
    int enabled;   /* whether write() may take the fast path (not under "drop_newest") */
    Slot *spare;   /* the writer's one slot object, which reserve_slot() re-arms */
    PyObject *arrays; /* the writer's `_arrays`: the array of each slot by payload address */
    slot_table table; /* the same arrays, looked up in C */
} WriterCore;

static PyTypeObject *WriteSlotBaseType;
static PyTypeObject *ReadSlotBaseType;
/* "view", interned once (PyInit__fastpath): the method name reserve_slot() calls per frame. */
static PyObject *str_view;

/* The one slot object of a handle, checked to be of the C base its core writes into. */
static Slot *spare_of(PyObject *spare, PyTypeObject *base) {
    if (!PyObject_TypeCheck(spare, base)) {
        PyErr_SetString(PyExc_TypeError, "the spare slot is not of the slot class it needs");
        return NULL;
    }
    Py_INCREF(spare);
    return (Slot *)spare;
}

static int WriterCore_init(WriterCore *self, PyObject *args, PyObject *kwds) {
    PyObject *address, *ndarray, *dtype, *shape, *spare, *arrays;
    Py_ssize_t frame_size;
    int enabled;
    if (!PyArg_ParseTuple(args, "OOOOnpOO!", &address, &ndarray, &dtype, &shape, &frame_size,
                          &enabled, &spare, &PyDict_Type, &arrays))
        return -1;
    if ((self->h = handle_of(address)) == NULL)
        return -1;
    self->enabled = enabled;
    if ((self->spare = spare_of(spare, WriteSlotBaseType)) == NULL)
        return -1;
    Py_INCREF(arrays);
    self->arrays = arrays;
    return schema_init(&self->s, ndarray, dtype, shape, frame_size);
}

static int WriterCore_traverse(WriterCore *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE((PyObject *)self));
    Py_VISIT(self->spare);
    Py_VISIT(self->arrays);
    return table_traverse(&self->table, visit, arg);
}

static int WriterCore_clear(WriterCore *self) {
    Py_CLEAR(self->spare);
    Py_CLEAR(self->arrays);
    table_clear(&self->table);
    return 0;
}

static void WriterCore_dealloc(WriterCore *self) {
    PyObject_GC_UnTrack(self);
    WriterCore_clear(self);
    schema_clear(&self->s);
    free_object((PyObject *)self);
}

/* write(frame, flags) -> bool: True if `frame` was written now; False if nothing was done. */
static PyObject *WriterCore_write(WriterCore *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "write(frame, flags)");
        return NULL;
    }
    int64_t flags = frame_flags(args[1]);
    if (self->h == NULL || !self->enabled || flags < 0)
        Py_RETURN_FALSE;
    int32_t status;
    if (self->s.descr != NULL) {
        const char *data = schema_data(&self->s, args[0], 0);
        if (data == NULL || self->s.frame_size > FAST_MAX)
            Py_RETURN_FALSE;
        status = shmline_writer_write(self->h, data, self->s.frame_size, (uint32_t)flags, 0);
    } else {
        Py_buffer view;
        if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) != 0) {
            PyErr_Clear();
            Py_RETURN_FALSE;
        }
        if (view.len > FAST_MAX) {
            PyBuffer_Release(&view);
            Py_RETURN_FALSE;
        }
        status = shmline_writer_write(self->h, view.buf, (size_t)view.len, (uint32_t)flags, 0);
        PyBuffer_Release(&view);
    }
    return PyBool_FromLong(status == SHMLINE_OK);
}

/* reserve() -> int | None: the payload address of the slot reserved now, or None if none was. */
static PyObject *WriterCore_reserve(WriterCore *self, PyObject *unused) {
    void *slot;
    size_t capacity;
    if (self->h == NULL || shmline_writer_reserve(self->h, 0, &slot, &capacity) != SHMLINE_OK)
        Py_RETURN_NONE;
    return PyLong_FromVoidPtr(slot);
}

/* commit(nbytes, flags) -> int: the library's status (the cffi path judges bad arguments). */
static PyObject *WriterCore_commit(WriterCore *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "commit(nbytes, flags)");
        return NULL;
    }
    Py_ssize_t n = PyLong_AsSsize_t(args[0]);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    int64_t flags = frame_flags(args[1]);
    if (flags < 0 || n < 0) {
        PyErr_SetString(PyExc_OverflowError, "nbytes or flags out of range");
        return NULL;
    }
    return PyLong_FromLong(shmline_writer_commit(self->h, (size_t)n, (uint32_t)flags));
}

/* reserve_slot(writer, nbytes, timeout, flags) -> WriteSlot | None: `writer.reserve(nbytes,
 * timeout=timeout, flags=flags)` when a slot is free now, the stream has a schema, `nbytes` is
 * None, `timeout` and `flags` are valid and no slot is reserved: the writer's one slot object,
 * armed with a new writable view of the slot. None if nothing was done. */
static PyObject *WriterCore_reserve_slot(WriterCore *self, PyObject *const *args,
                                         Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "reserve_slot(writer, nbytes, timeout, flags)");
        return NULL;
    }
    Slot *slot = self->spare;
    if (self->h == NULL || self->s.descr == NULL || slot == NULL || self->arrays == NULL ||
        slot->owner != NULL || args[1] != Py_None || !timeout_now(args[2]) ||
        frame_flags(args[3]) < 0)
        Py_RETURN_NONE;
    void *data;
    size_t capacity;
    if (shmline_writer_reserve(self->h, 0, &data, &capacity) != SHMLINE_OK)
        Py_RETURN_NONE;
    /* From here the library holds a reservation: any failure aborts it before raising. On a
     * slot's first reservation the Python writer builds its array (`_array_at`). */
    PyObject *view = NULL;
    PyObject *array = per_slot(&self->table, self->arrays, args[0], "_array_at", data);
    if (array == NULL)
        goto fail;
    view = PyObject_CallMethodObjArgs(array, str_view, NULL);
    if (view == NULL)
        goto fail;
    if (Py_TYPE(view) != self->s.ndarray) {
        PyErr_SetString(PyExc_TypeError, "a slot's view is not an ndarray");
        goto fail;
    }
    Py_DECREF(array);
    replace(&slot->view, view);
    slot->length = (Py_ssize_t)self->s.frame_size;
    Py_INCREF(args[3]);
    replace(&slot->flags, args[3]);
    Py_INCREF(args[0]);
    slot->owner = args[0];
    Py_INCREF((PyObject *)self);
    replace(&slot->core, (PyObject *)self);
    Py_INCREF((PyObject *)slot);
    return (PyObject *)slot;
fail:
    shmline_writer_abort(self->h);
    Py_XDECREF(array);
    Py_XDECREF(view);
    return NULL;
}

/* detach(): forgets the handle, which the Python writer is about to close, and the arrays of
 * its slots, which must not keep the mapping alive. */
static PyObject *WriterCore_detach(WriterCore *self, PyObject *unused) {
    self->h = NULL;
    Py_CLEAR(self->arrays);
    table_clear(&self->table);
    Py_RETURN_NONE;
}

static PyMethodDef WriterCore_methods[] = {
    {"write", (PyCFunction)(void (*)(void))WriterCore_write, METH_FASTCALL,
     "write(frame, flags) -> True if written now, False if nothing was done."},
    {"reserve", (PyCFunction)WriterCore_reserve, METH_NOARGS,
     "reserve() -> the address of the slot reserved now, or None."},
    {"commit", (PyCFunction)(void (*)(void))WriterCore_commit, METH_FASTCALL,
     "commit(nbytes, flags) -> the library's status."},
    {"reserve_slot", (PyCFunction)(void (*)(void))WriterCore_reserve_slot, METH_FASTCALL,
     "reserve_slot(writer, nbytes, timeout, flags) -> the armed slot, or None."},
    {"detach", (PyCFunction)WriterCore_detach, METH_NOARGS, "Forgets the handle."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject *WriterCoreType;

static PyType_Slot WriterCore_slots[] = {
    {Py_tp_doc, "The compiled per-frame calls of one writer handle."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, WriterCore_init},
    {Py_tp_dealloc, WriterCore_dealloc},
    {Py_tp_traverse, WriterCore_traverse},
    {Py_tp_clear, WriterCore_clear},
    {Py_tp_methods, WriterCore_methods},
    {0, NULL},
};

static PyType_Spec WriterCore_spec = {
    "shmline._fastpath.WriterCore", sizeof(WriterCore), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    WriterCore_slots,
};

/* A writer's view after its block: read-only, as NumPy's own PyArray_CLEARFLAGS makes it (the
 * per-slot array it views stays writable for the next reservations). shmline/_hot.py checks this
 * against NumPy at import (`seal`). */
static void seal_view(PyObject *view) {
    ((np_array *)view)->flags &= ~NP_WRITEABLE;
}

/* WriteSlot.__exit__(exc_type, exc, tb): commits the slot when the block ended normally, aborts
 * it (the Python `abort()`) when it raised; nothing if it was committed or aborted in the block.
 * Then the view is read-only, and a failed commit raises through the writer's `_call`. */
static PyObject *WriteSlot_exit(Slot *self, PyObject *const *args, Py_ssize_t nargs) {
    if (self->owner == NULL)
        Py_RETURN_NONE;
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "__exit__(exc_type, exc, tb)");
        return NULL;
    }
    if (args[0] != Py_None) {
        if (call_method_0((PyObject *)self, "abort") < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *writer = self->owner;
    Py_INCREF(writer);
    long status;
    int64_t flags = frame_flags(self->flags ? self->flags : Py_None);
    if (self->core != NULL && flags >= 0) {
        /* Armed by reserve_slot(): commit here; the view is an ndarray of the core's type. */
        WriterCore *core = (WriterCore *)self->core;
        status = shmline_writer_commit(core->h, (size_t)self->length, (uint32_t)flags);
        int sealed = self->view != NULL && Py_TYPE(self->view) == core->s.ndarray;
        Py_CLEAR(self->owner);
        Py_CLEAR(self->core);
        if (sealed) {
            seal_view(self->view);
        } else if (call_method_0((PyObject *)self, "_finish") < 0) { /* a view set by hand */
            Py_DECREF(writer);
            return NULL;
        }
    } else {
        /* Armed by the Python method: commit and finish as WriteSlot.commit() does. */
        status = status_of(PyObject_CallMethod(writer, "_commit_now", "nO", self->length,
                                               self->flags ? self->flags : Py_None));
        if (finish_keeping_error((PyObject *)self) < 0) {
            Py_DECREF(writer);
            return NULL;
        }
    }
    return report_status(writer, status, "_call");
}

static PyObject *WriteSlot_get_exit(Slot *self, void *closure) {
    return bound_of(self, 1, WriteSlot_exit);
}

static PyGetSetDef WriteSlot_getset[] = {
    {"_writer", (getter)Slot_get_owner, (setter)Slot_set_owner, NULL, NULL},
    {"__enter__", (getter)Slot_get_enter, NULL, "__enter__(): the writable view of the slot.",
     NULL},
    {"__exit__", (getter)WriteSlot_get_exit, NULL,
     "__exit__(exc_type, exc, tb): commits the slot, or aborts it if the block raised.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot WriteSlotBase_slots[] = {
    {Py_tp_doc, "The compiled with-protocol of shmline.WriteSlot."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, Slot_dealloc},
    {Py_tp_traverse, Slot_traverse},
    {Py_tp_clear, Slot_clear},
    {Py_tp_members, WriteSlot_members},
    {Py_tp_getset, WriteSlot_getset},
    {0, NULL},
};

static PyType_Spec WriteSlotBase_spec = {
    "shmline._fastpath.WriteSlotBase", sizeof(Slot), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    WriteSlotBase_slots,
};

/* ------------------------------------------------------------------------------------------ */
/* Reader                                                                                     */

typedef struct {
    PyObject_HEAD
    struct shmline_reader *h; /* NULL once detached */
    schema s;
    shmline_frame_info *info; /* the Python reader's `_info`, which it keeps alive */
    PyObject *scratch;        /* read() of a schema stream reads into this array... */
    char *scratch_data;
    PyObject *copy;           /* ...and returns scratch.copy() */
    char *bytes_buf;          /* read() of a bytes stream reads here (max_frame_size bytes) */
    size_t bytes_cap;
    Slot *spare;              /* the reader's one slot object, which acquire_slot() re-arms */
    PyObject *views;          /* the reader's `_views`: the view of each slot by address */
    slot_table table;         /* the same views, looked up in C */
} ReaderCore;

static int ReaderCore_init(ReaderCore *self, PyObject *args, PyObject *kwds) {
    PyObject *address, *ndarray, *dtype, *shape, *info, *scratch, *spare, *views;
    Py_ssize_t frame_size, max_frame_size;
    if (!PyArg_ParseTuple(args, "OOOOnnOOOO!", &address, &ndarray, &dtype, &shape, &frame_size,
                          &max_frame_size, &info, &scratch, &spare, &PyDict_Type, &views))
        return -1;
    if ((self->h = handle_of(address)) == NULL)
        return -1;
    if ((self->info = handle_of(info)) == NULL)
        return -1;
    if ((self->spare = spare_of(spare, ReadSlotBaseType)) == NULL)
        return -1;
    Py_INCREF(views);
    self->views = views;
    if (schema_init(&self->s, ndarray, dtype, shape, frame_size) != 0)
        return -1;
    if (scratch != Py_None) {
        self->scratch_data = schema_data(&self->s, scratch, 1);
        if (self->scratch_data == NULL) {
            PyErr_SetString(PyExc_ValueError, "scratch must be a writable array of the schema");
            return -1;
        }
        Py_INCREF(scratch);
        self->scratch = scratch;
        if ((self->copy = PyObject_GetAttrString(scratch, "copy")) == NULL)
            return -1;
    }
    if (self->s.descr == NULL && max_frame_size <= FAST_MAX) {
        self->bytes_cap = (size_t)max_frame_size;
        if ((self->bytes_buf = PyMem_Malloc(self->bytes_cap ? self->bytes_cap : 1)) == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

static int ReaderCore_traverse(ReaderCore *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE((PyObject *)self));
    Py_VISIT(self->spare);
    Py_VISIT(self->views);
    return table_traverse(&self->table, visit, arg);
}

static int ReaderCore_clear(ReaderCore *self) {
    Py_CLEAR(self->spare);
    Py_CLEAR(self->views);
    table_clear(&self->table);
    return 0;
}

static void ReaderCore_dealloc(ReaderCore *self) {
    PyObject_GC_UnTrack(self);
    ReaderCore_clear(self);
    schema_clear(&self->s);
    Py_CLEAR(self->scratch);
    Py_CLEAR(self->copy);
    PyMem_Free(self->bytes_buf);
    free_object((PyObject *)self);
}

/* read() -> frame | None | False: the next frame read now (a new array, or bytes); None if
 * nothing was read; False if a frame was read whose size is not the schema's (`info` has it). */
static PyObject *ReaderCore_read(ReaderCore *self, PyObject *unused) {
    if (self->h == NULL)
        Py_RETURN_NONE;
    if (self->scratch != NULL) {
        if (shmline_reader_read(self->h, self->scratch_data, self->s.frame_size, 0,
                                self->info) != SHMLINE_OK)
            Py_RETURN_NONE;
        if (self->info->len != self->s.frame_size)
            Py_RETURN_FALSE;
        return PyObject_CallNoArgs(self->copy);
    }
    if (self->bytes_buf != NULL) {
        if (shmline_reader_read(self->h, self->bytes_buf, self->bytes_cap, 0, self->info)
            != SHMLINE_OK)
            Py_RETURN_NONE;
        return PyBytes_FromStringAndSize(self->bytes_buf, (Py_ssize_t)self->info->len);
    }
    Py_RETURN_NONE;
}

/* read_into(out) -> int | None: the length of the frame read now into `out`, or -1 if its size
 * is not the schema's; None if nothing was read. */
static PyObject *ReaderCore_read_into(ReaderCore *self, PyObject *out) {
    if (self->h == NULL)
        Py_RETURN_NONE;
    int32_t status;
    if (self->s.descr != NULL) {
        char *data = schema_data(&self->s, out, 1);
        if (data == NULL || self->s.frame_size > FAST_MAX)
            Py_RETURN_NONE;
        status = shmline_reader_read(self->h, data, self->s.frame_size, 0, self->info);
        if (status != SHMLINE_OK)
            Py_RETURN_NONE;
        if (self->info->len != self->s.frame_size)
            return PyLong_FromLong(-1);
    } else {
        Py_buffer view;
        if (PyObject_GetBuffer(out, &view, PyBUF_WRITABLE) != 0) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        if (view.len > FAST_MAX) {
            PyBuffer_Release(&view);
            Py_RETURN_NONE;
        }
        status = shmline_reader_read(self->h, view.buf, (size_t)view.len, 0, self->info);
        PyBuffer_Release(&view);
        if (status != SHMLINE_OK)
            Py_RETURN_NONE;
    }
    return PyLong_FromSize_t(self->info->len);
}

/* acquire() -> int | None: the address of the frame lent now (`info` describes it), 0 if its
 * size is not the schema's (it is lent all the same), or None if none was lent. */
static PyObject *ReaderCore_acquire(ReaderCore *self, PyObject *unused) {
    const void *data;
    if (self->h == NULL || shmline_reader_acquire(self->h, 0, &data, self->info) != SHMLINE_OK)
        Py_RETURN_NONE;
    if (self->s.descr != NULL && self->info->len != self->s.frame_size)
        return PyLong_FromLong(0);
    return PyLong_FromVoidPtr((void *)data);
}

/* release() -> int: the library's status. */
static PyObject *ReaderCore_release(ReaderCore *self, PyObject *unused) {
    return PyLong_FromLong(shmline_reader_release(self->h));
}

/* acquire_slot(reader, timeout) -> ReadSlot | None: `reader.acquire(timeout=timeout)` when a
 * frame is there now, the stream has a schema, `timeout` is valid and no frame is acquired: the
 * reader's one slot object, armed with the read-only view of the frame's slot. A frame of the
 * wrong size is released and raises through the reader's `_wrong_size()`, as the Python method
 * does. None if nothing was done. */
static PyObject *ReaderCore_acquire_slot(ReaderCore *self, PyObject *const *args,
                                         Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "acquire_slot(reader, timeout)");
        return NULL;
    }
    Slot *slot = self->spare;
    if (self->h == NULL || self->s.descr == NULL || slot == NULL || self->views == NULL ||
        slot->owner != NULL || !timeout_now(args[1]))
        Py_RETURN_NONE;
    const void *data;
    if (shmline_reader_acquire(self->h, 0, &data, self->info) != SHMLINE_OK)
        Py_RETURN_NONE;
    /* From here the library lends a frame: any failure releases it before raising. */
    if (self->info->len != self->s.frame_size) {
        shmline_reader_release(self->h);
        PyObject *r = PyObject_CallMethod(args[0], "_wrong_size", NULL); /* raises */
        Py_XDECREF(r);
        return NULL;
    }
    /* On a slot's first frame the Python reader builds its view (`_view_at`). */
    PyObject *view = per_slot(&self->table, self->views, args[0], "_view_at", data);
    if (view == NULL) {
        shmline_reader_release(self->h);
        return NULL;
    }
    replace(&slot->view, view);
    Py_INCREF(args[0]);
    slot->owner = args[0];
    Py_INCREF((PyObject *)self);
    replace(&slot->core, (PyObject *)self);
    Py_INCREF((PyObject *)slot);
    return (PyObject *)slot;
}

/* detach(): forgets the handle, which the Python reader is about to close, and the views of its
 * slots, which must not keep the mapping alive. */
static PyObject *ReaderCore_detach(ReaderCore *self, PyObject *unused) {
    self->h = NULL;
    Py_CLEAR(self->views);
    table_clear(&self->table);
    Py_RETURN_NONE;
}

static PyMethodDef ReaderCore_methods[] = {
    {"read", (PyCFunction)ReaderCore_read, METH_NOARGS,
     "read() -> the frame read now, None if none was, False if its size is wrong."},
    {"read_into", (PyCFunction)ReaderCore_read_into, METH_O,
     "read_into(out) -> the length read now, -1 if its size is wrong, None if none was."},
    {"acquire", (PyCFunction)ReaderCore_acquire, METH_NOARGS,
     "acquire() -> the address of the frame lent now (0: of a wrong size), or None."},
    {"release", (PyCFunction)ReaderCore_release, METH_NOARGS,
     "release() -> the library's status."},
    {"acquire_slot", (PyCFunction)(void (*)(void))ReaderCore_acquire_slot, METH_FASTCALL,
     "acquire_slot(reader, timeout) -> the armed slot, or None."},
    {"detach", (PyCFunction)ReaderCore_detach, METH_NOARGS, "Forgets the handle."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject *ReaderCoreType;

static PyType_Slot ReaderCore_slots[] = {
    {Py_tp_doc, "The compiled per-frame calls of one reader handle."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, ReaderCore_init},
    {Py_tp_dealloc, ReaderCore_dealloc},
    {Py_tp_traverse, ReaderCore_traverse},
    {Py_tp_clear, ReaderCore_clear},
    {Py_tp_methods, ReaderCore_methods},
    {0, NULL},
};

static PyType_Spec ReaderCore_spec = {
    "shmline._fastpath.ReaderCore", sizeof(ReaderCore), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    ReaderCore_slots,
};

/* ReadSlot.__exit__(exc_type, exc, tb): releases the frame (nothing if it was released in the
 * block); a failed release raises through the reader's `_check_release`, which ignores a reader
 * closed meanwhile. */
static PyObject *ReadSlot_exit(Slot *self, PyObject *const *args, Py_ssize_t nargs) {
    if (self->owner == NULL)
        Py_RETURN_NONE;
    PyObject *reader = self->owner;
    Py_INCREF(reader);
    long status;
    if (self->core != NULL) {
        /* Armed by acquire_slot(): a read-only array view, nothing to retire. */
        status = shmline_reader_release(((ReaderCore *)self->core)->h);
        Py_CLEAR(self->owner);
        Py_CLEAR(self->core);
    } else {
        /* Armed by the Python method: release and finish as ReadSlot.release() does. */
        status = status_of(PyObject_CallMethod(reader, "_release_now", NULL));
        if (finish_keeping_error((PyObject *)self) < 0) {
            Py_DECREF(reader);
            return NULL;
        }
    }
    return report_status(reader, status, "_check_release");
}

static PyObject *ReadSlot_get_exit(Slot *self, void *closure) {
    return bound_of(self, 1, ReadSlot_exit);
}

static PyGetSetDef ReadSlot_getset[] = {
    {"_reader", (getter)Slot_get_owner, (setter)Slot_set_owner, NULL, NULL},
    {"__enter__", (getter)Slot_get_enter, NULL, "__enter__(): the read-only view of the frame.",
     NULL},
    {"__exit__", (getter)ReadSlot_get_exit, NULL,
     "__exit__(exc_type, exc, tb): releases the frame.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot ReadSlotBase_slots[] = {
    {Py_tp_doc, "The compiled with-protocol of shmline.ReadSlot."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, Slot_dealloc},
    {Py_tp_traverse, Slot_traverse},
    {Py_tp_clear, Slot_clear},
    {Py_tp_members, ReadSlot_members},
    {Py_tp_getset, ReadSlot_getset},
    {0, NULL},
};

static PyType_Spec ReadSlotBase_spec = {
    "shmline._fastpath.ReadSlotBase", sizeof(Slot), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    ReadSlotBase_slots,
};

/* ------------------------------------------------------------------------------------------ */

/* facts(array) -> (data address, ndim, shape, dtype, C-contiguous, writable) as read here, for
 * the import-time check against NumPy's own answers. */
static PyObject *facts(PyObject *module, PyObject *o) {
    np_array *a = (np_array *)o;
    PyObject *shape = PyTuple_New(a->nd);
    if (shape == NULL)
        return NULL;
    for (int i = 0; i < a->nd; i++)
        if (PyTuple_SetItem(shape, i, PyLong_FromSsize_t(a->dimensions[i])) < 0) {
            Py_DECREF(shape);
            return NULL;
        }
    return Py_BuildValue("(NiNOOO)", PyLong_FromVoidPtr(a->data), a->nd, shape, a->descr,
                         (a->flags & NP_C_CONTIGUOUS) ? Py_True : Py_False,
                         (a->flags & NP_WRITEABLE) ? Py_True : Py_False);
}

/* seal(view, ndarray): makes `view`, an exact `ndarray`, read-only as a writer's view is sealed
 * after its block, for the import-time check that this writes NumPy's flags right. */
static PyObject *seal(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || Py_TYPE(args[0]) != (PyTypeObject *)args[1]) {
        PyErr_SetString(PyExc_TypeError, "seal(view, ndarray): view must be an ndarray");
        return NULL;
    }
    seal_view(args[0]);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"facts", facts, METH_O, "What this module reads of a NumPy array."},
    {"seal", (PyCFunction)(void (*)(void))seal, METH_FASTCALL,
     "Makes an ndarray read-only as a writer's view after its block."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "shmline._fastpath",
    "The compiled per-frame calls of shmline's writers and readers (see shmline/_hot.py).", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__fastpath(void) {
    if (str_view == NULL && (str_view = PyUnicode_InternFromString("view")) == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    struct {
        PyTypeObject **type;
        PyType_Spec *spec;
        const char *name; /* NULL: not in the module's namespace */
    } types[] = {
        {&BoundCallType, &BoundCall_spec, NULL},
        {&WriterCoreType, &WriterCore_spec, "WriterCore"},
        {&ReaderCoreType, &ReaderCore_spec, "ReaderCore"},
        {&WriteSlotBaseType, &WriteSlotBase_spec, "WriteSlotBase"},
        {&ReadSlotBaseType, &ReadSlotBase_spec, "ReadSlotBase"},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        /* The module is made once per process: its types live as long as it does. */
        if (*types[i].type == NULL &&
            (*types[i].type = (PyTypeObject *)PyType_FromSpec(types[i].spec)) == NULL) {
            Py_DECREF(m);
            return NULL;
        }
        if (types[i].name != NULL &&
            PyModule_AddObjectRef(m, types[i].name, (PyObject *)*types[i].type) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}
