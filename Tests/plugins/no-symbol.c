// SPDX-License-Identifier: Apache-2.0
/* Test plugin "no-symbol": a shared library without bgsync_plugin_entry. */
int not_a_bgsync_plugin(void);
int not_a_bgsync_plugin(void) { return 42; }
