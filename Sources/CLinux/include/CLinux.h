/* Linux system headers that Swift's Glibc module does not export. */
#pragma once
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/signalfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <signal.h>
#include <spawn.h>
#include "CLinuxPidfd.h"
