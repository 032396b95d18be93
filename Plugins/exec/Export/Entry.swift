// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit
import ExecHandler

/// The plugin's one exported symbol; see bgsync-plugin.h.
@_cdecl("bgsync_plugin_entry")
public func entry(_ hostABIVersion: UInt32) -> UnsafeRawPointer? {
    PluginExport.entry(ExecHandler.self, hostABIVersion: hostABIVersion)
}
