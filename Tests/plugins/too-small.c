// SPDX-License-Identifier: Apache-2.0
/* Test plugin "too-small": declares a struct_size below the first form of bgsync_plugin. */
#include "bgsync-plugin.h"

static void handle(const bgsync_host *host, const bgsync_event *event, bgsync_result *result) {
    (void)host;
    (void)event;
    result->status = BGSYNC_STATUS_SUCCESS;
}

static const bgsync_plugin plugin = {
    .abi_version = BGSYNC_PLUGIN_ABI_VERSION,
    .struct_size = 16,
    .name = "too-small",
    .description = "struct_size too small",
    .handle = handle,
};

BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    return host_abi_version == BGSYNC_PLUGIN_ABI_VERSION ? &plugin : NULL;
}
