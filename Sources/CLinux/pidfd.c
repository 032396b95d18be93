#define _GNU_SOURCE
#include "CLinuxPidfd.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same on every architecture */
#endif

int bgsync_pidfd_open(pid_t pid) {
    /* A pidfd is close-on-exec without asking. */
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int bgsync_pidfd_exited(int pidfd) {
    struct pollfd entry = {.fd = pidfd, .events = POLLIN};
    int ready;
    do {
        ready = poll(&entry, 1, 0);
    } while (ready < 0 && errno == EINTR);
    if (ready < 0) return -1;
    if (entry.revents & POLLNVAL) {
        errno = EBADF;
        return -1;
    }
    return (entry.revents & (POLLIN | POLLHUP | POLLERR)) ? 1 : 0;
}

pid_t bgsync_pidfd_pid(int pidfd) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
    FILE *file = fopen(path, "re");
    if (!file) return -1;
    char line[256];
    long pid = -2;
    while (fgets(line, sizeof line, file)) {
        if (strncmp(line, "Pid:", 4) == 0) {
            pid = strtol(line + 4, NULL, 10);
            break;
        }
    }
    fclose(file);
    if (pid == -2) {
        errno = EINVAL; /* not a pidfd */
        return -1;
    }
    return pid < 0 ? 0 : (pid_t)pid; /* the kernel shows -1 once the process has exited */
}
