// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE
#include "CLinuxPidfd.h"
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int clinux_pidfd_exited(int pidfd) {
    struct pollfd entry = {.fd = pidfd, .events = POLLIN};
    int ready;
    do {
        ready = poll(&entry, 1, 0);
    } while (ready < 0 && errno == EINTR);
    if (ready < 0) return -errno;
    if (entry.revents & POLLNVAL) return -EBADF;
    return (entry.revents & (POLLIN | POLLHUP | POLLERR)) ? 1 : 0;
}

pid_t clinux_pidfd_pid(int pidfd) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
    FILE *file = fopen(path, "re");
    if (!file) return -errno;
    char line[256];
    long pid = -2;
    while (fgets(line, sizeof line, file)) {
        if (strncmp(line, "Pid:", 4) == 0) {
            pid = strtol(line + 4, NULL, 10);
            break;
        }
    }
    fclose(file);
    if (pid == -2) return -EINVAL; /* no Pid line: not a pidfd */
    return pid < 0 ? 0 : (pid_t)pid; /* the kernel shows -1 once the process has exited */
}
