// SPDX-License-Identifier: Apache-2.0
/// The scheduler's registrations: the values side by side in one array, a dictionary from key to
/// position. A `[RegistrationKey: Registration]` keeps each ~200-byte value in its hash table,
/// whose bucket count is the next power of two above count / 0.75: 262,144 buckets for 100,000
/// registrations, about 60 MiB, most of them empty. Here only the 48-byte (key, position)
/// entries are spread that way. Measured starting with 100,000 stored: peak RSS 99 MiB with the
/// dictionary (sized once), see BENCHMARKS.md for the figure with this table.
struct RegistrationTable {
    private var positions: [RegistrationKey: Int] = [:]
    private(set) var values: [Registration] = []

    var count: Int { values.count }

    mutating func reserveCapacity(_ capacity: Int) {
        positions.reserveCapacity(capacity)
        values.reserveCapacity(capacity)
    }

    subscript(key: RegistrationKey) -> Registration? {
        get { positions[key].map { values[$0] } }
        set {
            if let newValue { updateValue(newValue, forKey: key) } else { removeValue(forKey: key) }
        }
    }

    /// Sets the value; returns the one it replaced.
    @discardableResult
    mutating func updateValue(_ value: Registration, forKey key: RegistrationKey) -> Registration? {
        if let position = positions[key] {
            let old = values[position]
            values[position] = value
            return old
        }
        positions[key] = values.count
        values.append(value)
        return nil
    }

    /// Removes the value (the last one moves into its place); returns it.
    @discardableResult
    mutating func removeValue(forKey key: RegistrationKey) -> Registration? {
        guard let position = positions.removeValue(forKey: key) else { return nil }
        let removed = values[position]
        let last = values.removeLast()
        if position < values.count {
            values[position] = last
            positions[last.key] = position
        }
        return removed
    }

    /// Changes, in place, every value `body` returns true for (its key must stay the same).
    mutating func updateEach(_ body: (inout Registration) -> Bool) -> [RegistrationKey] {
        var changed: [RegistrationKey] = []
        for position in values.indices where body(&values[position]) { changed.append(values[position].key) }
        return changed
    }
}
