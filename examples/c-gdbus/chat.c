// SPDX-License-Identifier: Apache-2.0
/* Chat in C with GDBus: the example app of ../python-gio, for apps written in C.
 *
 *   org.example.ChatC send [--server URL] TEXT   put TEXT in the outbox, ask bgsync for a sync, quit
 *   org.example.ChatC --gapplication-service     what the bus runs to wake the app (.service file)
 *
 * org.bgsync.App comes from gdbus-codegen over the installed org.bgsync.App.xml (see the
 * Makefile): a skeleton exported at the app's object path in dbus_register, before the app owns
 * its name, so no Sync can arrive before it is there. Sync POSTs each outbox file to the server
 * named in the registration (plain HTTP/1.0 over GSocketClient, to stay within GIO), deletes it
 * once the server took it, and answers. The outbox is $CHAT_OUTBOX or
 * $XDG_DATA_HOME/org.example.ChatC/outbox. */
#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

#include "bgsync-app.h"

#define APP_ID "org.example.ChatC"
#define TAG "outbox"
#define DEFAULT_SERVER "http://127.0.0.1:8765/messages"

static char *
outbox_dir (void)
{
  const char *env = g_getenv ("CHAT_OUTBOX");
  return env ? g_strdup (env) : g_build_filename (g_get_user_data_dir (), APP_ID, "outbox", NULL);
}

/* POSTs body to an http:// URL; returns the HTTP status, or 0 with *error set. */
static int
post (const char *url, const char *body, gsize length, GError **error)
{
  g_autoptr (GUri) uri = g_uri_parse (url, G_URI_FLAGS_NONE, error);
  if (!uri)
    return 0;
  if (g_strcmp0 (g_uri_get_scheme (uri), "http") != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "only http:// servers: %s", url);
      return 0;
    }
  int port = g_uri_get_port (uri) > 0 ? g_uri_get_port (uri) : 80;
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_socket_client_set_timeout (client, 30);
  g_autoptr (GSocketConnection) connection =
      g_socket_client_connect_to_host (client, g_uri_get_host (uri), port, NULL, error);
  if (!connection)
    return 0;
  const char *path = *g_uri_get_path (uri) ? g_uri_get_path (uri) : "/";
  g_autofree char *head = g_strdup_printf ("POST %s HTTP/1.0\r\nHost: %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                           "Content-Length: %" G_GSIZE_FORMAT "\r\n\r\n",
                                           path, g_uri_get_host (uri), length);
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (connection));
  if (!g_output_stream_write_all (out, head, strlen (head), NULL, NULL, error)
      || !g_output_stream_write_all (out, body, length, NULL, NULL, error))
    return 0;
  g_autoptr (GDataInputStream) in =
      g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (connection)));
  g_autofree char *status_line = g_data_input_stream_read_line (in, NULL, NULL, error);
  int status = 0;
  if (!status_line || sscanf (status_line, "HTTP/%*d.%*d %d", &status) != 1)
    {
      if (error && !*error)
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "not an HTTP answer");
      return 0;
    }
  return status;
}

static int
by_name (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* Sends the outbox, oldest first; sets outcome and detail. */
static void
deliver (const char *server, const char **outcome, char **detail)
{
  g_autofree char *directory = outbox_dir ();
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GDir) dir = g_dir_open (directory, 0, NULL);
  const char *name;
  while (dir && (name = g_dir_read_name (dir)))
    if (name[0] != '.')
      g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, by_name);
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *path = g_build_filename (directory, names->pdata[i], NULL);
      g_autofree char *body = NULL;
      gsize length;
      g_autoptr (GError) error = NULL;
      if (!g_file_get_contents (path, &body, &length, &error))
        continue; /* gone meanwhile */
      int status = post (server, body, length, &error);
      if (status == 0)
        {
          *outcome = "retry";
          *detail = g_strdup_printf ("cannot reach %s: %s; %u of %u sent", server, error->message, i, names->len);
          return;
        }
      if (status >= 300)
        {
          gboolean hopeless = status >= 400 && status < 500 && status != 408 && status != 429;
          *outcome = hopeless ? "failure" : "retry";
          *detail = g_strdup_printf ("the server answered HTTP %d; %u of %u sent", status, i, names->len);
          return;
        }
      g_unlink (path); /* only once the server took it: a repeat sends what is left */
    }
  *outcome = "success";
  *detail = g_strdup_printf ("sent %u message(s)", names->len);
}

