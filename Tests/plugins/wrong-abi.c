// SPDX-License-Identifier: Apache-2.0
/* Test plugin "wrong-abi": claims an ABI version this bgsync does not speak. Its handle must
 * never be called. */
#include <stdlib.h>
#include "bgsync-plugin.h"

static void handle(const bgsync_host *host, const bgsync_event *event, bgsync_result *result) {
    (void)host;
    (void)event;
    (void)result;
    abort();
}

static const bgsync_plugin plugin = {
    .abi_version = 999,
    .struct_size = sizeof(bgsync_plugin),
    .name = "wrong-abi",
    .description = "Built for a future ABI",
    .handle = handle,
};

BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    (void)host_abi_version;
    return &plugin;
}
