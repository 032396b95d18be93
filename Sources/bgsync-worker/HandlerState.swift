// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Growth 4: the handler's own state directory, `DIR/NAME` where the agent passed `--state-dir DIR`
/// (its state directory's `handlers/`) and NAME is the loaded handler's. Nothing an app sends
/// takes part in the path: the handler's name was checked by the agent's probe.
enum HandlerState {
    /// The agent's `--state-dir`; nil when it gave none.
    nonisolated(unsafe) static var directory: String?
    nonisolated(unsafe) static var handlerName: String?

    /// The directory opened (created 0700 with its parent as needed), or a negated errno.
    static func open() -> Int32 {
        guard let directory, let handlerName, !handlerName.isEmpty, !handlerName.contains("/") else {
            return -ENOENT
        }
        let path = directory + "/" + handlerName
        for step in [directory, path] where mkdir(step, 0o700) != 0 && errno != EEXIST {
            return -errno
        }
        // O_NOFOLLOW: the agent's state directory is the user's own, but a link in place of the
        // handler's directory is not followed anywhere.
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
        return fd >= 0 ? fd : -errno
    }
}