static gboolean
on_sync (BgsyncApp *skeleton, GDBusMethodInvocation *invocation, const char *tag, GVariant *event, gpointer user_data)
{
  GApplication *app = user_data;
  g_application_hold (app); /* an app the bus started quits after the release below */
  const char *server = DEFAULT_SERVER;
  guint32 attempt = 0;
  g_variant_lookup (event, "server", "&s", &server);
  g_variant_lookup (event, "attempt", "u", &attempt);
  g_printerr ("%s: Sync %s attempt %u\n", APP_ID, tag, attempt);
  const char *outcome;
  g_autofree char *detail = NULL;
  if (g_strcmp0 (tag, TAG) != 0)
    {
      outcome = "failure";
      detail = g_strdup_printf ("%s has no sync '%s'", APP_ID, tag);
    }
  else
    deliver (server, &outcome, &detail);
  GVariantBuilder result;
  g_variant_builder_init (&result, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add (&result, "{sv}", "detail", g_variant_new_string (detail));
  bgsync_app_complete_sync (skeleton, invocation, outcome, g_variant_builder_end (&result));
  g_application_release (app);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* The application: GApplication plus the exported org.bgsync.App. */
typedef struct
{
  GApplication parent;
  BgsyncApp *sync;
} Chat;
typedef GApplicationClass ChatClass;
G_DEFINE_TYPE (Chat, chat, G_TYPE_APPLICATION)

static gboolean
chat_dbus_register (GApplication *app, GDBusConnection *connection, const char *path, GError **error)
{
  Chat *self = (Chat *) app;
  if (!G_APPLICATION_CLASS (chat_parent_class)->dbus_register (app, connection, path, error))
    return FALSE;
  self->sync = bgsync_app_skeleton_new ();
  g_signal_connect (self->sync, "handle-sync", G_CALLBACK (on_sync), app);
  return g_dbus_interface_skeleton_export (G_DBUS_INTERFACE_SKELETON (self->sync), connection, path, error);
}

static void
chat_dbus_unregister (GApplication *app, GDBusConnection *connection, const char *path)
{
  Chat *self = (Chat *) app;
  if (self->sync)
    {
      g_dbus_interface_skeleton_unexport (G_DBUS_INTERFACE_SKELETON (self->sync));
      g_clear_object (&self->sync);
    }
  G_APPLICATION_CLASS (chat_parent_class)->dbus_unregister (app, connection, path);
}

static void
chat_activate (GApplication *app)
{
  g_printerr ("%s: nothing to show; use `%s send TEXT`\n", APP_ID, APP_ID);
}

static void
chat_class_init (ChatClass *klass)
{
  klass->dbus_register = chat_dbus_register;
  klass->dbus_unregister = chat_dbus_unregister;
  klass->activate = chat_activate;
}

static void
chat_init (Chat *self)
{
}

/* Writes TEXT into the outbox (aside, then renamed in) and registers the sync. */
static int
send_message (const char *server, const char *text)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *directory = outbox_dir ();
  g_autofree char *name = g_strdup_printf ("%" G_GINT64_FORMAT "-%u.txt", g_get_real_time (), g_random_int ());
  g_autofree char *aside = g_strdup_printf ("%s/.%s", directory, name);
  g_autofree char *final = g_build_filename (directory, name, NULL);
  if (g_mkdir_with_parents (directory, 0700) != 0 || !g_file_set_contents (aside, text, -1, &error)
      || g_rename (aside, final) != 0)
    {
      g_printerr ("cannot write to %s: %s\n", directory, error ? error->message : g_strerror (errno));
      return 1;
    }
  g_autoptr (GDBusConnection) bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, &error);
  GVariantBuilder options;
  g_variant_builder_init (&options, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add (&options, "{sv}", "server", g_variant_new_string (server));
  g_autoptr (GVariant) reply =
      bus ? g_dbus_connection_call_sync (bus, "org.bgsync", "/org/bgsync/Manager", "org.bgsync.Manager", "Register",
                                         g_variant_new ("(sssa{sv})", APP_ID, TAG, "app", &options), NULL,
                                         G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error)
          : NULL;
  if (!reply)
    {
      g_printerr ("cannot register the sync with bgsync: %s\n", error->message);
      return 1;
    }
  g_print ("queued %s; bgsync will wake %s to send it when the network is up\n", name, APP_ID);
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc >= 2 && strcmp (argv[1], "send") == 0)
    {
      const char *server = g_getenv ("CHAT_SERVER") ? g_getenv ("CHAT_SERVER") : DEFAULT_SERVER;
      int first = 2;
      if (argc >= 4 && strcmp (argv[2], "--server") == 0)
        {
          server = argv[3];
          first = 4;
        }
      if (argc != first + 1)
        {
          g_printerr ("usage: %s send [--server URL] TEXT\n", argv[0]);
          return 2;
        }
      return send_message (server, argv[first]);
    }
  g_autoptr (GApplication) app = g_object_new (chat_get_type (), "application-id", APP_ID, NULL);
  return g_application_run (app, argc, argv);
}
