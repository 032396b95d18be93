// SPDX-License-Identifier: Apache-2.0
/* Test plugin "bytes": reports bytes moved every "interval" seconds (default 0.2) for "steps"
 * steps (default 10): after step i, 1000*i sent and 10*i received of 1010*steps expected; then
 * succeeds with "moved N steps". With "stall_after" = k it stops reporting after step k and sleeps
 * until killed. */
#include <stdio.h>
#include <time.h>
#include "bgsync-plugin.h"

static void sleep_seconds(double seconds) {
    struct timespec t = {.tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - (time_t)seconds) * 1e9)};
    while (nanosleep(&t, &t) != 0) {
    }
}

static void handle(const bgsync_host *host, const bgsync_event *event, bgsync_result *result) {
    if (!BGSYNC_HAS_FIELD(host, report_bytes)) {
        snprintf(result->detail, sizeof result->detail, "the host has no report_bytes (before growth 3)");
        return;
    }
    double interval = 0.2;
    int64_t steps = 10, stall_after = -1;
    host->option_double(event, "interval", &interval);
    host->option_int(event, "steps", &steps);
    host->option_int(event, "stall_after", &stall_after);
    for (int64_t step = 1; step <= steps; step++) {
        sleep_seconds(interval);
        if (stall_after >= 0 && step > stall_after) {
            for (;;)
                sleep_seconds(3600);
        }
        host->report_bytes(event, 1000 * (uint64_t)step, 10 * (uint64_t)step, 1010 * (uint64_t)steps);
    }
    result->status = BGSYNC_STATUS_SUCCESS;
    snprintf(result->detail, sizeof result->detail, "moved %lld steps", (long long)steps);
}

static const bgsync_plugin plugin = {
    .abi_version = BGSYNC_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(bgsync_plugin),
    .name = "bytes",
    .description = "Reports bytes moved, then succeeds or stalls",
    .handle = handle,
};

BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    return host_abi_version == BGSYNC_PLUGIN_ABI_VERSION ? &plugin : NULL;
}
