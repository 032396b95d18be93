// SPDX-License-Identifier: Apache-2.0
/// How event slots (`concurrent-events`) are shared between apps. While several apps have work
/// (an event running or one due), each may hold at most `slots / apps` of them (at least one),
/// and an app that already holds one never takes the last free slot: that one is kept for an app
/// with nothing running, so a newcomer starts at once even while another app's events hang
/// until their time cap. Nothing running is stopped: shares even out as events end.
public enum FairShare {
    /// The most slots one app may hold while `activeApps` apps have work.
    public static func share(slots: Int, activeApps: Int) -> Int {
        max(1, slots / max(1, activeApps))
    }

    /// Whether an app holding `held` slots may start one more, with `free` slots left.
    public static func mayStart(held: Int, share: Int, free: Int) -> Bool {
        guard free > 0, held < share else { return false }
        return held == 0 || free > 1
    }
}

/// Pending registrations, one FIFO per app, with the apps served in turns: one app's thousand
/// due syncs do not stand in front of another app's one.
struct FairQueue {
    private var queues: [ExactText: ReadyQueue] = [:]
    /// Apps with a queue, in the order they get their turn; `cursor` is whose turn is next.
    private var turns: [ExactText] = []
    private var cursor = 0
    /// A queue ran empty since `appsInTurn` last dropped the empty ones (a scan of every app).
    private var emptied = false

    enum Decision { case take, keep, drop }

    mutating func append(_ key: RegistrationKey) {
        if queues[key.app] == nil { turns.append(key.app) }
        queues[key.app, default: ReadyQueue()].append(key)
    }

    /// Whether `app` has pending keys (after `appsInTurn` dropped the emptied queues).
    func hasPending(_ app: ExactText) -> Bool { queues[app] != nil }

    /// The apps with pending keys, starting with the one whose turn it is; the next call starts
    /// one further on, so no app is always first.
    mutating func appsInTurn() -> [ExactText] {
        if emptied {
            emptied = false
            turns.removeAll { app in
                guard queues[app]?.isEmpty ?? true else { return false }
                queues[app] = nil
                return true
            }
        }
        guard !turns.isEmpty else {
            cursor = 0
            return []
        }
        let start = cursor % turns.count
        cursor = (start + 1) % turns.count
        return Array(turns[start...] + turns[..<start])
    }

    /// Pops `app`'s first key that `decide` takes; keys it keeps stay at the front in their
    /// order, keys it drops are forgotten (stale entries). The queue is changed where it lies
    /// in the dictionary: a copy taken out and put back copied all its keys on every pop (the
    /// copy shares storage with the dictionary's), which made a storm quadratic in each app's keys.
    mutating func popFirst(of app: ExactText, _ decide: (RegistrationKey) -> Decision) -> RegistrationKey? {
        guard let index = queues.index(forKey: app) else { return nil }
        var kept: [RegistrationKey] = []
        var taken: RegistrationKey?
        while taken == nil, let key = queues.values[index].popFirst() {
            switch decide(key) {
            case .take: taken = key
            case .keep: kept.append(key)
            case .drop: break
            }
        }
        queues.values[index].prepend(kept)
        // An emptied queue stays until appsInTurn drops it with its turn.
        if queues.values[index].isEmpty { emptied = true }
        return taken
    }
}

/// A FIFO of keys without duplicates, cheap to pop from the front.
struct ReadyQueue {
    private var items: [RegistrationKey] = []
    private var head = 0
    private var members: Set<RegistrationKey> = []

    var isEmpty: Bool { members.isEmpty }

    mutating func append(_ key: RegistrationKey) {
        if members.insert(key).inserted { items.append(key) }
    }

    mutating func popFirst() -> RegistrationKey? {
        guard head < items.count else { return nil }
        let key = items[head]
        head += 1
        members.remove(key)
        if head > 1024, head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return key
    }

    /// Puts keys back at the front, in order (those skipped by one dispatch round).
    mutating func prepend(_ keys: [RegistrationKey]) {
        let fresh = keys.filter { members.insert($0).inserted }
        guard !fresh.isEmpty else { return }
        items.replaceSubrange(head..<head, with: fresh)
    }
}
