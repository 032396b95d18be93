// SPDX-License-Identifier: Apache-2.0
/* Test plugin "load-hang": never finishes loading (it sleeps in a library constructor), so
 * discovery must give up on its probe in bounded time. Kept apart from the other test plugins
 * so that only the test about it waits for that. */
#include <unistd.h>
#include "bgsync-plugin.h"

__attribute__((constructor)) static void hang_on_load(void) {
    for (;;)
        pause();
}

static void handle(const bgsync_host *host, const bgsync_event *event, bgsync_result *result) {
    (void)host;
    (void)event;
    (void)result;
}

static const bgsync_plugin plugin = {
    .abi_version = BGSYNC_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(bgsync_plugin),
    .name = "load-hang",
    .description = "Never finishes loading",
    .handle = handle,
};

BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    return host_abi_version == BGSYNC_PLUGIN_ABI_VERSION ? &plugin : NULL;
}
