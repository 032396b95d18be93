// SPDX-License-Identifier: Apache-2.0
/* Test plugin "growth1": the growth-1 fields. Its state lives in plugin data (no globals):
 * init_with_data allocates it, handle_with_data counts events in it and reads the path option
 * "file" through host->open_path (the first bytes, or the errno) and keeps the string option
 * "marker" (a directory); deinit writes the count to MARKER/growth1.<pid> and frees it all.
 * Declares "file" a path, "url" a URL. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bgsync-plugin.h"

typedef struct {
    unsigned events;
    char *marker;
} state_t;

static bool init_with_data(const bgsync_host *host, void **plugin_data) {
    if (!BGSYNC_HAS_FIELD(host, unlink_at)) return false; /* needs the file functions */
    state_t *state = calloc(1, sizeof *state);
    *plugin_data = state;
    return state != NULL;
}

static void handle_with_data(const bgsync_host *host, void *plugin_data, const bgsync_event *event,
                             bgsync_result *result) {
    state_t *state = plugin_data;
    state->events++;
    const char *marker = host->option_string(event, "marker");
    if (marker && !state->marker) state->marker = strdup(marker);
    char content[64] = "";
    int fd = host->open_path(event, "file", BGSYNC_OPEN_READ);
    if (fd >= 0) {
        ssize_t got = read(fd, content, sizeof content - 1);
        content[got > 0 ? got : 0] = 0;
        close(fd);
        snprintf(result->detail, sizeof result->detail, "event %u read '%s'", state->events, content);
    } else {
        snprintf(result->detail, sizeof result->detail, "event %u errno %d", state->events, -fd);
    }
    result->status = BGSYNC_STATUS_SUCCESS;
}

static void deinit(const bgsync_host *host, void *plugin_data) {
    (void)host;
    state_t *state = plugin_data;
    if (state->marker) {
        char path[512];
        snprintf(path, sizeof path, "%s/growth1.%d", state->marker, (int)getpid());
        FILE *out = fopen(path, "w");
        if (out) {
            fprintf(out, "%u events\n", state->events);
            fclose(out);
        }
    }
    free(state->marker);
    free(state);
}

static const char *const path_options[] = {"file", NULL};
static const char *const url_options[] = {"url", NULL};

static const bgsync_plugin plugin = {
    .abi_version = BGSYNC_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(bgsync_plugin),
    .name = "growth1",
    .description = "Uses plugin data, deinit and the host's file functions",
    .sandbox_safe = true,
    .init_with_data = init_with_data,
    .handle_with_data = handle_with_data,
    .deinit = deinit,
    .path_options = path_options,
    .url_options = url_options,
};

BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    return host_abi_version == BGSYNC_PLUGIN_ABI_VERSION ? &plugin : NULL;
}
