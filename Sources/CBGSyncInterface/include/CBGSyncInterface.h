// SPDX-License-Identifier: Apache-2.0
/* The introspection XML of org.bgsync.Manager and org.bgsync.App, compiled in from
 * dbus/org.bgsync.Manager.xml and dbus/org.bgsync.App.xml so that what Introspect returns is
 * the very file we publish. */
#pragma once

/* The XML documents, NUL-terminated; static storage. */
const char *bgsync_manager_interface_xml(void);
const char *bgsync_app_interface_xml(void);
