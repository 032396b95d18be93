// SPDX-License-Identifier: Apache-2.0
#include "CBGSyncInterface.h"

static const char xml[] = {
#embed "../../dbus/org.bgsync.Manager.xml"
    , 0
};

static const char app_xml[] = {
#embed "../../dbus/org.bgsync.App.xml"
    , 0
};

const char *bgsync_manager_interface_xml(void) { return xml; }

const char *bgsync_app_interface_xml(void) { return app_xml; }
