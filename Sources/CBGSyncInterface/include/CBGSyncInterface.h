/* The introspection XML of org.bgsync.Manager, compiled in from dbus/org.bgsync.Manager.xml so
 * that what Introspect returns is the very file we publish. */
#pragma once
extern const char bgsync_manager_interface_xml[];
