/* skqueue._accel: the optional C accelerator of skqueue's per-event path.

   The pure-Python path is the reference (skqueue/accel.py says when this module is
   used).  Everything here does exactly what that path does, with the same system
   calls in the same order, and leaves every decision it is not sure of to Python:

   report_plain  is FdFilter.report_ready's leading run: for each ready (fd, events)
                 in epoll's order, while the fd's watch serves a plain READ that can be
                 reported straight from the harvest (KqueueCore.report_now), it makes
                 that delivery's FIONREAD and epoll_ctl(MOD) re-arm, fills the knote
                 and appends it to the harvest's list.  It stops at the first entry it
                 cannot take whole, and the Python dispatch runs from there, so the
                 order of events and of system calls is the pure path's; where it stops
                 after a system call (no bytes after all, a re-arm refused for a closed
                 fd), the Python path makes that call again and decides.
   events_of     is KqueueCore's _events_of: one kevent per reported knote, clearing
                 KN_REPORTED.
   measure_plain is FdFilter.measure_unlocked's system calls, for an SKQ scan's plain
                 READ delivery without the kqueue lock (it touches no Python object).

   Every knote and watch field is read and written through its slot's own descriptor
   functions (configure() binds them), so the objects stay Python's (locking on
   free-threaded builds); the caller holds the kqueue lock, which guards them.  The
   module keeps no state but interned names and those bindings, made once at import,
   and declares that it needs no GIL. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#endif

#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>

/* One slot of one class: read and written through its member descriptor's own
   functions (what obj.name does, without looking the name up in the type each time),
   or through the attribute protocol for an object of any other type. */
typedef struct {
    const char *name;
    PyObject *interned;
    PyTypeObject *owner;  /* set by configure() */
    PyMemberDef *member;
} Field;

enum { KN_STATUS, KN_DATA, KN_FFLAGS, KN_OFLAGS, KN_IDENT, KN_FILTER, KN_FLAGS, KN_UDATA,
       W_HANDLER, W_PLAIN, W_REVENTS, W_ARMED, W_EDGE,
       EV_IDENT, EV_FILTER, EV_FLAGS, EV_FFLAGS, EV_DATA, EV_UDATA, N_FIELDS };

#define FIELD(name) {name, NULL, NULL, NULL}
static Field fields[N_FIELDS] = {
    FIELD("status"),  FIELD("data"),  FIELD("fflags"),  FIELD("oflags"), FIELD("ident"),
    FIELD("filter"),  FIELD("flags"), FIELD("udata"),   FIELD("handler"), FIELD("plain"),
    FIELD("revents"), FIELD("armed"), FIELD("edge"),    FIELD("ident"),  FIELD("filter"),
    FIELD("flags"),   FIELD("fflags"), FIELD("data"),   FIELD("udata"),
};

static PyObject *
get(PyObject *obj, int field)
{
    Field *f = &fields[field];
    if (f->member != NULL && Py_TYPE(obj) == f->owner) {
        return PyMember_GetOne((const char *)obj, f->member);
    }
    return PyObject_GetAttr(obj, f->interned);
}

static int
set(PyObject *obj, int field, PyObject *value)
{
    Field *f = &fields[field];
    if (f->member != NULL && Py_TYPE(obj) == f->owner) {
        return PyMember_SetOne((char *)obj, f->member, value);
    }
    return PyObject_SetAttr(obj, f->interned, value);
}

