/* The worker's side of "stop this event": the agent sends SIGUSR1 to the worker while an event
 * runs; the handler sets a flag and makes an eventfd readable. In C because a signal handler may
 * touch only lock-free atomics and async-signal-safe calls (write). */
#pragma once
#include <stdbool.h>

/* Installs the handler for `signo`, makes the eventfd, starts a thread that takes the signal
 * and blocks it in the calling thread (and so in every thread it starts later): a stop never
 * interrupts a plugin's blocking call with EINTR. Call it before the plugin starts threads.
 * Returns 0, or -1 with errno set. */
int bgsync_cancel_install(int signo);
/* Clears the flag and drains the eventfd: called before each event. */
void bgsync_cancel_reset(void);
/* True once the signal came after the last reset. Any thread. */
bool bgsync_cancel_requested(void);
/* The eventfd (readable once requested), or -1. */
int bgsync_cancel_fd(void);
