#include "CBGSyncInterface.h"

static const char xml[] = {
#embed "../../dbus/org.bgsync.Manager.xml"
    , 0
};

const char *bgsync_manager_interface_xml(void) { return xml; }
