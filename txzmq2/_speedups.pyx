# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""
The native fast path: the FD engine's read loop and the outbound side's send, in C against
the libzmq pyzmq loaded (see ``_speedups_zmq.h``). Optional: :mod:`txzmq2._fastpath` uses it
when it is built and imports, and the pure-Python code in :mod:`txzmq2._engine` and
``ZmqConnection._sendFrames`` otherwise; the two behave the same (the test suite runs on
both).

What it saves per frame: pyzmq's ``Frame`` object, its ``more`` and ``bytes`` properties,
the ``recv`` and ``send`` wrappers, and an ``EVENTS`` read through pyzmq's option machinery.
Each frame still becomes one ``bytes`` object (the message delivered is a list of them).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_CheckSignals
from cpython.list cimport PyList_CheckExact, PyList_GET_ITEM, PyList_GET_SIZE

import errno as _errno

import zmq

cdef extern from "_speedups_zmq.h":
    ctypedef struct txzmq2_msg_t:
        pass
    ctypedef struct txzmq2_api:
        int (*msg_init)(txzmq2_msg_t *msg)
        int (*msg_recv)(txzmq2_msg_t *msg, void *socket, int flags)
        int (*msg_close)(txzmq2_msg_t *msg)
        int (*msg_move)(txzmq2_msg_t *dest, txzmq2_msg_t *src)
        void *(*msg_data)(txzmq2_msg_t *msg)
        size_t (*msg_size)(const txzmq2_msg_t *msg)
        int (*msg_more)(const txzmq2_msg_t *msg)
        const char *(*msg_gets)(const txzmq2_msg_t *msg, const char *property)
        int (*getsockopt)(void *socket, int option, void *value, size_t *length)
        int (*send)(void *socket, const void *buffer, size_t length, int flags)
        int (*errno_)()
    int txzmq2_resolve(txzmq2_api *api)
    double txzmq2_monotonic()
    int NOBLOCK "TXZMQ2_NOBLOCK"
    int SNDMORE "TXZMQ2_SNDMORE"
    int EVENTS "TXZMQ2_EVENTS"
    int POLLIN "TXZMQ2_POLLIN"

cdef txzmq2_api api
if txzmq2_resolve(&api) != 0:
    raise ImportError("no loaded libzmq found (pyzmq imported, yet zmq_msg_recv is nowhere)")

cdef int EAGAIN = _errno.EAGAIN
cdef int EINTR = _errno.EINTR
cdef int EINVAL = _errno.EINVAL
cdef int ETERM = zmq.ETERM
cdef Py_ssize_t COPY_THRESHOLD = zmq.COPY_THRESHOLD


cdef int _raise(int error) except -1:
    """Raise what pyzmq raises for ``error`` (``zmq.Again``, ``ContextTerminated``, ...)."""
    if error == EAGAIN:
        raise zmq.Again(error)
    if error == ETERM:
        raise zmq.ContextTerminated(error)
    raise zmq.ZMQError(error)


cdef inline bytes _bytesOf(txzmq2_msg_t *msg):
    return PyBytes_FromStringAndSize(<char *>api.msg_data(msg), <Py_ssize_t>api.msg_size(msg))


cdef str _property(txzmq2_msg_t *msg, str name):
    value = api.msg_gets(msg, name.encode("utf-8"))
    if value == NULL:
        _raise(api.errno_())
    return (<bytes>value).decode("utf-8")


cdef class HeldFrame:
    """
    The first frame of a long message whose reading goes on in the pure-Python loop
    (``_Engine._readLong``): kept for its metadata, which ``get`` reads as ``zmq.Frame.get``.
    """

    cdef txzmq2_msg_t msg
    cdef bint holding

    def __dealloc__(self):
        if self.holding:
            api.msg_close(&self.msg)

    def get(self, str name):
        """The metadata property ``name`` (a ``str``), as ``zmq.Frame.get``."""
        if not self.holding:
            _raise(EINVAL)
        return _property(&self.msg, name)


