#include "CBGSyncInterface.h"

const char bgsync_manager_interface_xml[] = {
#embed "../../dbus/org.bgsync.Manager.xml"
    , 0
};
