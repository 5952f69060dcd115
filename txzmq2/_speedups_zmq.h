/*
 * The part of libzmq's C API the native fast path (txzmq2/_speedups.pyx) calls, and how it
 * finds the libzmq that pyzmq has already loaded.
 *
 * No libzmq header or library is needed to build: pyzmq's wheels ship libzmq as a shared
 * library under a hashed file name (and no zmq.h), and the one to call is the one pyzmq
 * loaded, whatever it is (a wheel's, the system's, or linked into pyzmq's own extension).
 * So the functions are looked up at import time among the objects loaded in this process
 * (dl_iterate_phdr, then dlsym on a handle opened with RTLD_NOLOAD: nothing new is loaded).
 * The declarations follow libzmq's stable 4.x ABI: a message is 64 bytes, pointer-aligned.
 */
#ifndef TXZMQ2_SPEEDUPS_ZMQ_H
#define TXZMQ2_SPEEDUPS_ZMQ_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <link.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

typedef struct {
    unsigned char opaque[64];
} __attribute__((aligned(sizeof(void *)))) txzmq2_msg_t;

typedef struct {
    int (*msg_init)(txzmq2_msg_t *msg);
    int (*msg_recv)(txzmq2_msg_t *msg, void *socket, int flags);
    int (*msg_close)(txzmq2_msg_t *msg);
    int (*msg_move)(txzmq2_msg_t *dest, txzmq2_msg_t *src);
    void *(*msg_data)(txzmq2_msg_t *msg);
    size_t (*msg_size)(const txzmq2_msg_t *msg);
    int (*msg_more)(const txzmq2_msg_t *msg);
    const char *(*msg_gets)(const txzmq2_msg_t *msg, const char *property);
    int (*getsockopt)(void *socket, int option, void *value, size_t *length);
    int (*send)(void *socket, const void *buffer, size_t length, int flags);
    int (*errno_)(void);
} txzmq2_api;

/* The libzmq constants used (stable since libzmq 2/3). */
#define TXZMQ2_NOBLOCK 1
#define TXZMQ2_SNDMORE 2
#define TXZMQ2_EVENTS 15
#define TXZMQ2_POLLIN 1

static int txzmq2_fill(void *handle, txzmq2_api *api) {
#define TXZMQ2_SYMBOL(field, name)                                  \
    *(void **)(&api->field) = dlsym(handle, name);                  \
    if (api->field == NULL) return -1;
    TXZMQ2_SYMBOL(msg_init, "zmq_msg_init")
    TXZMQ2_SYMBOL(msg_recv, "zmq_msg_recv")
    TXZMQ2_SYMBOL(msg_close, "zmq_msg_close")
    TXZMQ2_SYMBOL(msg_move, "zmq_msg_move")
    TXZMQ2_SYMBOL(msg_data, "zmq_msg_data")
    TXZMQ2_SYMBOL(msg_size, "zmq_msg_size")
    TXZMQ2_SYMBOL(msg_more, "zmq_msg_more")
    TXZMQ2_SYMBOL(msg_gets, "zmq_msg_gets")
    TXZMQ2_SYMBOL(getsockopt, "zmq_getsockopt")
    TXZMQ2_SYMBOL(send, "zmq_send")
    TXZMQ2_SYMBOL(errno_, "zmq_errno")
#undef TXZMQ2_SYMBOL
    return 0;
}

typedef struct {
    txzmq2_api *api;
    int found;
} txzmq2_search;

static int txzmq2_visit(struct dl_phdr_info *info, size_t size, void *data) {
    txzmq2_search *search = (txzmq2_search *)data;
    void *handle;
    (void)size;
    /* The main program has no name; a libzmq linked into it is found by dlsym(NULL) below. */
    if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0') return 0;
    handle = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
    if (handle == NULL) return 0;
    if (dlsym(handle, "zmq_msg_recv") != NULL && txzmq2_fill(handle, search->api) == 0) {
        /* Kept open (a reference, nothing loaded): libzmq stays as long as we may call it. */
        search->found = 1;
        return 1;
    }
    dlclose(handle);
    return 0;
}

/* Fill ``api`` from the loaded libzmq: 0 when found, -1 when no loaded object has it. */
static int txzmq2_resolve(txzmq2_api *api) {
    txzmq2_search search = {api, 0};
    memset(api, 0, sizeof(*api));
    dl_iterate_phdr(txzmq2_visit, &search);
    if (search.found) return 0;
    return txzmq2_fill(RTLD_DEFAULT, api);
}

/* The clock time.monotonic() reads on Linux, in seconds. */
static double txzmq2_monotonic(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

#endif
