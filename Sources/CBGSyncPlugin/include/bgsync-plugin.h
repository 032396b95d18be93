// SPDX-License-Identifier: Apache-2.0
/*
 * bgsync-plugin.h: the handler plugin ABI of bgsync. This header is the whole contract.
 *
 * A handler is a shared library that does the work of a sync event ("upload the outbox",
 * "push the settings file"). The bgsync agent decides *when*; the handler decides *how*.
 * Handlers never run inside the agent: each is loaded into a worker process (bgsync-worker)
 * that the agent starts, reuses for later events, and kills when it crashes or overruns the
 * event time cap.
 *
 * Licence: bgsync is under the Apache License 2.0, and so is this header. A plugin that
 * includes it and implements this ABI is not thereby a derived work of bgsync: plugins may be
 * under any licence, free or not, and need not be distributed with bgsync.
 *
 * Rules of the ABI (as in CLAP and SQLite's loadable extensions):
 *  - The library exports exactly one symbol, `bgsync_plugin_entry`, and links against nothing
 *    of bgsync: everything the plugin needs from the host comes through `bgsync_host`.
 *  - Every struct starts with `abi_version` and `struct_size`. Structs only grow at the end,
 *    in blocks marked "added in growth N"; `abi_version` stays 1 while they do.
 *  - Sizes: `struct_size` is always the writer's C `sizeof` of the struct (which in Swift is
 *    `MemoryLayout<T>.stride`, never `.size`: `.size` leaves out tail padding). A reader
 *    accepts any `struct_size` from the first version's (BGSYNC_*_SIZE_V1) up, reads only the
 *    fields the size covers (BGSYNC_HAS_FIELD), and treats a field beyond it as NULL/0/false.
 *    So a plugin built against an older header runs in a newer host, and a newer plugin in an
 *    older host sees the newer host functions as missing (NULL) and must not call them.
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

    /* --- Added in growth 1 of bgsync_result ---
     * Check BGSYNC_HAS_FIELD(result, flags) first: an older host's result lacks it. */
    /* BGSYNC_RESULT_* bits, 0 by default. */
    uint32_t flags;
} bgsync_result;

/* With BGSYNC_STATUS_RETRY: this attempt moved the work forward in a way the next attempt keeps
 * (a resumable upload whose server confirmed more bytes than before). The attempt is not counted
 * toward the registration's max-attempts, so a long transfer that needs many events is not given
 * up while it keeps moving; a retry without it counts as usual. Set it only for progress a later
 * attempt does not repeat, or a registration could retry for ever. Ignored with other statuses. */
