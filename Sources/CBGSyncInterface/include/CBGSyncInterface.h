/* The introspection XML of org.bgsync.Manager, compiled in from dbus/org.bgsync.Manager.xml so
 * that what Introspect returns is the very file we publish. */
#pragma once

/* The XML document, NUL-terminated; static storage. */
const char *bgsync_manager_interface_xml(void);