static int
get_long(PyObject *obj, int field, long *out)
{
    PyObject *value = get(obj, field);
    if (value == NULL) {
        return -1;
    }
    *out = PyLong_AsLong(value);
    Py_DECREF(value);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int
set_long(PyObject *obj, int field, long value)
{
    PyObject *number = PyLong_FromLong(value);
    if (number == NULL) {
        return -1;
    }
    int result = set(obj, field, number);
    Py_DECREF(number);
    return result;
}

/* The fast-call functions' argument checks: 0, or -1 with TypeError/OverflowError. */
static int
expect(const char *name, Py_ssize_t nargs, Py_ssize_t want)
{
    if (nargs == want) {
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "%s takes %zd arguments (%zd given)", name, want, nargs);
    return -1;
}

static int
longs_of(PyObject *const *args, Py_ssize_t n, long *out)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = PyLong_AsLong(args[i]);
        if (out[i] == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    return 0;
}

/* watches[fd] as a new reference: 1 found, 0 absent, -1 error. */
static int
lookup(PyObject *dict, PyObject *key, PyObject **out)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyDict_GetItemRef(dict, key, out);
#else
    PyObject *value = PyDict_GetItemWithError(dict, key);
    *out = Py_XNewRef(value);
    return value != NULL ? 1 : (PyErr_Occurred() ? -1 : 0);
#endif
}

/* The masks report_plain is given: on_ready's and _deliver_plain's constants. */
typedef struct {
    long blockers, unusual, in_bits, rearm, reported;
} Masks;

/* Fill kn and watch as FdFilter._deliver_plain does after its system calls. */
static int
fill_plain(PyObject *watch, PyObject *kn, long status, long revents, long nread, const Masks *m)
{
    if (revents && set_long(watch, W_REVENTS, revents & ~m->in_bits) < 0) {
        return -1;
    }
    if (set_long(watch, W_ARMED, m->in_bits) < 0 || set(watch, W_EDGE, Py_False) < 0 ||
        set_long(kn, KN_DATA, nread) < 0 || set_long(kn, KN_FFLAGS, 0) < 0 ||
        set_long(kn, KN_OFLAGS, 0) < 0) {
        return -1;
    }
    return set_long(kn, KN_STATUS, status | m->reported);
}

/* The delivery's system calls: FIONREAD, for a FIFO a poll(2) that looks for a
   hang-up (unusual: the revents that make it), then the re-arm (which also proves that
   fd still names the file it was registered on).  The bytes readable, or 0: not taken. */
static int
measure_and_rearm(int epfd, int fd, long rearm, long unusual)
{
    int nread = 0;
    if (ioctl(fd, FIONREAD, &nread) < 0 || nread <= 0) {
        return 0;
    }
    if (unusual) {
        struct pollfd look = {.fd = fd, .events = POLLIN | POLLOUT | POLLRDHUP};
        if (poll(&look, 1, 0) < 0 || look.revents & unusual) {
            return 0;
        }
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = (uint32_t)rearm;
    ev.data.fd = fd;  /* what select.epoll registers, and its poll() reports */
    return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? 0 : nread;
}

/* One ready entry: 1 reported, 0 left to Python, -1 error. */
static int
report_one(int epfd, PyObject *entry, PyObject *handlers, PyObject *watches, PyObject *reported,
           const Masks *m)
{
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2) {
        return 0;
    }
    PyObject *fd_obj = PyTuple_GET_ITEM(entry, 0);
    long events = PyLong_AsLong(PyTuple_GET_ITEM(entry, 1));
    long fd = PyLong_AsLong(fd_obj);
    if ((events == -1 || fd == -1) && PyErr_Occurred()) {
        return -1;
    }
    if (events & m->unusual) {
        return 0;
    }
    /* The harvest runs handlers[fd]; only a watch's own handler is served here (the
       number may have been closed and reused by one of the kqueue's own fds). */
    PyObject *handler = NULL, *watch = NULL, *watch_handler = NULL, *kn = NULL;
    int result = lookup(handlers, fd_obj, &handler);
    if (result > 0) {
        result = lookup(watches, fd_obj, &watch);
    }
    if (result <= 0) {
        goto done;
    }
    result = -1;
    long status, revents;
    if ((watch_handler = get(watch, W_HANDLER)) == NULL || (kn = get(watch, W_PLAIN)) == NULL) {
        goto done;
    }
    result = 0;
    if (watch_handler != handler || kn == Py_None) {
        goto done;
    }
    if (get_long(kn, KN_STATUS, &status) < 0 || get_long(watch, W_REVENTS, &revents) < 0) {
        result = -1;
        goto done;
    }
    if (status & m->blockers || revents & m->unusual) {
        goto done;
    }
    int nread = measure_and_rearm(epfd, (int)fd, m->rearm, 0);
    if (nread == 0) {
        goto done;
    }
    /* Listed first: whatever fails after, the harvest's end clears KN_REPORTED of it. */
    result = PyList_Append(reported, kn) < 0 || fill_plain(watch, kn, status, revents, nread, m) < 0
                 ? -1
                 : 1;
done:
    Py_XDECREF(kn);
    Py_XDECREF(watch_handler);
    Py_XDECREF(watch);
    Py_XDECREF(handler);
    return result;
}

