// SPDX-License-Identifier: Apache-2.0
/* Test plugin "load-crash": crashes as soon as it is loaded (in a library constructor), so
 * discovery must survive its probe and refuse it. */
#include <stdlib.h>
#include "bgsync-plugin.h"

__attribute__((constructor)) static void crash_on_load(void) { abort(); }

static void handle(const bgsync_host *host, const bgsync_event *event, bgsync_result *result) {
    (void)host;
    (void)event;
    (void)result;
}

static const bgsync_plugin plugin = {
    .abi_version = BGSYNC_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(bgsync_plugin),
    .name = "load-crash",
    .description = "Crashes when loaded",
    .handle = handle,
};

BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    return host_abi_version == BGSYNC_PLUGIN_ABI_VERSION ? &plugin : NULL;
}
