/*
 * shmline._fastpath: the per-frame calls of `Writer` and `Reader` compiled against the CPython
 * API, for API-mode builds (bindings/python/setup.py builds it beside the cffi module; ABI-mode
 * builds go without it and the package uses its cffi paths instead).
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
 * never waits, never raises a shmline error, and never guesses what the Python code would do.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
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
    if (!PyTuple_Check(shape) || PyTuple_GET_SIZE(shape) > MAX_DIMS) {
        PyErr_SetString(PyExc_ValueError, "shape must be a tuple of at most 16 dimensions");
        return -1;
    }
    s->nd = (int)PyTuple_GET_SIZE(shape);
    for (int i = 0; i < s->nd; i++) {
        s->dims[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(shape, i));
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

/* A C handle given as the integer value of its cffi pointer. */
static void *handle_of(PyObject *address) {
    void *p = PyLong_AsVoidPtr(address);
    if (p == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "the handle is NULL");
    return p;
}

/* ------------------------------------------------------------------------------------------ */
/* Writer                                                                                     */

typedef struct {
    PyObject_HEAD
    struct shmline_writer *h; /* NULL once detached (the Python writer closed it) */
    schema s;
    int enabled; /* whether write() may take the fast path (not under "drop_newest") */
    uintptr_t slot;
} WriterCore;

static int WriterCore_init(WriterCore *self, PyObject *args, PyObject *kwds) {
    PyObject *address, *ndarray, *dtype, *shape;
    Py_ssize_t frame_size;
    int enabled;
    if (!PyArg_ParseTuple(args, "OOOOnp", &address, &ndarray, &dtype, &shape, &frame_size,
                          &enabled))
        return -1;
    if ((self->h = handle_of(address)) == NULL)
        return -1;
    self->enabled = enabled;
    return schema_init(&self->s, ndarray, dtype, shape, frame_size);
}

static void WriterCore_dealloc(WriterCore *self) {
    schema_clear(&self->s);
    Py_TYPE(self)->tp_free((PyObject *)self);
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

/* detach(): forgets the handle, which the Python writer is about to close. */
static PyObject *WriterCore_detach(WriterCore *self, PyObject *unused) {
    self->h = NULL;
    Py_RETURN_NONE;
}

static PyMethodDef WriterCore_methods[] = {
    {"write", (PyCFunction)(void (*)(void))WriterCore_write, METH_FASTCALL,
     "write(frame, flags) -> True if written now, False if nothing was done."},
    {"reserve", (PyCFunction)WriterCore_reserve, METH_NOARGS,
     "reserve() -> the address of the slot reserved now, or None."},
    {"commit", (PyCFunction)(void (*)(void))WriterCore_commit, METH_FASTCALL,
     "commit(nbytes, flags) -> the library's status."},
    {"detach", (PyCFunction)WriterCore_detach, METH_NOARGS, "Forgets the handle."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject WriterCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "shmline._fastpath.WriterCore",
    .tp_doc = "The compiled per-frame calls of one writer handle.",
    .tp_basicsize = sizeof(WriterCore),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)WriterCore_init,
    .tp_dealloc = (destructor)WriterCore_dealloc,
    .tp_methods = WriterCore_methods,
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
} ReaderCore;

static int ReaderCore_init(ReaderCore *self, PyObject *args, PyObject *kwds) {
    PyObject *address, *ndarray, *dtype, *shape, *info, *scratch;
    Py_ssize_t frame_size, max_frame_size;
    if (!PyArg_ParseTuple(args, "OOOOnnOO", &address, &ndarray, &dtype, &shape, &frame_size,
                          &max_frame_size, &info, &scratch))
        return -1;
    if ((self->h = handle_of(address)) == NULL)
        return -1;
    if ((self->info = handle_of(info)) == NULL)
        return -1;
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

static void ReaderCore_dealloc(ReaderCore *self) {
    schema_clear(&self->s);
    Py_CLEAR(self->scratch);
    Py_CLEAR(self->copy);
    PyMem_Free(self->bytes_buf);
    Py_TYPE(self)->tp_free((PyObject *)self);
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

static PyObject *ReaderCore_detach(ReaderCore *self, PyObject *unused) {
    self->h = NULL;
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
    {"detach", (PyCFunction)ReaderCore_detach, METH_NOARGS, "Forgets the handle."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReaderCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "shmline._fastpath.ReaderCore",
    .tp_doc = "The compiled per-frame calls of one reader handle.",
    .tp_basicsize = sizeof(ReaderCore),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ReaderCore_init,
    .tp_dealloc = (destructor)ReaderCore_dealloc,
    .tp_methods = ReaderCore_methods,
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
        PyTuple_SET_ITEM(shape, i, PyLong_FromSsize_t(a->dimensions[i]));
    return Py_BuildValue("(NiNOOO)", PyLong_FromVoidPtr(a->data), a->nd, shape, a->descr,
                         (a->flags & NP_C_CONTIGUOUS) ? Py_True : Py_False,
                         (a->flags & NP_WRITEABLE) ? Py_True : Py_False);
}

static PyMethodDef module_methods[] = {
    {"facts", facts, METH_O, "What this module reads of a NumPy array."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "shmline._fastpath",
    "The compiled per-frame calls of shmline's writers and readers (see shmline/_hot.py).", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__fastpath(void) {
    if (PyType_Ready(&WriterCoreType) < 0 || PyType_Ready(&ReaderCoreType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&WriterCoreType);
    Py_INCREF(&ReaderCoreType);
    if (PyModule_AddObject(m, "WriterCore", (PyObject *)&WriterCoreType) < 0 ||
        PyModule_AddObject(m, "ReaderCore", (PyObject *)&ReaderCoreType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
