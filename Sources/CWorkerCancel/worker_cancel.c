// SPDX-License-Identifier: Apache-2.0
#include "worker_cancel.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Event ids start at 1: 0 is "none". */
static _Atomic uint64_t requested_id;
static _Atomic uint64_t current_id;
static atomic_int cancel_fd = -1;
static int stop_signal;

static void wake(void) {
    int fd = atomic_load(&cancel_fd);
    if (fd >= 0) {
        uint64_t one = 1;
        ssize_t ignored = write(fd, &one, sizeof one);
        (void)ignored;
    }
}

static void on_stop(int signo, siginfo_t *info, void *context) {
    (void)signo;
    (void)context;
    /* Only a queued stop names its event; a plain kill(1) of the worker is not one. */
    if (info == NULL || info->si_code != SI_QUEUE)
        return;
    int saved = errno;
    uint64_t id = (uint64_t)(uintptr_t)info->si_value.sival_ptr;
    atomic_store(&requested_id, id);
    if (atomic_load(&current_id) == id)
        wake();
    errno = saved;
}

/* The one thread that takes the signal: it only waits, so no call of the plugin's is ever cut
 * short with EINTR by a stop. */
static void *catcher(void *unused) {
    (void)unused;
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, stop_signal);
    pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
    for (;;)
        pause();
    return NULL;
}

int bgsync_cancel_install(int signo) {
    atomic_store(&cancel_fd, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); /* -1: the flag still works */
    stop_signal = signo;
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, signo);
    if (pthread_sigmask(SIG_BLOCK, &blocked, NULL) != 0)
        return -1;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_stop;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(signo, &action, NULL) != 0)
        return -1;
    pthread_t thread;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, 64 * 1024);
    int started = pthread_create(&thread, &attributes, catcher, NULL);
    pthread_attr_destroy(&attributes);
    if (started != 0) {
        errno = started;
        return -1;
    }
    return 0;
}

void bgsync_cancel_begin(uint64_t event_id) {
    atomic_store(&current_id, event_id);
    int fd = atomic_load(&cancel_fd);
    if (fd >= 0) {
        uint64_t value;
        while (read(fd, &value, sizeof value) == (ssize_t)sizeof value) {
        }
    }
    if (atomic_load(&requested_id) == event_id)
        wake();
}

bool bgsync_cancel_requested(void) {
    uint64_t current = atomic_load(&current_id);
    return current != 0 && atomic_load(&requested_id) == current;
}

int bgsync_cancel_fd(void) { return atomic_load(&cancel_fd); }
