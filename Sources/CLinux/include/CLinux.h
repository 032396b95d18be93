// SPDX-License-Identifier: Apache-2.0
/* Linux system headers that Swift's Glibc module does not export, and small C functions for the
 * system calls Swift cannot call directly: variadic ones (prctl), ones glibc does not wrap or
 * wraps only in newer versions (openat2, pidfd_open, close_range), and ones Swift's Glibc module
 * hides (posix_spawn_file_actions_addclosefrom_np, renameat2). Every function returns what the
 * call returns on success and a negated errno on failure (never sets errno for the caller to
 * read), -ENOSYS where the kernel or C library lacks the call. */
#pragma once
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/signalfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <linux/openat2.h>

/* O_PATH, which Swift's Glibc module hides (it needs _GNU_SOURCE). */
#define CLINUX_O_PATH 010000000

/* prctl(PR_SET_PDEATHSIG, signal): this process gets `signal` when its parent dies. */
int clinux_set_parent_death_signal(int signal);

/* pidfd_open(2): a pidfd (close-on-exec) for `pid`. Linux 5.3. */
int clinux_pidfd_open(pid_t pid);

/* openat2(2) with `how` = {flags | O_CLOEXEC, mode, resolve}. Linux 5.6. */
int clinux_openat2(int dir_fd, const char *path, int flags, mode_t mode, uint64_t resolve);

/* close_range(2): closes (or with CLOSE_RANGE_CLOEXEC marks close-on-exec) fds first..last. */
int clinux_close_range(unsigned first, unsigned last, unsigned flags);
#define CLINUX_CLOSE_RANGE_CLOEXEC (1U << 2)

/* renameat2(2); flags 0 or RENAME_NOREPLACE. */
int clinux_renameat2(int from_dir_fd, const char *from, int to_dir_fd, const char *to, unsigned flags);
#define CLINUX_RENAME_NOREPLACE (1U << 0)

/* posix_spawn_file_actions_addclosefrom_np (glibc 2.34): the child closes every fd >= `from`. */
int clinux_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int from);
#include "CLinuxPidfd.h"
