/*
 * bgsync-plugin.h: the handler plugin ABI of bgsync. This header is the whole contract.
 *
 * A handler is a shared library that does the work of a sync event ("upload the outbox",
 * "push the settings file"). The bgsync agent decides *when*; the handler decides *how*.
 * Handlers never run inside the agent: each is loaded into a worker process (bgsync-worker)
 * that the agent starts, reuses for later events, and kills when it crashes or overruns the
 * event time cap.
 *
 * Rules of the ABI (as in CLAP and SQLite's loadable extensions):
 *  - The library exports exactly one symbol, `bgsync_plugin_entry`, and links against nothing
 *    of bgsync: everything the plugin needs from the host comes through `bgsync_host`.
 *  - Every struct starts with `abi_version` and `struct_size`. Structs only grow at the end;
 *    a reader checks `struct_size` before touching a field added in a later version.
 *  - Strings are NUL-terminated UTF-8.
 *  - The worker calls into the plugin from one thread, one event at a time.
 *  - The worker never unloads a plugin (dlclose is unsafe for Swift libraries).
 *
 * Build a plugin with:  cc -shared -fPIC $(pkg-config --cflags bgsync-plugin) -o my.so my.c
 */
#ifndef BGSYNC_PLUGIN_H
#define BGSYNC_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. Bumped only for incompatible changes; additions at the end of
 * a struct keep the version and grow `struct_size`. */
#define BGSYNC_PLUGIN_ABI_VERSION 1u

/* The name of the one exported symbol, for dlsym. */
#define BGSYNC_PLUGIN_ENTRY_SYMBOL "bgsync_plugin_entry"

#if defined(__GNUC__)
#define BGSYNC_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define BGSYNC_PLUGIN_EXPORT
#endif

/* One sync event. Opaque; owned by the host and valid only during `handle`. Read it through
 * the accessors in `bgsync_host`. */
typedef struct bgsync_event bgsync_event;

/* What the handler made of the event. */
typedef enum bgsync_status {
    /* Done. A one-off registration is removed. */
    BGSYNC_STATUS_SUCCESS = 0,
    /* Try again later, with exponential back-off; `retry_after` sets a lower bound. */
    BGSYNC_STATUS_RETRY = 1,
    /* Give up: retrying cannot help (a 4xx, a conflict, a bad option). */
    BGSYNC_STATUS_FAILURE = 2,
} bgsync_status;

/* Room for the detail text, including its NUL. */
#define BGSYNC_DETAIL_SIZE 256

/* The result of one event. Allocated by the host and filled with defaults before `handle` is
 * called (status FAILURE, no retry hint, empty detail); the plugin overwrites what it needs. */
typedef struct bgsync_result {
    uint32_t abi_version; /* set by the host */
    uint32_t struct_size; /* set by the host: sizeof(bgsync_result) in the host */
    uint32_t status;      /* a bgsync_status */
    /* For BGSYNC_STATUS_RETRY: wait at least this many seconds (an HTTP Retry-After, say).
     * 0 or less means no hint: the normal back-off applies. */
    double retry_after;
    /* A short text shown in SyncFinished and GetRegistration's `last-error`, such as
     * "HTTP 503" or "3 files sent". UTF-8, NUL-terminated (snprintf does both); the host reads
     * at most BGSYNC_DETAIL_SIZE - 1 bytes and replaces invalid UTF-8. */
    char detail[BGSYNC_DETAIL_SIZE];
} bgsync_result;

/* Syslog priorities for `log`. */
#define BGSYNC_LOG_ERR 3
#define BGSYNC_LOG_WARNING 4
#define BGSYNC_LOG_NOTICE 5
#define BGSYNC_LOG_INFO 6
#define BGSYNC_LOG_DEBUG 7

/*
 * The functions the host gives a plugin. Owned by the host; valid from `init` until the process
 * exits, so a plugin may keep the pointer. Every function may be called only from the thread
 * that called `init` or `handle`, and only with an event while that event's `handle` runs.
 * Strings returned are owned by the host and stay valid until `handle` returns; copy what you
 * keep. Accessors never fail on a missing option: they return NULL, 0 or false.
 */
