// SPDX-License-Identifier: Apache-2.0
/* Test plugin "noop": succeeds at once; the detail is the worker's pid, so tests can count the
 * processes that served a burst. */
#include <stdio.h>
#include <unistd.h>
#include "bgsync-plugin.h"

static void handle(const bgsync_host *host, const bgsync_event *event, bgsync_result *result) {
    (void)host;
    (void)event;
    result->status = BGSYNC_STATUS_SUCCESS;
    snprintf(result->detail, sizeof result->detail, "pid %ld", (long)getpid());
}

static const bgsync_plugin plugin = {
    .abi_version = BGSYNC_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(bgsync_plugin),
    .name = "noop",
    .description = "Does nothing, quickly",
    .sandbox_safe = true,
    .handle = handle,
};

BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    return host_abi_version == BGSYNC_PLUGIN_ABI_VERSION ? &plugin : NULL;
}
