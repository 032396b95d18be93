// SPDX-License-Identifier: Apache-2.0
/* Test plugin "ok": succeeds; the detail names the event and the "greeting" option. */
#include <stdio.h>
#include "bgsync-plugin.h"

static void handle(const bgsync_host *host, const bgsync_event *event, bgsync_result *result) {
    const char *greeting = host->option_string(event, "greeting");
    host->log(event, BGSYNC_LOG_INFO, "ok plugin handling an event");
    result->status = BGSYNC_STATUS_SUCCESS;
    snprintf(result->detail, sizeof result->detail, "ok %s/%s attempt %u%s greeting=%s",
             host->app_id(event), host->tag(event), host->attempt(event),
             host->last_chance(event) ? " last-chance" : "", greeting ? greeting : "(none)");
}

static const bgsync_plugin plugin = {
    .abi_version = BGSYNC_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(bgsync_plugin),
    .name = "ok",
    .description = "Always succeeds",
    .sandbox_safe = true,
    .handle = handle,
};

BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    return host_abi_version == BGSYNC_PLUGIN_ABI_VERSION ? &plugin : NULL;
}
