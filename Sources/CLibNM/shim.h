// SPDX-License-Identifier: Apache-2.0
#include <NetworkManager.h>

/// The signature of GObject's "notify" signal handlers.
typedef void (*BGSyncNotifyHandler)(GObject *object, GParamSpec *pspec, gpointer user_data);

/// g_signal_connect is a macro Swift cannot see; this connects a "notify::…" handler with a
/// properly typed C function pointer instead of casting it to GCallback in Swift.
static inline gulong bgsync_connect_notify(gpointer instance, const gchar *detailed_signal,
                                           BGSyncNotifyHandler handler, gpointer user_data) {
    return g_signal_connect_data(instance, detailed_signal, G_CALLBACK(handler), user_data, NULL, (GConnectFlags)0);
}
