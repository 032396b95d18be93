#include "bgsync-plugin.h"