#define BGSYNC_RESULT_ADVANCED 0x1u

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
     * BGSYNC_LOG_* level. `event` may be NULL (in `init`, say). Anything the plugin, or a command
     * it runs, writes to stdout or stderr also reaches the agent's log, a line at a time, escaped,
     * at notice, tagged with the handler only. */
    void (*log)(const bgsync_event *event, int priority, const char *message);

    /* --- Added in growth 1: files beneath the registration's root (see "Files" below) ---
     * Check BGSYNC_HAS_FIELD(host, open_path) first: an older host lacks these.
     * All four return a file descriptor (>= 0, close-on-exec, owned by the plugin, which must
     * close it) or 0 for the non-opening ones, or a negated errno on failure. They may be called
     * only during `handle`, with its event, from its thread. `name` is one path component (no
     * '/', not "." or ".."); `dir_fd` is a directory fd that `open_path` or `open_at` returned. */
    /* Opens the path in the string option `option` (an absolute path) as `how` says: one of
     * BGSYNC_OPEN_READ, _WRITE, _DIRECTORY or _PARENT, with _CREATE, _EXCLUSIVE, _TRUNCATE. */
    int (*open_path)(const bgsync_event *event, const char *option, uint32_t how);
    /* Opens the entry `name` of `dir_fd`, as `how` says (not _PARENT). */
    int (*open_at)(const bgsync_event *event, int dir_fd, const char *name, uint32_t how);
    /* Renames `from` in `from_dir_fd` to `to` in `to_dir_fd` (renameat2). With
     * BGSYNC_RENAME_NOREPLACE an existing `to` is never replaced (-EEXIST). A symbolic link is
     * renamed itself, never followed. */
    int (*rename_at)(const bgsync_event *event, int from_dir_fd, const char *from, int to_dir_fd, const char *to,
                     uint32_t flags);
    /* Removes the file `name` of `dir_fd` (unlinkat; a link is removed itself, not followed),
     * or with BGSYNC_UNLINK_DIRECTORY the empty directory `name`. */
    int (*unlink_at)(const bgsync_event *event, int dir_fd, const char *name, uint32_t flags);

    /* --- Added in growth 2: cancellation and progress ---
     * Check BGSYNC_HAS_FIELD(host, progress) first: an older host lacks these.
     *
     * The agent asks a running event to stop when a condition it needs stops holding: the
     * network went offline (or became metered, for `network=unmetered`), or a `power` condition
     * no longer holds. The handler should return soon, with BGSYNC_STATUS_RETRY; the event is
     * recorded as `interrupted`, the attempt is not counted, and the registration waits for its
     * conditions again. A handler still running after the grace period (`[sync]
     * interrupt-grace-period`, 5 s by default) is killed, with the same outcome. */
    /* True once the event was asked to stop. May be called from any thread of the plugin while
     * that event's `handle` runs (it reads an atomic the worker sets; the stop never interrupts
     * a plugin's call with EINTR). */
    bool (*cancelled)(const bgsync_event *event);
    /* A file descriptor that becomes readable (POLLIN) once the event was asked to stop, to wait
     * on beside the handler's own descriptors. Owned by the host: never read, write or close it.
     * Valid, from any thread, while that event's `handle` runs; -1 if the host could not make one
     * (poll `cancelled` then). */
    int (*cancel_fd)(const bgsync_event *event);
    /* Reports progress: `done` of `total` units of the handler's choosing (`total` 0: unknown)
     * and a short text such as "3 of 10 files" (NULL for none; the host keeps at most
     * BGSYNC_PROGRESS_TEXT_SIZE - 1 bytes and replaces invalid UTF-8; the string is copied before
     * the call returns). Only from the thread running `handle`. The agent shows the latest in
     * GetRegistration and its SyncProgress signal. A handler that has reported progress is held
     * to the stall time (`[sync] event-stall-timeout`, the longest time without a change of
     * `done`) instead of the event cap, under the hard ceiling (`[sync] event-ceiling`): after
     * each report `deadline` returns the moved deadline. */
    void (*progress)(const bgsync_event *event, uint64_t done, uint64_t total, const char *text);

    /* --- Added in growth 3: bytes moved ---
     * Check BGSYNC_HAS_FIELD(host, report_bytes) first: an older host lacks it. */
    /* Reports the bytes the event has moved so far: `sent` and `received` are running totals for
     * the whole event (over all its requests; they never go down), `expected` the bytes it expects
     * to move in all, sent and received together (0: unknown; it may change as the handler learns
     * more, e.g. a response's Content-Length). Only from the thread running `handle`. Cheap: call
     * it as bytes move (from a transfer's progress callback); the host sends the agent at most one
     * report per BGSYNC_BYTES_REPORT_INTERVAL_MS per event, and the last one before the outcome.
     * The agent shows sent + received of `expected`, with the rate and the time left, in
     * GetRegistration's `transfer`, SyncTransfer and `bgsyncctl status`/`monitor`, and keeps the
     * last `sent` and `received` with the event's outcome. A change of `sent` or `received` is
     * progress, as a change of `done` is for `progress`: the event is held to the stall time
     * (`[sync] event-stall-timeout`) from the last byte moved, so a slow transfer that keeps
     * moving is never cut, under the hard ceiling (`[sync] event-ceiling`); after each report
     * `deadline` returns the moved deadline. */
    void (*report_bytes)(const bgsync_event *event, uint64_t sent, uint64_t received, uint64_t expected);

    /* --- Added in growth 4: the handler's own state directory ---
     * Check BGSYNC_HAS_FIELD(host, open_state_dir) first: an older host lacks it. */
    /* Opens the directory where this handler keeps state across events, worker restarts, agent
     * restarts and reboots (what a resumable upload must remember), creating it (0700) if missing:
     * `<agent state dir>/handlers/<handler name>/`, by default `$XDG_STATE_HOME/bgsync/handlers/NAME/`.
     * Never beneath an app's directory, and one per handler, shared by every app's events: name
     * files from what the host vouches for (app_id, tag), never from what an app sends, and
     * write them atomically (write a temporary name, fsync, renameat). Returns a directory fd
     * (close-on-exec, owned by the plugin, which must close it), or a negated errno: -ENOENT when
     * the agent gave the worker no state directory. Only during `handle`, from its thread. */
    int (*open_state_dir)(const bgsync_event *event);
} bgsync_host;

/* At most one byte report per event reaches the agent in this many milliseconds. */
#define BGSYNC_BYTES_REPORT_INTERVAL_MS 100

/* Room for a progress text, including its NUL. */
#define BGSYNC_PROGRESS_TEXT_SIZE 128

/*
 * What a plugin is. Returned by `bgsync_plugin_entry`; must stay valid and unchanged for the
 * life of the process (a static const struct is the usual way).
 */
