// SPDX-License-Identifier: Apache-2.0
// The journal's native protocol (sd_journal_sendv), for the agent's log lines with fields.
// No CODE_FILE/CODE_LINE of this header's: the fields name the agent's lines by their own.
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>
