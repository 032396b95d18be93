// SPDX-License-Identifier: Apache-2.0
/* Test plugin "stoppable": waits on the host's cancel fd (option "seconds", default 30) and
 * returns RETRY "stopped" when the agent asks it to stop, SUCCESS "not stopped" otherwise. The
 * detail says whether `cancelled` agreed with the fd. */
#include <poll.h>
#include <stdio.h>
#include "bgsync-plugin.h"

static void handle(const bgsync_host *host, const bgsync_event *event, bgsync_result *result) {
    if (!BGSYNC_HAS_FIELD(host, progress)) {
        snprintf(result->detail, sizeof result->detail, "the host has no cancellation (before growth 2)");
        return;
    }
    double seconds = 30;
    host->option_double(event, "seconds", &seconds);
    struct pollfd fd = {.fd = host->cancel_fd(event), .events = POLLIN};
    int ready = poll(&fd, 1, (int)(seconds * 1000));
    if (ready == 1) {
        result->status = BGSYNC_STATUS_RETRY;
        snprintf(result->detail, sizeof result->detail, "stopped (cancelled=%s)",
                 host->cancelled(event) ? "true" : "false");
    } else {
        result->status = BGSYNC_STATUS_SUCCESS;
        snprintf(result->detail, sizeof result->detail, "not stopped (cancelled=%s)",
                 host->cancelled(event) ? "true" : "false");
    }
}

static const bgsync_plugin plugin = {
    .abi_version = BGSYNC_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(bgsync_plugin),
    .name = "stoppable",
    .description = "Waits until asked to stop",
    .handle = handle,
};

BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    return host_abi_version == BGSYNC_PLUGIN_ABI_VERSION ? &plugin : NULL;
}
