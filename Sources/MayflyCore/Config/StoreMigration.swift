import Foundation
import MayflyStore

/// `mayfly operator migrate`: copies everything one store holds into another — SQLite into
/// PostgreSQL, or back — as it is: ciphertext, versions, system values (the seal config and the
/// wrapped keys) and lease rows, so the copy unseals with the same keys and keeps the same
/// store id (reconcile still recognises the roles it made). Both stores are locked for the
/// copy (no server may run on either), and a target that holds anything is refused.
public enum StoreMigration {
    /// What was copied.
    public struct Outcome: Sendable, Equatable {
        public var entries = 0
        public var leases = 0
        public var systemValues = 0
    }

    /// Rows copied per transaction.
    static let batch = 500

    /// Copies the store of `source` into the store of `destination` (server configs: only their
    /// `storage` stanzas matter); `progress` gets a line now and then.
    public static func run(from source: MayflyConfig, to destination: MayflyConfig,
                           progress: @Sendable (String) -> Void) async throws -> Outcome
    {
        guard source.storeIdentity != destination.storeIdentity else {
            throw StorageError(.unavailable, "the source and the destination are the same store")
        }
        // No server may run on either store meanwhile.
        let sourceLock = try await Broker.lockStore(source)
        let destinationLock = try await Broker.lockStore(destination)
        defer { withExtendedLifetime((sourceLock, destinationLock)) {} }
        let from = try await Broker.openStore(source), to = try await Broker.openStore(destination)
        guard try await to.paths(withPrefix: "", after: nil, limit: 1).isEmpty, try await to.leaseCounts().isEmpty,
            try await to.systemValueNames().isEmpty
        else {
            throw StorageError(.conflict, "the destination store is not empty: migrate only into a new, empty store")
        }
        var outcome = Outcome()
        var after: String?
        while true {
            let paths = try await from.paths(withPrefix: "", after: after, limit: batch)
            guard let last = paths.last else { break }
            var puts: [StorageOperation] = []
            for path in paths {
                // An entry deleted since it was listed is simply not copied (nothing else writes now).
                if let entry = try await from.get(path) { puts.append(.put(entry, expectedVersion: 0)) }
            }
            try await to.commit(puts)
            outcome.entries += puts.count
            after = last
            if outcome.entries % 10_000 < batch { progress("copied \(outcome.entries) entries") }
        }
        var leaseCursor: String?
        while true {
            let leases = try await from.leases(matching: LeaseFilter(), after: leaseCursor, limit: batch)
            guard let last = leases.last else { break }
            try await to.updateLeases(leases)
            outcome.leases += leases.count
            leaseCursor = last.id
            if outcome.leases % 10_000 < batch { progress("copied \(outcome.leases) lease rows") }
        }
        // System values last: a copy cut short has no seal config, so no server unseals it.
        for name in try await from.systemValueNames() {
            guard let value = try await from.systemValue(name) else { continue }
            try await to.setSystemValue(name, value)
            outcome.systemValues += 1
        }
        guard try await to.leaseCounts() == (try await from.leaseCounts()) else {
            throw StorageError(.corrupt, "the copied lease rows do not match the source's counts")
        }
        progress("done: \(outcome.entries) entries, \(outcome.leases) lease rows, \(outcome.systemValues) system values")
        if let store = to as? PostgresStorage { await store.close() }
        if let store = from as? PostgresStorage { await store.close() }
        return outcome
    }
}
