// SPDX-License-Identifier: Apache-2.0
/* Test plugin "segfault": crashes in handle, after printing junk to stdout (which must not
 * reach the protocol). With the option crash=false it succeeds instead, naming its pid. */
#include <stdio.h>
#include <unistd.h>
#include "bgsync-plugin.h"

static void handle(const bgsync_host *host, const bgsync_event *event, bgsync_result *result) {
    bool crash = true;
    host->option_bool(event, "crash", &crash);
    printf("junk on stdout\n");
    if (!crash) {
        result->status = BGSYNC_STATUS_SUCCESS;
        snprintf(result->detail, sizeof result->detail, "survived in pid %ld", (long)getpid());
        return;
    }
    fflush(stdout);
    volatile int *nowhere = NULL;
    *nowhere = 1;
}

static const bgsync_plugin plugin = {
    .abi_version = BGSYNC_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(bgsync_plugin),
    .name = "segfault",
    .description = "Crashes",
    .handle = handle,
};

BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    return host_abi_version == BGSYNC_PLUGIN_ABI_VERSION ? &plugin : NULL;
}