PyDoc_STRVAR(report_plain_doc,
"report_plain(epfd, ready, handlers, watches, reported, room, masks) -> int\n\n"
"Report the leading run of ready plain READs straight from a harvest, appending their\n"
"knotes to reported (up to room in all); the number of ready entries taken.  masks:\n"
"(knote status bits that forbid it, unusual epoll bits, the read bits, the re-arm mask,\n"
"KN_REPORTED).");

static PyObject *
report_plain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    long epfd;
    if (expect("report_plain", nargs, 7) < 0 || longs_of(args, 1, &epfd) < 0) {
        return NULL;
    }
    PyObject *ready = args[1], *handlers = args[2], *watches = args[3], *reported = args[4];
    Py_ssize_t room = PyLong_AsSsize_t(args[5]);
    Masks m;
    if (room == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyList_Check(ready) || !PyDict_Check(handlers) || !PyDict_Check(watches) ||
        !PyList_Check(reported) ||
        !PyArg_ParseTuple(args[6], "lllll", &m.blockers, &m.unusual, &m.in_bits, &m.rearm,
                          &m.reported)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "report_plain: list, dict, dict, list expected");
        }
        return NULL;
    }
    Py_ssize_t taken = 0;
    while (taken < PyList_GET_SIZE(ready) && PyList_GET_SIZE(reported) < room) {
        int result = report_one((int)epfd, PyList_GET_ITEM(ready, taken), handlers, watches,
                                reported, &m);
        if (result < 0) {
            return NULL;
        }
        if (result == 0) {
            break;
        }
        taken++;
    }
    return PyLong_FromSsize_t(taken);
}

PyDoc_STRVAR(measure_plain_doc,
"measure_plain(epfd, fd, rearm, fifo_unusual) -> int\n\n"
"FdFilter.measure_unlocked's system calls for fd: FIONREAD, for a FIFO (fifo_unusual,\n"
"the poll(2) revents that send it the general way; 0 for others) a poll, the re-arm.\n"
"The bytes readable, or 0 when anything is unusual.  Touches no Python object: it\n"
"runs without the kqueue lock.");

static PyObject *
measure_plain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    long values[4];
    if (expect("measure_plain", nargs, 4) < 0 || longs_of(args, 4, values) < 0) {
        return NULL;
    }
    return PyLong_FromLong(measure_and_rearm((int)values[0], (int)values[1], values[2], values[3]));
}

/* kevent(kn.ident, kn.filter, kn.flags | kn.oflags, kn.fflags, kn.data, kn.udata),
   built as skqueue.event.event builds it: without the constructor's checks. */
static PyObject *
event_of(PyTypeObject *kevent_type, PyObject *kn)
{
    static const int copied[][2] = {{KN_IDENT, EV_IDENT}, {KN_FILTER, EV_FILTER},
                                    {KN_FFLAGS, EV_FFLAGS}, {KN_DATA, EV_DATA},
                                    {KN_UDATA, EV_UDATA}};
    long flags, oflags;
    if (get_long(kn, KN_FLAGS, &flags) < 0 || get_long(kn, KN_OFLAGS, &oflags) < 0) {
        return NULL;
    }
    PyObject *ev = kevent_type->tp_alloc(kevent_type, 0);
    if (ev == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof copied / sizeof copied[0]; i++) {
        PyObject *value = get(kn, copied[i][0]);
        int failed = value == NULL || set(ev, copied[i][1], value) < 0;
        Py_XDECREF(value);
        if (failed) {
            Py_DECREF(ev);
            return NULL;
        }
    }
    if (set_long(ev, EV_FLAGS, flags | oflags) < 0) {
        Py_DECREF(ev);
        return NULL;
    }
    return ev;
}

