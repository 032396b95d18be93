// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Logging

extension RegistrationKey {
    /// What a log line about this registration carries besides its text: the journal handler
    /// stores them as the fields BGSYNC_APP and BGSYNC_TAG (`journalctl --user BGSYNC_APP=…`
    /// is one app's story); the stderr handler leaves them out, the message names them already.
    public var logMetadata: Logger.Metadata { ["app": .string(appID), "tag": .string(tag)] }
}
