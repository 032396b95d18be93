// SPDX-License-Identifier: Apache-2.0
#define _GNU_SOURCE
#include "exec_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Only async-signal-safe calls between fork and exec. */
static void run_child(const char *const argv[], const char *const envp[], pid_t parent, int err_write,
                      int stderr_write, int null_fd) {
    int error = 0;
    if (setpgid(0, 0) < 0) goto fail;
    /* Die with the worker, even if it is SIGKILLed. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) goto fail;
    if (getppid() != parent) _exit(127); /* the worker died already */
    if (dup2(null_fd, 0) < 0 || dup2(null_fd, 1) < 0 || dup2(stderr_write, 2) < 0) goto fail;
    /* The worker's own descriptors (its pipe to the agent, say) are not the child's business;
     * close-on-exec keeps err_write open until exec succeeds. */
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    execvpe(argv[0], (char *const *)argv, (char *const *)envp);
fail:
    error = errno;
    (void)!write(err_write, &error, sizeof error);
    _exit(127);
}

int exec_spawn(const char *const argv[], const char *const envp[], exec_child *child) {
    int err_pipe[2], out_pipe[2];
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0) return errno;
    if (pipe2(err_pipe, O_CLOEXEC) < 0) {
        int e = errno;
        close(null_fd);
        return e;
    }
    if (pipe2(out_pipe, O_CLOEXEC) < 0) {
        int e = errno;
        close(null_fd), close(err_pipe[0]), close(err_pipe[1]);
        return e;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) run_child(argv, envp, parent, err_pipe[1], out_pipe[1], null_fd);
    int fork_error = pid < 0 ? errno : 0;
    close(null_fd), close(err_pipe[1]), close(out_pipe[1]);
    if (fork_error) {
        close(err_pipe[0]), close(out_pipe[0]);
        return fork_error;
    }
    setpgid(pid, pid); /* also here, so a kill of the group right away cannot miss */

    /* The exec either closes err_pipe (success: EOF) or the child writes its errno. */
    int child_error = 0;
    ssize_t n;
    do n = read(err_pipe[0], &child_error, sizeof child_error);
    while (n < 0 && errno == EINTR);
    close(err_pipe[0]);
    if (n == sizeof child_error) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        close(out_pipe[0]);
        return child_error ? child_error : ECHILD;
    }
    int pid_fd = pidfd_open(pid, 0);
    if (pid_fd < 0) {
        int e = errno;
        kill(-pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        close(out_pipe[0]);
        return e;
    }
    child->pid = pid;
    child->stderr_fd = out_pipe[0];
    child->pid_fd = pid_fd;
    return 0;
}
