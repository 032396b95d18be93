// SPDX-License-Identifier: Apache-2.0
/* Test plugin "statedir": counts its events in a file of its state directory (growth 4,
 * open_state_dir) and asks for a retry flagged BGSYNC_RESULT_ADVANCED (result growth 1). The
 * detail is "count N mode M" (M: the directory's permission bits), or "errno E" when the host
 * gives no state directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "bgsync-plugin.h"

static void handle(const bgsync_host *host, const bgsync_event *event, bgsync_result *result) {
    result->status = BGSYNC_STATUS_RETRY;
    if (BGSYNC_HAS_FIELD(result, flags)) result->flags |= BGSYNC_RESULT_ADVANCED;
    if (!BGSYNC_HAS_FIELD(host, open_state_dir)) {
        snprintf(result->detail, sizeof result->detail, "old host");
        return;
    }
    int dir = host->open_state_dir(event);
    if (dir < 0) {
        snprintf(result->detail, sizeof result->detail, "errno %d", -dir);
        return;
    }
    struct stat info;
    fstat(dir, &info);
    long count = 0;
    char text[32] = {0};
    int file = openat(dir, "count", O_RDONLY | O_CLOEXEC);
    if (file >= 0) {
        if (read(file, text, sizeof text - 1) > 0) count = strtol(text, NULL, 10);
        close(file);
    }
    count += 1;
    file = openat(dir, "count.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    dprintf(file, "%ld", count);
    fsync(file);
    close(file);
    renameat(dir, "count.tmp", dir, "count");
    close(dir);
    snprintf(result->detail, sizeof result->detail, "count %ld mode %o", count, (unsigned)(info.st_mode & 0777));
}

static const bgsync_plugin plugin = {
    .abi_version = BGSYNC_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(bgsync_plugin),
    .name = "statedir",
    .description = "Counts its events in its state directory",
    .handle = handle,
};

BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    return host_abi_version == BGSYNC_PLUGIN_ABI_VERSION ? &plugin : NULL;
}
