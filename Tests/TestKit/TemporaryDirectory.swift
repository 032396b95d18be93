// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// A new private directory for one test (mkdtemp), under $TMPDIR or /tmp; the test removes it.
public func makeTemporaryDirectory(prefix: String) throws(TestSetupError) -> String {
    let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    var template = Array((base + (base.hasSuffix("/") ? "" : "/") + "\(prefix).XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else {
        throw TestSetupError("mkdtemp failed: \(String(cString: strerror(errno)))")
    }
    return String(cString: made)
}
