// SPDX-License-Identifier: Apache-2.0
/* Starting a child for the exec handler: fork and exec in C, because what must happen in the
 * child between the two (a process group, a parent-death signal) cannot be done from Swift
 * after fork in a threaded process, nor by posix_spawn (it has no parent-death signal). */
#pragma once
#include <sys/types.h>

typedef struct exec_child {
    pid_t pid;        /* the child, leader of its own process group */
    int stderr_fd;    /* read end of the child's stderr, close-on-exec */
    int pid_fd;       /* pidfd of the child, readable once it exits; close-on-exec */
} exec_child;

/* Runs argv[0] (searched in PATH when it has no '/') with argv and envp; stdin and stdout on
 * /dev/null, stderr into a pipe, no other descriptor inherited, SIGKILL when the calling
 * thread dies. Returns 0, or an errno: of exec itself (ENOENT: no such program) or of setup. */
int exec_spawn(const char *const argv[], const char *const envp[], exec_child *child);
