import Foundation
import Testing

/// Runs one test of this binary in a child process (`wrapper` first, e.g. `unshare --net`), with
/// `marker` set so the child's half runs, and expects it to pass. Used where a check needs a
/// process of its own: a network namespace, or an environment without a system bus.
func expectChildTestPasses(
    _ test: String, marker: String, wrapper: [String] = [], environment extra: [String: String] = [:]
) throws {
    let child = Process()
    // `timeout`: a stuck child must fail the test, not hang the run.
    child.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
    let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
    child.arguments = ["60"] + wrapper + [binary, "--testing-library", "swift-testing", "--filter", test]
    var environment = ProcessInfo.processInfo.environment
    environment[marker] = "1"
    environment.merge(extra) { _, new in new }
    child.environment = environment
    let output = Pipe()
    child.standardOutput = output
    child.standardError = output
    try child.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    child.waitUntilExit()
    #expect(child.terminationStatus == 0, "child test run failed:\n\(text)")
    #expect(text.contains("\(test)() passed"), "child did not run the check:\n\(text)")
}
