/* Test plugin "v1-echo", built against abi-v1/bgsync-plugin.h: the header as it was when the ABI
 * first shipped, frozen here (never edit it). `#include "bgsync-plugin.h"` finds that copy beside
 * this file before any -I directory. It uses every host function of the first form and reports
 * the sizes it was built with, so a test sees it load and run in a host whose structs have grown. */
#include <stdio.h>
#include "bgsync-plugin.h"

static int initialised;

static bool init(const bgsync_host *host) {
    initialised = host->abi_version == BGSYNC_PLUGIN_ABI_VERSION && host->struct_size >= sizeof(bgsync_host);
    host->log(NULL, BGSYNC_LOG_INFO, "v1-echo init");
    return true;
}

static void handle(const bgsync_host *host, const bgsync_event *event, bgsync_result *result) {
    int64_t count = -1;
    host->option_int(event, "count", &count);
    host->log(event, BGSYNC_LOG_INFO, "v1-echo handling an event");
    result->status = BGSYNC_STATUS_SUCCESS;
    snprintf(result->detail, sizeof result->detail,
             "v1 init=%d plugin_size=%zu host_size=%u result_size=%u %s/%s attempt=%u periodic=%d greeting=%s "
             "count=%lld options=%zu",
             initialised, sizeof(bgsync_plugin), host->struct_size, result->struct_size, host->app_id(event),
             host->tag(event), host->attempt(event), host->periodic(event), host->option_string(event, "greeting"),
             (long long)count, host->option_count(event));
}

static const bgsync_plugin plugin = {
    .abi_version = BGSYNC_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(bgsync_plugin),
    .name = "v1-echo",
    .description = "Built against the first form of the ABI",
    .sandbox_safe = true,
    .init = init,
    .handle = handle,
};

BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    return host_abi_version == BGSYNC_PLUGIN_ABI_VERSION ? &plugin : NULL;
}
