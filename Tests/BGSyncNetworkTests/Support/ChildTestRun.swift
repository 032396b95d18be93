// SPDX-License-Identifier: Apache-2.0
import Foundation
import TestKit
import Testing

/// Runs one test of this binary in a child process (`wrapper` first, e.g. `unshare --net`), with
/// `marker` set so the child's half runs, and expects it to pass. Used where a check needs a
/// process of its own: a network namespace, or an environment without a system bus.
func expectChildTestPasses(
    _ test: String, marker: String, wrapper: [String] = [], environment extra: [String: String] = [:]
) throws {
    let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
    var environment = ProcessInfo.processInfo.environment
    environment[marker] = "1"
    environment.merge(extra) { _, new in new }
    // `timeout`: a stuck child must fail the test, not hang the run.
    let child = try ChildProcess(
        ["/usr/bin/timeout", "60"] + wrapper + [binary, "--testing-library", "swift-testing", "--filter", test],
        environment: environment, errors: .stdout)
    let text = String(decoding: child.readToEnd(idle: 90).stdout, as: UTF8.self)
    let status = child.wait()
    #expect(status == 0, "child test run failed:\n\(text)")
    #expect(text.contains("\(test)() passed"), "child did not run the check:\n\(text)")
}
