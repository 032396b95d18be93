// SPDX-License-Identifier: Apache-2.0
/* What the agent asks of a pidfd (from clinux_pidfd_open, or the bus's ProcessFD). Errors come back as
   negated errno values, as from the other clinux_ functions. */
#pragma once
#include <sys/types.h>

/* 1 when the process behind `pidfd` has exited (the pidfd polls readable; a zombie counts), 0 while
   it runs, or -errno. */
int clinux_pidfd_exited(int pidfd);

/* The PID of the process behind `pidfd` as this process sees it (/proc/self/fdinfo), 0 when it has
   exited or is outside this PID namespace, or -errno (-EINVAL: not a pidfd). */
pid_t clinux_pidfd_pid(int pidfd);
