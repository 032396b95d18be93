// SPDX-License-Identifier: Apache-2.0
/*
 * example.c: a minimal bgsync handler plugin in C.
 *
 * bgsync calls a handler when a registration an app made is due and the network allows it.
 * This one logs the event, reads one option ("message", a string the app passed to Register)
 * and reports success. Build it with the Makefile beside it; install the .so into a bgsync
 * handler directory and apps can register with handler "example".
 *
 * The plugin runs in its own worker process, one event at a time, so it may block; but it must
 * finish before host->deadline(event) or the worker is killed and the attempt counts as a
 * "timeout".
 */
#include <stdio.h>

#include <bgsync-plugin.h>

/* The host's function table, kept from init: it stays valid for the life of the process. */
static const bgsync_host *the_host;

/* Optional: called once before the first event. Return false to refuse to run (for example if
 * a configuration file is missing); the event is then retried later. */
static bool example_init(const bgsync_host *host) {
    /* A plugin built against a newer header must not call functions an older host lacks:
     * compare host->struct_size with offsetof(bgsync_host, the_function) before using those.
     * Everything this example uses is in ABI version 1. */
    the_host = host;
    host->log(NULL, BGSYNC_LOG_DEBUG, "example handler ready");
    return true;
}

/* Called for each event. `result` arrives filled with defaults (FAILURE, empty detail): set the
 * status, and a short detail that apps and `bgsyncctl` show. */
static void example_handle(const bgsync_host *host, const bgsync_event *event, bgsync_result *result) {
    char line[512];
    snprintf(line, sizeof line, "sync '%s' for %s, attempt %u%s", host->tag(event), host->app_id(event),
             host->attempt(event), host->last_chance(event) ? " (last chance)" : "");
    host->log(event, BGSYNC_LOG_INFO, line);

    /* Options are typed as the app sent them (D-Bus a{sv}); accessors return NULL/false when an
     * option is absent or of another type, so a missing option never crashes the handler. */
    const char *message = host->option_string(event, "message");
    if (message == NULL) {
        /* A bad registration: retrying cannot help, so fail. */
        result->status = BGSYNC_STATUS_FAILURE;
        snprintf(result->detail, sizeof result->detail, "option 'message' (a string) is missing");
        return;
    }

    /* Real work would go here: upload, download, write a file... For a temporary problem (the
     * server answered 503), set BGSYNC_STATUS_RETRY and, if known, result->retry_after. */
    result->status = BGSYNC_STATUS_SUCCESS;
    snprintf(result->detail, sizeof result->detail, "said: %s", message);
}

/* What the plugin is. Static and constant: it must stay valid for the life of the process. */
static const bgsync_plugin example_plugin = {
    .abi_version = BGSYNC_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(bgsync_plugin),
    .name = "example",
    .description = "Logs the event and echoes its 'message' option",
    /* It touches nothing the app could not reach itself, so sandboxed apps may use it. */
    .sandbox_safe = true,
    .init = example_init,
    .handle = example_handle,
};

/* The one exported symbol. Return NULL for a host ABI this plugin was not built for. */
BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    if (host_abi_version != BGSYNC_PLUGIN_ABI_VERSION)
        return NULL;
    return &example_plugin;
}
