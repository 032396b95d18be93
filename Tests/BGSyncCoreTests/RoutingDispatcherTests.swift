// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncTestSupport
import Testing

import struct Foundation.Date

@Suite struct RoutingDispatcherTests {
    private func event(_ id: UInt64, handler: String) -> SyncEvent {
        SyncEvent(
            id: id, key: RegistrationKey(appID: "org.example.Chat", tag: "t\(id)", kind: .oneOff), handler: handler,
            options: [:], attempt: 1, lastChance: false, deadline: Date(timeIntervalSince1970: 0))
    }

    @Test func builtInHandlersRunInTheAgentAndTheRestInThePlugins() {
        let app = ManualDispatcher()
        let plugins = ManualDispatcher()
        let router = RoutingDispatcher(builtIn: ["app": app], plugins: plugins)
        var outcomes: [UInt64: HandlerOutcome] = [:]
        for (id, handler) in [(1, "app"), (2, "upload"), (3, "app"), (4, "exec")] as [(UInt64, String)] {
            router.dispatch(event(id, handler: handler)) { outcomes[id] = $0 }
        }
        #expect(app.started.map(\.id) == [1, 3])
        #expect(plugins.started.map(\.id) == [2, 4])
        app.finish(3, .retry(after: 5, detail: "later"))
        plugins.finish(2, .success(detail: ""))
        #expect(outcomes == [3: .retry(after: 5, detail: "later"), 2: .success(detail: "")])
    }

    @Test func aBuiltInHandlerShadowsAPluginOfTheSameName() {
        let builtIn = HandlerInfo(name: "app", description: "built in", sandboxSafe: true)
        let plugins = [
            "app": HandlerInfo(name: "app", description: "a plugin", sandboxSafe: false),
            "upload": HandlerInfo(name: "upload", description: "uploads", sandboxSafe: true),
        ]
        let (handlers, shadowed) = RoutingDispatcher.handlers(builtIn: [builtIn], plugins: plugins)
        #expect(handlers["app"] == builtIn)
        #expect(handlers["upload"] == plugins["upload"])
        #expect(shadowed == ["app"])
        #expect(RoutingDispatcher.handlers(builtIn: [builtIn], plugins: [:]).shadowed.isEmpty)
    }
}
