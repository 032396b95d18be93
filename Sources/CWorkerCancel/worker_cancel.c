#include "worker_cancel.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static atomic_bool requested;
static atomic_int cancel_fd = -1;

static void on_cancel(int signo) {
    (void)signo;
    int saved = errno;
    atomic_store(&requested, true);
    int fd = atomic_load(&cancel_fd);
    if (fd >= 0) {
        uint64_t one = 1;
        ssize_t ignored = write(fd, &one, sizeof one);
        (void)ignored;
    }
    errno = saved;
}

/* The one thread that takes the signal: it only waits, so no call of the plugin's is ever cut
 * short with EINTR by a stop. */
static void *catcher(void *unused) {
    (void)unused;
    for (;;)
        pause();
    return NULL;
}

int bgsync_cancel_install(int signo) {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    atomic_store(&cancel_fd, fd); /* -1 on failure: the flag still works */
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_cancel;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(signo, &action, NULL) != 0)
        return -1;
    /* Started before the signal is blocked here, so it alone (with threads that existed already)
     * takes it; the plugin's threads, started later from this one, inherit the block. */
    pthread_t thread;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, 64 * 1024);
    int started = pthread_create(&thread, &attributes, catcher, NULL);
    pthread_attr_destroy(&attributes);
    if (started != 0) {
        errno = started;
        return -1; /* the handler still catches it, on whichever thread */
    }
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, signo);
    return pthread_sigmask(SIG_BLOCK, &blocked, NULL) == 0 ? 0 : -1;
}

void bgsync_cancel_reset(void) {
    atomic_store(&requested, false);
    int fd = atomic_load(&cancel_fd);
    if (fd >= 0) {
        uint64_t value;
        while (read(fd, &value, sizeof value) == (ssize_t)sizeof value) {
        }
    }
}

bool bgsync_cancel_requested(void) { return atomic_load(&requested); }

int bgsync_cancel_fd(void) { return atomic_load(&cancel_fd); }