typedef struct bgsync_host {
    uint32_t abi_version; /* BGSYNC_PLUGIN_ABI_VERSION of the host */
    uint32_t struct_size; /* sizeof(bgsync_host) in the host */

    /* --- The event --- */
    /* The app's id, such as "org.example.Chat". */
    const char *(*app_id)(const bgsync_event *event);
    /* The registration's tag, such as "outbox". */
    const char *(*tag)(const bgsync_event *event);
    /* 1-based number of this attempt. */
    uint32_t (*attempt)(const bgsync_event *event);
    /* True on the final allowed attempt: after a failure now, the registration is dropped
     * (one-off) or waits for its next interval (periodic). */
    bool (*last_chance)(const bgsync_event *event);
    /* Unix time (seconds, wall clock) at which the worker is killed if still running. */
    double (*deadline)(const bgsync_event *event);
    /* True for a periodic registration. */
    bool (*periodic)(const bgsync_event *event);

    /* --- The handler options (the registration's a{sv}, reserved keys removed) ---
     * An option the caller wrapped in a variant (a `v` inside the a{sv}) reads as the value
     * inside it, in every accessor below. */
    /* Number of options, and the name of the option at `index` (0 ≤ index < count), in
     * byte order of their names. */
    size_t (*option_count)(const bgsync_event *event);
    const char *(*option_name)(const bgsync_event *event, size_t index);
    /* The option's D-Bus/GVariant type string ("s", "as", "a{ss}", ...), or NULL if absent.
     * A value the caller wrapped in a variant reports the type inside it. */
    const char *(*option_type)(const bgsync_event *event, const char *name);
    /* The text of a string-typed option (s, o or g), or NULL. */
    const char *(*option_string)(const bgsync_event *event, const char *name);
    /* A boolean option (b). Returns false, leaving *value alone, if absent or of another type. */
    bool (*option_bool)(const bgsync_event *event, const char *name, bool *value);
    /* Any integer option (y, n, q, i, u, x, t) that fits in int64_t. */
    bool (*option_int)(const bgsync_event *event, const char *name, int64_t *value);
    /* A double option (d), or any integer option converted. */
    bool (*option_double)(const bgsync_event *event, const char *name, double *value);
    /* A string-array option (as): its length (0 if absent or not as) and its items. */
    size_t (*option_strv_length)(const bgsync_event *event, const char *name);
    const char *(*option_strv_item)(const bgsync_event *event, const char *name, size_t index);
    /* A dictionary option with string keys (a{ss}, or a{sv}): its length and its entries in
     * the order the caller gave them. `option_dict_value` is NULL for a value that is not a
     * string (read such dictionaries whole with `option_text`). */
    size_t (*option_dict_length)(const bgsync_event *event, const char *name);
    const char *(*option_dict_key)(const bgsync_event *event, const char *name, size_t index);
    const char *(*option_dict_value)(const bgsync_event *event, const char *name, size_t index);
    /* A byte-array option (ay): a pointer to its bytes and, in *length, their count. NULL if
     * absent or of another type. The bytes need not be UTF-8 and are not NUL-terminated. */
    const void *(*option_bytes)(const bgsync_event *event, const char *name, size_t *length);
    /* Any option printed as GVariant text, as `gdbus` prints values (g_variant_print with type
     * annotations, so g_variant_parse reads it back with its type), or NULL if absent. */
    const char *(*option_text)(const bgsync_event *event, const char *name);

    /* --- Services --- */
    /* Writes a line to the agent's log, tagged with the handler and the event. `priority` is a
     * BGSYNC_LOG_* level. `event` may be NULL (in `init`, say). Anything a plugin writes to
     * stdout or stderr also reaches the agent's log, without a priority. */
    void (*log)(const bgsync_event *event, int priority, const char *message);
} bgsync_host;

/*
 * What a plugin is. Returned by `bgsync_plugin_entry`; must stay valid and unchanged for the
 * life of the process (a static const struct is the usual way).
 */
typedef struct bgsync_plugin {
    uint32_t abi_version; /* must be BGSYNC_PLUGIN_ABI_VERSION */
    uint32_t struct_size; /* must be sizeof(bgsync_plugin) */
    /* The handler's name, as apps pass it to Register: letters, digits, '_' and '-'. */
    const char *name;
    /* One line for `bgsyncctl state` and the logs. */
    const char *description;
    /* May sandboxed apps (Flatpak, Snap) use this handler? Only if it cannot be made to reach
     * beyond what the app itself could (running commands cannot be made safe). */
    bool sandbox_safe;
    /* Optional (may be NULL). Called once in the worker, before any event (not when the agent
     * merely probes the plugin at start-up). Returning false refuses to run: the worker logs it
     * and exits, the event is retried later, and the next event starts a fresh worker, which
     * calls init again. */
    bool (*init)(const bgsync_host *host);
    /* Handles one event. Runs in the worker's main thread; may block (it is in its own
     * process) but should finish before `host->deadline(event)`, after which the worker is
     * killed and the attempt is retried with detail "timeout" (a crash: "crashed"). `result`
     * is owned by the host and valid only during the call. */
    void (*handle)(const bgsync_host *host, const bgsync_event *event, bgsync_result *result);
} bgsync_plugin;

/*
 * The one symbol a plugin exports. `host_abi_version` is the host's BGSYNC_PLUGIN_ABI_VERSION;
 * a plugin that cannot serve it returns NULL. Called once per process, before `init`. A
 * function rather than a data symbol so that plugins in Swift (with @_cdecl) and other
 * languages that cannot export C data can implement it.
 */
BGSYNC_PLUGIN_EXPORT const bgsync_plugin *bgsync_plugin_entry(uint32_t host_abi_version);

typedef const bgsync_plugin *(*bgsync_plugin_entry_fn)(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif

#endif /* BGSYNC_PLUGIN_H */
