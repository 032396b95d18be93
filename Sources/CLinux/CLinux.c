// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE
#include "CLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

_Static_assert(CLINUX_O_PATH == O_PATH, "CLINUX_O_PATH must be O_PATH");

static int result(long value) { return value < 0 ? -errno : (int)value; }

int clinux_set_parent_death_signal(int signal) {
    return result(prctl(PR_SET_PDEATHSIG, (unsigned long)signal, 0UL, 0UL, 0UL));
}

int clinux_pidfd_open(pid_t pid) {
    /* The syscall rather than glibc's wrapper (2.36): the kernel decides, not the C library. */
    int fd = result(syscall(SYS_pidfd_open, pid, 0U));
    if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

int clinux_openat2(int dir_fd, const char *path, int flags, mode_t mode, uint64_t resolve) {
    struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC), .mode = mode, .resolve = resolve};
    /* openat2 refuses a mode without O_CREAT/O_TMPFILE. */
    if (!(flags & (O_CREAT | __O_TMPFILE))) how.mode = 0;
    long fd;
    do {
        fd = syscall(SYS_openat2, dir_fd, path, &how, sizeof how);
    } while (fd < 0 && errno == EINTR);
    return result(fd);
}

int clinux_close_range(unsigned first, unsigned last, unsigned flags) {
    return result(syscall(SYS_close_range, first, last, flags));
}

int clinux_renameat2(int from_dir_fd, const char *from, int to_dir_fd, const char *to, unsigned flags) {
    return result(renameat2(from_dir_fd, from, to_dir_fd, to, flags));
}

int clinux_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int from) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    int status = posix_spawn_file_actions_addclosefrom_np(actions, from);
    return status == 0 ? 0 : -status;
#else
    (void)actions;
    (void)from;
    return -ENOSYS;
#endif
}
