// SPDX-License-Identifier: Apache-2.0
import BGSyncValue
import DBusKit
import Foundation
import MainLoop
import TestKit
import Testing

/// `callAsync` and `watchNameOwner`, against a real bus: the test service on its own loop thread,
/// and peers that never answer or leave mid-call, as apps do.
@Suite final class AsyncCallTests {
    let bus: PrivateBus
    let server = LoopThread()
    let serverState: Unchecked<(DBusConnection, DBusExportedObject, TestService.State)>
    let loop = MainLoop()
    let client: DBusConnection

    init() throws {
        bus = try PrivateBus()
        let (address, serverLoop) = (bus.address, server.loop)
        serverState = Unchecked(value: try server.run { try TestService.start(address: address, loop: serverLoop) })
        client = try DBusConnection(bus: .address(address))
        client.attach(to: loop)
    }

    deinit {
        client.close()
        let state = serverState
        _ = try? server.run { state.value.0.close() }
        server.stop()
        bus.kill()
    }

    /// Runs the client's loop until `done` or 10 s; returns whether `done` came true.
    func runUntil(_ done: () -> Bool) -> Bool {
        let deadline = MainLoop.monotonicNow() + 10_000_000_000
        while !done() && MainLoop.monotonicNow() < deadline { _ = loop.iterate(timeout: 0.5) }
        return done()
    }

    func callAndWait(
        _ method: String, _ arguments: [Value] = [],
        to destination: String = TestService.name, timeout: Double = 10,
        replySignature: String? = nil
    ) throws -> DBusReply {
        var reply: DBusReply?
        try client.callAsync(
            destination: destination, path: TestService.path, interface: TestService.interface,
            method: method, arguments: arguments, timeout: timeout,
            replySignature: replySignature
        ) { reply = $0 }
        #expect(reply == nil, "the completion never runs inside callAsync")
        try #require(runUntil { reply != nil })
        return reply!
    }

    /// A connection that owns `name` and never reads its messages: a hung app.
    func silentPeer(owning name: String) throws -> DBusConnection {
        let peer = try DBusConnection(bus: .address(bus.address))
        #expect(try peer.requestName(name))
        return peer
    }

    @Test func aReplyArrivesThroughTheLoopWithItsSender() throws {
        let reply = try callAndWait("Concat", [.string("foo"), .string("bar")], replySignature: "s")
        #expect(try reply.result.get() == [.string("foobar")])
        #expect(reply.sender == serverState.value.0.uniqueName)
        #expect(reply.signature == "s")
    }

    @Test func anErrorReplyKeepsItsNameAndMessage() throws {
        let reply = try callAndWait("Fail", [.string("no luck")])
        #expect(throws: DBusError(name: "org.example.Error.Custom", message: "no luck")) { try reply.result.get() }
    }

    @Test func aReplyOfAnotherSignatureIsRefusedUnread() throws {
        let reply = try callAndWait("Concat", [.string("a"), .string("b")], replySignature: "sa{sv}")
        let refused = DBusError.invalidSignature("the reply has signature 's', not 'sa{sv}'")
        #expect(throws: refused) { try reply.result.get() }
    }

    @Test func aNameNobodyOwnsIsServiceUnknownFromTheBus() throws {
        let reply = try callAndWait("Concat", [.string("a"), .string("b")], to: "org.example.Nobody")
        guard case .failure(let error) = reply.result else {
            Issue.record("expected an error")
            return
        }
        #expect(error.name == "org.freedesktop.DBus.Error.ServiceUnknown")
        #expect(reply.sender == DBusReply.busName)
    }

    @Test func aPeerThatNeverAnswersTimesOutLocally() throws {
        let peer = try silentPeer(owning: "org.example.Hung")
        defer { peer.close() }
        let started = MainLoop.monotonicNow()
        let reply = try callAndWait("Concat", [.string("a"), .string("b")], to: "org.example.Hung", timeout: 0.3)
        let elapsed = Double(MainLoop.monotonicNow() - started) / 1e9
        guard case .failure(let error) = reply.result else {
            Issue.record("expected an error")
            return
        }
        #expect(error.name == "org.freedesktop.DBus.Error.NoReply")
        #expect(reply.sender == "", "made up by libdbus, not sent by the bus")
        #expect(elapsed >= 0.29)
    }

