// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

enum FileOutput {
    /// Writes a diagnostic; the library has no logger of its own.
    static func standardError(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }
}
