// SPDX-License-Identifier: Apache-2.0
/* Test plugin "retry": asks to be retried in no less than 42 seconds, or as many as its
 * "retry-after" option says (0: no hint, the normal back-off). */
#include <stdio.h>
#include "bgsync-plugin.h"

static void handle(const bgsync_host *host, const bgsync_event *event, bgsync_result *result) {
    int64_t after = 42;
    host->option_int(event, "retry-after", &after);
    result->status = BGSYNC_STATUS_RETRY;
    result->retry_after = (double)after;
    snprintf(result->detail, sizeof result->detail, "HTTP 503");
}

static const bgsync_plugin plugin = {
    .abi_version = BGSYNC_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(bgsync_plugin),
    .name = "retry",
    .description = "Always asks for a retry, after 42 s unless told otherwise",
    .handle = handle,
};

BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    return host_abi_version == BGSYNC_PLUGIN_ABI_VERSION ? &plugin : NULL;
}
