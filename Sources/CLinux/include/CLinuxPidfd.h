/* pidfd system calls (Linux 5.3+), which Debian 12's glibc headers do not all wrap. */
#pragma once
#include <sys/types.h>

/* pidfd_open(2): a pidfd for `pid`, close-on-exec; -1 with errno set (ENOSYS on older kernels). */
int bgsync_pidfd_open(pid_t pid);

/* 1 when the process behind `pidfd` has exited (the pidfd polls readable), 0 while it runs,
   -1 with errno set when it cannot be told. A zombie counts as exited. */
int bgsync_pidfd_exited(int pidfd);

/* The PID of the process behind `pidfd`, from /proc/self/fdinfo; 0 when it has exited,
   -1 with errno set when it cannot be read. */
pid_t bgsync_pidfd_pid(int pidfd);