PyDoc_STRVAR(events_of_doc,
"events_of(kevent_type, reported, reported_bit) -> list\n\n"
"One kevent per reported knote, in order; clears reported_bit in each knote's status.");

static PyObject *
events_of(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyType_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "events_of(kevent_type, reported, reported_bit)");
        return NULL;
    }
    PyTypeObject *kevent_type = (PyTypeObject *)args[0];
    PyObject *reported = args[1];
    long reported_bit = PyLong_AsLong(args[2]);
    if (reported_bit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(reported);
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *kn = PyList_GET_ITEM(reported, i);
        long status;
        PyObject *ev = NULL;
        if (get_long(kn, KN_STATUS, &status) < 0 ||
            set_long(kn, KN_STATUS, status & ~reported_bit) < 0 ||
            (ev = event_of(kevent_type, kn)) == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, ev);
    }
    return out;
}

/* Bind fields[first..last) to the slots of type: its member descriptors. */
static int
bind(PyTypeObject *type, int first, int last)
{
    for (int i = first; i < last; i++) {
        PyObject *descr = PyObject_GetAttr((PyObject *)type, fields[i].interned);
        if (descr == NULL) {
            return -1;
        }
        if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
            Py_DECREF(descr);
            PyErr_Format(PyExc_TypeError, "%s.%s is not a slot", type->tp_name, fields[i].name);
            return -1;
        }
        /* The type owns the descriptor and its PyMemberDef; we keep the type. */
        fields[i].member = ((PyMemberDescrObject *)descr)->d_member;
        fields[i].owner = (PyTypeObject *)Py_NewRef(type);
        Py_DECREF(descr);
    }
    return 0;
}

PyDoc_STRVAR(configure_doc,
"configure(knote_type, watch_type, kevent_type) -> None\n\n"
"Read and write the fields of these classes through their slots' descriptors.  Once,\n"
"at import (skqueue.accel), before any other call.");

static PyObject *
configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyType_Check(args[0]) || !PyType_Check(args[1]) ||
        !PyType_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "configure(knote_type, watch_type, kevent_type)");
        return NULL;
    }
    if (fields[0].owner != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() was called already");
        return NULL;
    }
    if (bind((PyTypeObject *)args[0], KN_STATUS, W_HANDLER) < 0 ||
        bind((PyTypeObject *)args[1], W_HANDLER, EV_IDENT) < 0 ||
        bind((PyTypeObject *)args[2], EV_IDENT, N_FIELDS) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef accel_methods[] = {
    {"report_plain", (PyCFunction)(void (*)(void))report_plain, METH_FASTCALL, report_plain_doc},
    {"events_of", (PyCFunction)(void (*)(void))events_of, METH_FASTCALL, events_of_doc},
    {"measure_plain", (PyCFunction)(void (*)(void))measure_plain, METH_FASTCALL,
     measure_plain_doc},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL, configure_doc},
    {NULL, NULL, 0, NULL},
};

static int
accel_exec(PyObject *module)
{
    for (int i = 0; i < N_FIELDS; i++) {
        if (fields[i].interned == NULL) {
            fields[i].interned = PyUnicode_InternFromString(fields[i].name);
            if (fields[i].interned == NULL) {
                return -1;
            }
        }
    }
    return 0;
}

static PyModuleDef_Slot accel_slots[] = {
    {Py_mod_exec, accel_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef accel_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "skqueue._accel",
    .m_doc = "The optional C accelerator of skqueue's per-event path (see skqueue.accel).",
    .m_size = 0,
    .m_methods = accel_methods,
    .m_slots = accel_slots,
};

PyMODINIT_FUNC
PyInit__accel(void)
{
    return PyModuleDef_Init(&accel_module);
}
