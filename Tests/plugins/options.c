// SPDX-License-Identifier: Apache-2.0
/* Test plugin "options": echoes every option, in the order option_name gives them, into the
 * detail as "name:type=value;". The value is read with the typed accessor for its type; options
 * named "text-..." are read with option_text instead, "double-..." with option_double. Fails
 * if the accessors misbehave on an absent option. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "bgsync-plugin.h"

typedef struct {
    char *at;
    size_t left;
} out_t;

static void put(out_t *out, const char *format, ...) __attribute__((format(printf, 2, 3)));

#include <stdarg.h>
static void put(out_t *out, const char *format, ...) {
    va_list args;
    va_start(args, format);
    int n = vsnprintf(out->at, out->left, format, args);
    va_end(args);
    if (n < 0)
        return;
    size_t used = (size_t)n < out->left ? (size_t)n : out->left - 1;
    out->at += used;
    out->left -= used;
}

static int absent_is_quiet(const bgsync_host *host, const bgsync_event *event) {
    bool b = true;
    int64_t i = 7;
    double d = 7;
    size_t length = 7;
    return host->option_type(event, "absent") == NULL && host->option_string(event, "absent") == NULL &&
           !host->option_bool(event, "absent", &b) && b && !host->option_int(event, "absent", &i) && i == 7 &&
           !host->option_double(event, "absent", &d) && d == 7 && host->option_strv_length(event, "absent") == 0 &&
           host->option_dict_length(event, "absent") == 0 && host->option_bytes(event, "absent", &length) == NULL &&
           host->option_text(event, "absent") == NULL && host->option_name(event, 1000) == NULL;
}

static void typed(out_t *out, const bgsync_host *host, const bgsync_event *event, const char *name, const char *type) {
    bool b;
    int64_t i;
    double d;
    size_t length;
    if (strncmp(name, "text-", 5) == 0) {
        put(out, "%s", host->option_text(event, name));
    } else if (strncmp(name, "double-", 7) == 0) {
        if (host->option_double(event, name, &d))
            put(out, "%g", d);
        else
            put(out, "!double");
    } else if (strchr("sog", type[0]) && type[1] == 0) {
        put(out, "%s", host->option_string(event, name));
    } else if (strcmp(type, "b") == 0) {
        if (host->option_bool(event, name, &b))
            put(out, "%s", b ? "true" : "false");
    } else if (strchr("ynqiuxt", type[0]) && type[1] == 0) {
        if (host->option_int(event, name, &i))
            put(out, "%" PRId64, i);
        else
            put(out, "!int");
    } else if (strcmp(type, "d") == 0) {
        if (host->option_double(event, name, &d))
            put(out, "%g", d);
    } else if (strcmp(type, "as") == 0) {
        size_t n = host->option_strv_length(event, name);
        put(out, "[");
        for (size_t k = 0; k < n; k++)
            put(out, "%s%s", k ? "," : "", host->option_strv_item(event, name, k));
        put(out, "]");
    } else if (strcmp(type, "a{ss}") == 0 || strcmp(type, "a{sv}") == 0) {
        size_t n = host->option_dict_length(event, name);
        put(out, "{");
        for (size_t k = 0; k < n; k++) {
            const char *value = host->option_dict_value(event, name, k);
            put(out, "%s%s=%s", k ? "," : "", host->option_dict_key(event, name, k), value ? value : "NULL");
        }
        put(out, "}");
    } else if (strcmp(type, "ay") == 0) {
        const unsigned char *bytes = host->option_bytes(event, name, &length);
        put(out, "%zu:", length);
        for (size_t k = 0; bytes && k < length; k++)
            put(out, "%02x", bytes[k]);
    } else {
        put(out, "%s", host->option_text(event, name));
    }
}

static void handle(const bgsync_host *host, const bgsync_event *event, bgsync_result *result) {
    if (!absent_is_quiet(host, event)) {
        snprintf(result->detail, sizeof result->detail, "accessors misbehave on an absent option");
        return;
    }
    out_t out = {result->detail, sizeof result->detail};
    size_t count = host->option_count(event);
    for (size_t index = 0; index < count; index++) {
        const char *name = host->option_name(event, index);
        const char *type = host->option_type(event, name);
        put(&out, "%s:%s=", name, type);
        typed(&out, host, event, name, type);
        put(&out, ";");
    }
    result->status = BGSYNC_STATUS_SUCCESS;
}

static const bgsync_plugin plugin = {
    .abi_version = BGSYNC_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(bgsync_plugin),
    .name = "options",
    .description = "Echoes its options",
    .handle = handle,
};

BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version) {
    return host_abi_version == BGSYNC_PLUGIN_ABI_VERSION ? &plugin : NULL;
}
