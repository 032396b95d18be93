// SPDX-License-Identifier: Apache-2.0
/* Test plugin "noisy": prints to stdout and stderr while loading and while handling an event,
 * lines made to look like journal entries of their own (with a <N> priority), control characters,
 * a line of 5000 bytes, and a last line without a newline. The worker must log each line escaped,
 * under its own prefix. Succeeds. */
#include <stdio.h>
#include "bgsync-plugin.h"

__attribute__((constructor)) static void loading(void) {
    fprintf(stderr, "noisy: loading\n<0>FORGED while loading\n");
}

static void handle(const bgsync_host *host, const bgsync_event *event, bgsync_result *result) {
    (void)host;
    (void)event;
    printf("noisy: to stdout\n<1>FORGED on stdout\n");
    fflush(stdout);
    for (int i = 0; i < 5000; i++) fputc('x', stderr); /* a line longer than the worker takes at once */
    fputc('\n', stderr);
    fprintf(stderr, "noisy: \x1b[31mred\x1b[0m and a bell\a\n<2>FORGED on stderr\nnoisy: no newline at the end");
    fflush(stderr);
    result->status = BGSYNC_STATUS_SUCCESS;
    snprintf(result->detail, sizeof result->detail, "printed");
}

static const bgsync_plugin plugin = {
    .abi_version = BGSYNC_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(bgsync_plugin),
    .name = "noisy",
    .description = "Prints lines that look like journal entries",
    .sandbox_safe = false,
    .handle = handle,
};

BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    return host_abi_version == BGSYNC_PLUGIN_ABI_VERSION ? &plugin : NULL;
}
