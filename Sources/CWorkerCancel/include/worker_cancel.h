// SPDX-License-Identifier: Apache-2.0
/* The worker's side of "stop this event": while an event runs, the agent queues the stop signal
 * to the worker with sigqueue(2), the event's id as its value. The handler records the id and
 * makes an eventfd readable. In C because a signal handler may touch only lock-free atomics and
 * async-signal-safe calls (write). */
#pragma once
#include <stdbool.h>
#include <stdint.h>

/* Installs the handler for `signo`, makes the eventfd, and starts a thread that alone takes the
 * signal: it is blocked in the calling thread (and so in every thread started from it later),
 * so a stop never interrupts a plugin's blocking call with EINTR. Call it before the plugin
 * starts threads. A stop already pending (the worker starts with the signal blocked) is taken
 * then. Returns 0, or -1 with errno set. */
int bgsync_cancel_install(int signo);
/* The event `event_id` starts: the eventfd is readable only if that event was asked to stop. */
void bgsync_cancel_begin(uint64_t event_id);
/* True once the running event (the last `bgsync_cancel_begin`) was asked to stop. Any thread. */
bool bgsync_cancel_requested(void);
/* The eventfd (readable once the running event was asked to stop), or -1. */
int bgsync_cancel_fd(void);
