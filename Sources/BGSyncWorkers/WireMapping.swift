// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import BGSyncWire

import struct Foundation.Date
import class Foundation.JSONDecoder

// The core's types to and from the worker protocol's (BGSyncWire, which the worker reads
// without Foundation). The agent's side only.

extension WireEvent {
    public init(_ event: SyncEvent) {
        self.init(
            id: event.id, appID: event.key.appID, tag: event.key.tag, periodic: event.key.kind == .periodic,
            options: event.options, attempt: event.attempt, lastChance: event.lastChance,
            deadline: event.deadline.timeIntervalSince1970, root: event.confinement.root,
            stallTimeout: event.stallTimeout, ceiling: event.ceiling?.timeIntervalSince1970)
    }
}

extension HandlerOutcome {
    public init(_ outcome: WireOutcome) {
        switch outcome {
        case .success(let detail): self = .success(detail: detail)
        case .retry(let after, let detail, let advanced):
            self = .retry(after: after, detail: detail, advanced: advanced)
        case .failure(let detail): self = .failure(detail: detail)
        }
    }
}

extension ProbeReport {
    public init(handler: HandlerInfo) {
        self.init(
            name: handler.name, description: handler.description, sandboxSafe: handler.sandboxSafe,
            pathOptions: handler.pathOptions, urlOptions: handler.urlOptions)
    }

    /// Reads the line `bgsync-worker --probe` printed.
    public init(jsonLine: [UInt8]) throws {
        self = try JSONDecoder().decode(ProbeReport.self, from: .init(jsonLine))
    }

    /// The handler it describes, nil for a refusal or an incomplete report. The handler's name
    /// is checked here, by the agent, with the rules of every name a caller gives.
    public func handler() throws(SyncError) -> HandlerInfo? {
        guard error == nil, let name, let description, let sandboxSafe else { return nil }
        try Identifiers.validateHandlerName(name)
        return HandlerInfo(
            name: name, description: description, sandboxSafe: sandboxSafe, pathOptions: pathOptions ?? [],
            urlOptions: urlOptions ?? [])
    }
}