typedef struct bgsync_plugin {
    uint32_t abi_version; /* must be BGSYNC_PLUGIN_ABI_VERSION */
    uint32_t struct_size; /* sizeof(bgsync_plugin) in the header the plugin was built with */
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
     * is owned by the host and valid only during the call. Required, unless `handle_with_data`
     * is set (then a host older than growth 1 refuses the plugin). */
    void (*handle)(const bgsync_host *host, const bgsync_event *event, bgsync_result *result);

    /* --- Added in growth 1: plugin data, deinit, and what the options are ---
     * A plugin that sets these may still set `init`/`handle` too, for hosts older than growth 1
     * (an older host reads only up to `handle`, and refuses a plugin whose `handle` is NULL). */
    /* Optional. When set, called instead of `init`: may store into *plugin_data a pointer of
     * its own (initially NULL), which the host passes back to `handle_with_data` and `deinit`
     * and never reads itself. Returning false refuses to run, as for `init`; `deinit` is then
     * not called, so free what was allocated before returning false. */
    bool (*init_with_data)(const bgsync_host *host, void **plugin_data);
    /* Optional. When set, called instead of `handle`, with the pointer `init_with_data` stored
     * (NULL when the plugin has no `init_with_data`). Same rules as `handle`. */
    void (*handle_with_data)(const bgsync_host *host, void *plugin_data, const bgsync_event *event,
                             bgsync_result *result);
    /* Optional. Called once when the worker exits normally (the agent closed its socket: at
     * shutdown, or to make room for another handler's worker), after the last event, on the
     * thread that called init, with the plugin data: free it here. The agent waits 2 s for it,
     * then kills the worker. Not called if init failed, nor when the worker is killed (time
     * cap, crash, agent killed): keep nothing there that must be saved. */
    void (*deinit)(const bgsync_host *host, void *plugin_data);
    /* Optional (NULL: none). NULL-terminated arrays of the names of the options that hold a
     * file or directory path (an absolute path in an `s`), and that hold an http(s) URL.
     * The agent checks them at Register for sandboxed apps (a path must lie beneath the app's
     * data directory, a URL must be http or https); open path options with `open_path`, which
     * keeps them beneath it at every event. Owned by the plugin, valid for the process's life
     * (static arrays); at most BGSYNC_MAX_DECLARED_OPTIONS names each. */
    const char *const *path_options;
    const char *const *url_options;
} bgsync_plugin;

/* The sizes of the first version of each struct: a reader accepts no smaller `struct_size`. */
#define BGSYNC_FIELD_END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))
#define BGSYNC_PLUGIN_SIZE_V1 BGSYNC_FIELD_END(bgsync_plugin, handle)
#define BGSYNC_HOST_SIZE_V1 BGSYNC_FIELD_END(bgsync_host, log)
#define BGSYNC_RESULT_SIZE_V1 BGSYNC_FIELD_END(bgsync_result, detail)
/* Whether the struct at `pointer` (whose `struct_size` its writer set) has `field`. */
#define BGSYNC_HAS_FIELD(pointer, field)                                                              \
    ((size_t)(pointer)->struct_size >= BGSYNC_FIELD_END(__typeof__(*(pointer)), field))
/* The same sizes as functions, for languages that cannot expand the macros (Swift). */
static inline size_t bgsync_plugin_size_v1(void) { return BGSYNC_PLUGIN_SIZE_V1; }
static inline size_t bgsync_host_size_v1(void) { return BGSYNC_HOST_SIZE_V1; }
static inline size_t bgsync_result_size_v1(void) { return BGSYNC_RESULT_SIZE_V1; }
/* The most names `path_options` or `url_options` may hold. */
#define BGSYNC_MAX_DECLARED_OPTIONS 64

/*
 * Files (growth 1). A handler never opens a path an app named by itself: it asks the host, which
 * opens it beneath the registration's root, so that an app cannot point the handler elsewhere by
 * swapping a directory or file for a symbolic link after Register.
 *  - For a sandboxed app (Flatpak, Snap) the root is the app's data directory, recorded at
 *    Register. The path must lie beneath it; everything below the root is opened with
 *    openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), or on a kernel
 *    without openat2 one component at a time with O_NOFOLLOW: a symbolic link anywhere below the
 *    root fails (-ELOOP), a path outside it fails (-EXDEV).
 *  - For an unconfined app the same calls follow symbolic links as open(2) does and refuse only
 *    /proc-style magic links (on kernels with openat2).
 *  - _READ and _WRITE open regular files only (-EINVAL for a FIFO, device or socket, -EISDIR
 *    for a directory); _DIRECTORY only directories (-ENOTDIR).
 * Other errors: -ENOENT, -EACCES and so on as open(2) gives them; -EINVAL for an option that is
 * missing, not a string or not absolute, a bad `name` or bad flags; -ENOSYS from a host that
 * cannot offer these at all.
 */
#define BGSYNC_OPEN_READ 0x1u      /* a regular file, O_RDONLY */
#define BGSYNC_OPEN_WRITE 0x2u     /* a regular file, O_WRONLY */
#define BGSYNC_OPEN_DIRECTORY 0x4u /* a directory, to list (fdopendir a dup) or to use as dir_fd */
#define BGSYNC_OPEN_PARENT 0x8u    /* open_path only: the directory holding the path's last part */
#define BGSYNC_OPEN_CREATE 0x10u   /* with _WRITE: create a missing file (mode 0600 less umask);
                                      with _DIRECTORY: create a missing directory (0700) */
#define BGSYNC_OPEN_EXCLUSIVE 0x20u /* with _CREATE: fail with -EEXIST if it exists */
#define BGSYNC_OPEN_TRUNCATE 0x40u  /* with _WRITE: empty the file */
#define BGSYNC_RENAME_NOREPLACE 0x1u
#define BGSYNC_UNLINK_DIRECTORY 0x1u

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
