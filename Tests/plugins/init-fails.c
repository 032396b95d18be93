// SPDX-License-Identifier: Apache-2.0
/* Test plugin "init-fails": its init refuses to run, so no event ever reaches handle. */
#include <stdlib.h>
#include "bgsync-plugin.h"

static bool init(const bgsync_host *host) {
    host->log(NULL, BGSYNC_LOG_ERR, "init-fails: refusing to start, as planned");
    return false;
}

static void handle(const bgsync_host *host, const bgsync_event *event, bgsync_result *result) {
    (void)host;
    (void)event;
    (void)result;
    abort();
}

static const bgsync_plugin plugin = {
    .abi_version = BGSYNC_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(bgsync_plugin),
    .name = "init-fails",
    .description = "Refuses to start",
    .init = init,
    .handle = handle,
};

BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    return host_abi_version == BGSYNC_PLUGIN_ABI_VERSION ? &plugin : NULL;
}