cdef class NativeSocket:
    """
    One connection's socket, seen by libzmq's handle (``socket.underlying``). The caller
    keeps it no longer than the socket is open: the engine calls it only from a pass of an
    open connection.

    While a message is delivered it is also the engine's ``deliveringFrame``: it holds that
    message's first frame, whose metadata ``get`` reads (``messageProperty``).
    """

    cdef void *handle
    cdef txzmq2_msg_t first
    cdef bint holding
    cdef object fallbackSend

    def __cinit__(self, socket):
        self.handle = <void *><size_t>socket.underlying
        self.holding = False

    def __init__(self, socket):
        # Frames that are not bytes, or large enough for zero copy: pyzmq's own send.
        self.fallbackSend = zmq.backend.Socket.send.__get__(socket)

    def __dealloc__(self):
        self.release()

    cdef inline void release(self):
        if self.holding:
            api.msg_close(&self.first)
            self.holding = False

    def get(self, str name):
        """The metadata property ``name`` of the message being delivered, as ``zmq.Frame.get``."""
        if not self.holding:
            _raise(EINVAL)
        return _property(&self.first, name)

    cpdef int events(self) except -1:
        """The socket's ``EVENTS`` (which, like any socket operation, consumes the FD's edge)."""
        cdef int value = 0
        cdef size_t length = sizeof(int)
        while api.getsockopt(self.handle, EVENTS, &value, &length) != 0:
            error = api.errno_()
            if error != EINTR:
                _raise(error)
            PyErr_CheckSignals()
        return value

    cdef int receive(self, txzmq2_msg_t *msg) except -2:
        """Receive one frame into ``msg`` (initialised here): 0, or -1 when none is there."""
        cdef int error
        api.msg_init(msg)
        while api.msg_recv(msg, self.handle, NOBLOCK) < 0:
            error = api.errno_()
            if error == EAGAIN:
                api.msg_close(msg)
                return -1
            if error != EINTR:
                api.msg_close(msg)
                _raise(error)
            PyErr_CheckSignals()
        return 0

    def readBatch(
        self,
        engine,
        connection,
        deliver,
        Py_ssize_t limit,
        double deadline,
        bint probe,
        Py_ssize_t count,
        Py_ssize_t longFrames,
    ):
        """
        ``_Engine._readBatch``'s loop (see there for why each step is where it is): deliver
        up to ``limit`` messages (``count`` already were), within ``deadline``
        (``time.monotonic``), looking at ``EVENTS`` first when ``probe``. A message longer
        than ``longFrames`` goes on in ``engine._readLong``. Returns ``EVENTS`` when reading
        them was the last socket operation, else ``None``.
        """
        cdef txzmq2_msg_t frame
        cdef int events
        cdef bint more
        cdef list message
        try:
            while count < limit:
                if probe:
                    events = self.events()
                    if not events & POLLIN:
                        return events
                self.release()
                if self.receive(&self.first) < 0:
                    break
                self.holding = True
                message = [_bytesOf(&self.first)]
                engine.deliveringFrame = self
                whole = True
                more = api.msg_more(&self.first)
                while more:
                    if len(message) >= longFrames:
                        held = HeldFrame()
                        api.msg_init(&(<HeldFrame>held).msg)
                        api.msg_move(&(<HeldFrame>held).msg, &self.first)
                        (<HeldFrame>held).holding = True
                        engine._partial = message
                        engine._partialFirst = held
                        whole, message = engine._readLong(deadline)
                        break
                    if self.receive(&frame) < 0:
                        break  # the XPUB quirk (see _readBatch): the message ends here
                    message.append(_bytesOf(&frame))
                    more = api.msg_more(&frame)
                    api.msg_close(&frame)
                if not whole:
                    break
                count += 1
                probe = count == 1
                if message is not None:
                    # engine._deliver, inline: a Python call less per message.
                    engine.received += 1
                    try:
                        deliver(message)
                    except Exception:
                        engine._deliveryFailed()
                    if connection._closed or connection._readPaused:
                        break
                if txzmq2_monotonic() > deadline:
                    break
            return None
        finally:
            self.release()

    def sendFrames(self, list frames):
        """
        Send ``frames`` as one message, without blocking, as ``ZmqConnection._sendFrames``
        does: ``zmq.Again`` can come only from the first frame (libzmq takes or refuses a
        message whole).
        """
        cdef Py_ssize_t last = len(frames) - 1
        cdef Py_ssize_t index
        cdef Py_ssize_t size
        cdef int flags
        cdef int error
        for index in range(last + 1):
            frame = frames[index]
            flags = NOBLOCK if index == last else NOBLOCK | SNDMORE
            if PyBytes_CheckExact(frame) and PyBytes_GET_SIZE(frame) < COPY_THRESHOLD:
                size = PyBytes_GET_SIZE(frame)
                while api.send(self.handle, PyBytes_AS_STRING(frame), <size_t>size, flags) < 0:
                    error = api.errno_()
                    if error != EINTR:
                        _raise(error)
                    PyErr_CheckSignals()
            else:
                self.fallbackSend(frame, flags, len(frame) < COPY_THRESHOLD)

    def sendOne(self, bytes frame):
        """
        Try to send ``frame`` as a whole message, without blocking: True if libzmq took it;
        False if it refused it or failed, and for a frame large enough for zero copy (the
        caller then takes its full path, which raises or queues as for any message).
        """
        cdef Py_ssize_t size = PyBytes_GET_SIZE(frame)
        if size >= COPY_THRESHOLD:
            return False
        while api.send(self.handle, PyBytes_AS_STRING(frame), <size_t>size, NOBLOCK) < 0:
            if api.errno_() != EINTR:
                return False
            PyErr_CheckSignals()
        return True

    cdef inline int sendBytes(self, object frame, int flags, bint again):
        """
        Send the ``bytes`` ``frame`` with ``flags``: 0, or -1 with the error in ``errno``.
        ``again``: retry an interrupted call (EINTR); otherwise that fails too. It runs no
        Python code (no signal handlers), so nothing can change the caller's lists under it.
        """
        while api.send(self.handle, PyBytes_AS_STRING(frame), <size_t>PyBytes_GET_SIZE(frame), flags) < 0:
            if not again or api.errno_() != EINTR:
                return -1
        return 0

    def sendMany(self, list messages, Py_ssize_t index, outbound):
        """
        ``ZmqConnection.sendMany``'s loop, without blocking: send ``messages[index:]`` while
        each message is one ``bytes`` frame (exactly, below ``zmq.COPY_THRESHOLD``) or a
        list of such frames, and libzmq takes it at once. Returns the index of the first
        message not sent (refused, failed, interrupted, or not one of those): the caller
        gives it the full path, which tries it again and queues or raises as for any
        message. Adds the messages sent to ``outbound.sent``.

        No Python code runs inside the loop (signals wait for the caller), so the lists
        cannot change while it reads them without bounds checks.
        """
        cdef Py_ssize_t start = index
        cdef Py_ssize_t count = len(messages)
        cdef Py_ssize_t last
        cdef Py_ssize_t position
        cdef object message
        cdef object frame
        try:
            while index < count:
                message = <object>PyList_GET_ITEM(messages, index)
                if PyBytes_CheckExact(message):
                    if PyBytes_GET_SIZE(message) >= COPY_THRESHOLD:
                        return index
                    if self.sendBytes(message, NOBLOCK, False) < 0:
                        return index
                else:
                    if not PyList_CheckExact(message):
                        return index
                    last = PyList_GET_SIZE(message) - 1
                    if last < 0:
                        return index
                    # Every frame checked first: a message cannot be given up half sent.
                    for position in range(last + 1):
                        frame = <object>PyList_GET_ITEM(message, position)
                        if not PyBytes_CheckExact(frame) or PyBytes_GET_SIZE(frame) >= COPY_THRESHOLD:
                            return index
                    if self.sendBytes(
                        <object>PyList_GET_ITEM(message, 0),
                        NOBLOCK | SNDMORE if last else NOBLOCK,
                        False,
                    ) < 0:
                        return index
                    # Accepted whole at its first frame: the others cannot be refused.
                    for position in range(1, last + 1):
                        if self.sendBytes(
                            <object>PyList_GET_ITEM(message, position),
                            NOBLOCK if position == last else NOBLOCK | SNDMORE,
                            True,
                        ) < 0:
                            _raise(api.errno_())
                index += 1
            return index
        finally:
            outbound.sent += index - start
