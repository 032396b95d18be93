// SPDX-License-Identifier: Apache-2.0
import BGSyncHandlerKit
import FetchHandler

/// The plugin's one exported symbol; see bgsync-plugin.h.
@_cdecl("bgsync_plugin_entry")
public func entry(_ hostABIVersion: UInt32) -> UnsafeRawPointer? {
    PluginExport.entry(FetchHandler.self, hostABIVersion: hostABIVersion)
}
