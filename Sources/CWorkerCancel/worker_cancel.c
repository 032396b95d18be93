#include "worker_cancel.h"

#include <errno.h>
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

int bgsync_cancel_install(int signo) {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    atomic_store(&cancel_fd, fd); /* -1 on failure: the flag still works */
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_cancel;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    return sigaction(signo, &action, NULL);
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