    @Test func aPeerLeavingMidCallEndsItAtOnceAndItsWatchSeesIt() throws {
        let peer = try silentPeer(owning: "org.example.Leaving")
        var changes: [(String, String)] = []
        let watch = try client.watchNameOwner("org.example.Leaving") { changes.append(($0, $1)) }
        var reply: DBusReply?
        try client.callAsync(
            destination: "org.example.Leaving", path: "/x", interface: "org.example.X",
            method: "Y", timeout: 60
        ) { reply = $0 }
        client.flush()  // the watch's rule and the call reach the bus while the peer has the name
        // ... and the bus routed the call before the peer leaves: a round trip after it.
        _ = try callAndWait("Nothing")
        peer.close()
        let both = runUntil { reply != nil && !changes.isEmpty }
        try #require(both, "reply: \(String(describing: reply)), owner changes: \(changes)")
        guard case .failure(let error) = reply!.result else {
            Issue.record("expected an error")
            return
        }
        #expect(error.name == "org.freedesktop.DBus.Error.NoReply")
        #expect(reply!.sender == DBusReply.busName, "the bus says the peer left; not our timeout")
        #expect(changes.count == 1 && changes[0].0 == peer.uniqueName && changes[0].1 == "")
        watch.cancel()
    }

    @Test func aCancelledCallNeverCompletesAndACancelledWatchHearsNothing() throws {
        var completed = false
        let call = try client.callAsync(
            destination: TestService.name, path: TestService.path,
            interface: TestService.interface, method: "Nothing", timeout: 10
        ) { _ in
            completed = true
        }
        call.cancel()
        #expect(call.isDone)
        var heard = 0
        let watch = try client.watchNameOwner("org.example.Coming") { _, _ in heard += 1 }
        var kept: [(String, String)] = []
        let other = try client.watchNameOwner("org.example.Coming") { kept.append(($0, $1)) }
        watch.cancel()
        let peer = try silentPeer(owning: "org.example.Coming")
        defer { peer.close() }
        // Something that does complete, to know the loop has caught up with the bus.
        _ = try callAndWait("Concat", [.string("a"), .string("b")])
        try #require(runUntil { !kept.isEmpty })
        #expect(!completed)
        #expect(heard == 0)
        #expect(kept.count == 1 && kept[0].0 == "" && kept[0].1 == peer.uniqueName)
        other.cancel()
    }

    @Test(arguments: [
        ("org.example.Chat", "/org/example/Chat"),
        ("org.example.my-app", "/org/example/my_app"),
        ("com.example._1x.App_2", "/com/example/_1x/App_2"),
    ])
    func applicationObjectPathsAreGApplications(appID: String, path: String) {
        #expect(ApplicationNames.objectPath(forApplicationID: appID) == path)
    }

    @Test func idsThatMakeNoObjectPathAreRefused() {
        for bad in ["", "org..Chat", "org.example.", "org.example.Chat/x", "org.ex ample"] {
            #expect(ApplicationNames.objectPath(forApplicationID: bad) == nil, "\(bad)")
        }
    }
}

@Suite struct AsyncCallCloseTests {
    @Test func closingTheConnectionCancelsCallsInFlight() throws {
        let bus = try PrivateBus()
        defer { bus.kill() }
        let loop = MainLoop()
        let hung = try DBusConnection(bus: .address(bus.address))
        defer { hung.close() }
        #expect(try hung.requestName("org.example.Hung"))
        let client = try DBusConnection(bus: .address(bus.address))
        client.attach(to: loop)
        var completed = 0
        let call = try client.callAsync(
            destination: "org.example.Hung", path: "/x", interface: "org.example.X",
            method: "Y", timeout: 0.2
        ) { _ in completed += 1 }
        client.close()
        #expect(call.isDone)
        let deadline = Date().addingTimeInterval(0.5)
        while Date() < deadline { _ = loop.iterate(timeout: 0.1) }  // past the call's own timeout
        #expect(completed == 0)
        #expect(throws: DBusError.self) {
            try client.callAsync(
                destination: "org.example.Hung", path: "/x", interface: "org.example.X",
                method: "Y", timeout: 1
            ) { _ in }
        }
    }
}
