import Foundation
import MayflyCrypto
public import MayflyStore
import Synchronization

/// One change in an atomic `Barrier.commit`.
public enum BarrierOperation: Sendable {
    /// Encrypts and writes `value` at `path`.
    case put(path: String, value: [UInt8])
    /// Removes `path`.
    case delete(path: String)
    /// Removes everything under `prefix`.
    case deletePrefix(String)
}

/// Encrypts everything above storage. Each value is sealed with XChaCha20-Poly1305 under the
/// active keyring term, with the path, the entry's write version and the header as associated
/// data. Layout: `format (1) | term (4, big-endian) | nonce (24) | ciphertext+tag`.
public final class Barrier: Sendable {
    private static let format: UInt8 = 1
    private let storage: any Storage
    private let keyring = Mutex<Keyring?>(nil)
    private let encryptions = Mutex<[UInt32: Int]>([:])
    /// Decrypted values of hot paths (token entries, KV), wiped on seal.
    let cache = PlaintextCache()

    public init(storage: any Storage) {
        self.storage = storage
    }

    /// True when no keyring is loaded.
    public var isSealed: Bool { keyring.withLock { $0 == nil } }

    func install(_ ring: Keyring) {
        let old = keyring.withLock { current -> Keyring? in
            let previous = current
            current = ring
            return previous
        }
        // A rotated keyring shares its older terms with the one it replaces: wipe only the
        // keys that are no longer in use.
        if let old, old !== ring {
            for term in old.terms.values where ring.terms[term.number]?.key !== term.key { term.key.wipe() }
        }
    }

    /// Drops and wipes every key.
    func seal() {
        keyring.withLock { current in
            current?.wipe()
            current = nil
        }
        cache.wipe()
    }

    func currentKeyring() throws -> Keyring {
        guard let ring = keyring.withLock({ $0 }) else { throw BarrierError(.sealed, "keyring not loaded") }
        return ring
    }

    /// Number of values encrypted under each term since unseal.
    func encryptionCount(term: UInt32) -> Int { encryptions.withLock { $0[term] ?? 0 } }

    static func associatedData(path: String, version: Int64, header: [UInt8]) -> [UInt8] {
        var aad = Array("mayfly-barrier-v1".utf8) + [0] + Array(path.utf8) + [0]
        withUnsafeBytes(of: version.bigEndian) { aad.append(contentsOf: $0) }
        return aad + header
    }

    func encrypt(_ value: [UInt8], path: String, version: Int64) throws -> [UInt8] {
        let ring = try currentKeyring()
        let term = ring.active
        var header: [UInt8] = [Self.format]
        withUnsafeBytes(of: term.number.bigEndian) { header.append(contentsOf: $0) }
        let sealed = try AEAD.seal(
            value, key: term.key, associatedData: Self.associatedData(path: path, version: version, header: header))
        encryptions.withLock { $0[term.number, default: 0] += 1 }
        return header + sealed
    }

    func decrypt(_ entry: StoredEntry) throws -> [UInt8] {
        let (key, aad, body) = try openParameters(entry)
        do {
            return try AEAD.open(body, key: key, associatedData: aad)
        } catch {
            throw BarrierError(.tampered, "entry \(entry.path) v\(entry.version) failed authentication")
        }
    }

    private func openParameters(_ entry: StoredEntry) throws -> (SecureBytes, [UInt8], ArraySlice<UInt8>) {
        let ring = try currentKeyring()
        let blob = entry.value
        guard blob.count > 5, blob[0] == Self.format else {
            throw BarrierError(.tampered, "entry \(entry.path) has an unknown format")
        }
        let term = blob[1..<5].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard let key = ring.terms[term]?.key else {
            throw BarrierError(.unknownTerm, "entry \(entry.path) names term \(term)")
        }
        return (key, Self.associatedData(path: entry.path, version: entry.version, header: Array(blob[0..<5])), blob[5...])
    }

    /// The plaintext at `path`, or nil.
    public func get(_ path: String) async throws -> [UInt8]? {
        _ = try currentKeyring()
        let cacheable = PlaintextCache.isCacheable(path)
        if cacheable, let cached = cache.get(path) { return cached }
        let epoch = cache.epoch
        guard let entry = try await storage.get(path) else { return nil }
        let value = try decrypt(entry)
        // Sealed meanwhile: nothing decrypted is kept past the seal.
        if cacheable, !isSealed { cache.insert(path, value, readIn: epoch) }
        return value
    }

    /// The value at `path` decoded by `decode`; for a cached path the decoded form is kept
    /// beside the value (and dropped with it), so a hot read decodes once.
    func get<T: Sendable>(_ path: String, decodedBy decode: ([UInt8]) throws -> T) async throws -> T? {
        _ = try currentKeyring()
        guard PlaintextCache.isCacheable(path) else { return try await get(path).map(decode) }
        if let kept = try cache.decoded(path, decode) { return kept }
        let epoch = cache.epoch
        guard let entry = try await storage.get(path) else { return nil }
        let value = try decrypt(entry)
        let decoded = try decode(value)
        if !isSealed { cache.insert(path, value, decoded: decoded, readIn: epoch) }
        return decoded
    }

    /// Key material at `path`, decrypted straight into guarded memory.
    func getSecure(_ path: String) async throws -> SecureBytes? {
        guard let entry = try await storage.get(path) else { return nil }
        let (key, aad, body) = try openParameters(entry)
        do {
            return try AEAD.openSecure(body, key: key, associatedData: aad)
        } catch {
            throw BarrierError(.tampered, "entry \(entry.path) failed authentication")
        }
    }

    /// Encrypts key material from guarded memory and writes it at `path`.
    func putSecure(_ path: String, _ value: SecureBytes) async throws {
        let version = try await storage.version(of: path)
        let ring = try currentKeyring()
        let term = ring.active
        var header: [UInt8] = [Self.format]
        withUnsafeBytes(of: term.number.bigEndian) { header.append(contentsOf: $0) }
        let sealed = try AEAD.seal(
            secure: value, key: term.key,
            associatedData: Self.associatedData(path: path, version: version + 1, header: header))
        try await storage.commit([.put(StoredEntry(path: path, version: version + 1, value: header + sealed),
                                       expectedVersion: version)])
    }

    /// Writes `value` at `path`.
    public func put(_ path: String, _ value: [UInt8]) async throws {
        try await commit([.put(path: path, value: value)])
    }

    /// Removes `path`.
    public func delete(_ path: String) async throws {
        try await commit([.delete(path: path)])
    }

    /// Applies the operations atomically. Each put gets the next write version of its path; a
    /// concurrent writer to the same path makes the whole commit retry.
    public func commit(_ operations: [BarrierOperation]) async throws {
        // A put is sealed for the entry's next version, so a concurrent write of the same path
        // makes the commit conflict; it is simply sealed again for the newer version (last
        // writer wins, as in Vault). Backing off a little more each time lets a crowd of
        // writers to one path through instead of failing the unlucky ones.
        let attempts = 64
        for attempt in 0..<attempts {
            if attempt > 0 { try await Task.sleep(for: .microseconds(Int.random(in: 0...(200 * min(attempt, 20))))) }
            var physical: [StorageOperation] = []
            for operation in operations {
                switch operation {
                case .put(let path, let value):
                    let current = try await storage.version(of: path)
                    let ciphertext = try encrypt(value, path: path, version: current + 1)
                    physical.append(.put(StoredEntry(path: path, version: current + 1, value: ciphertext),
                                         expectedVersion: current))
                case .delete(let path):
                    physical.append(.delete(path: path))
                case .deletePrefix(let prefix):
                    physical.append(.deletePrefix(prefix))
                }
            }
            do {
                try await storage.commit(physical)
                invalidate(operations)
                return
            } catch let error as StorageError where error.code == .conflict && attempt < attempts - 1 {
                continue
            } catch {
                // It may have committed before failing: the cache must not keep what it replaced.
                invalidate(operations)
                throw error
            }
        }
    }

    /// Drops from the cache whatever `operations` touched.
    private func invalidate(_ operations: [BarrierOperation]) {
        var paths: [String] = [], prefixes: [String] = []
        for operation in operations {
            switch operation {
            case .put(let path, _), .delete(let path):
                if PlaintextCache.isCacheable(path) { paths.append(path) }
            case .deletePrefix(let prefix):
                if PlaintextCache.prefixes.contains(where: { prefix.hasPrefix($0) || $0.hasPrefix(prefix) }) { prefixes.append(prefix) }
            }
        }
        if !paths.isEmpty || !prefixes.isEmpty { cache.invalidate(paths: paths, prefixes: prefixes) }
    }

    /// The keyring term an entry is encrypted under (nil for an unknown format).
    static func term(of entry: StoredEntry) -> UInt32? {
        guard entry.value.count > 5, entry.value[0] == format else { return nil }
        return entry.value[1..<5].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }

    /// Re-encrypts under the active term the entries after `after` (up to `limit` paths) that
    /// are on an older term; the plaintext only passes through guarded memory. Returns the last
    /// path looked at (nil when the end was reached) and how many entries were re-encrypted.
    /// An entry written concurrently is left alone: its writer used the active term.
    func rewrap(after: String?, limit: Int) async throws -> (last: String?, rewrapped: Int) {
        let paths = try await storage.paths(withPrefix: "", after: after, limit: limit)
        let ring = try currentKeyring()
        var rewrapped = 0
        for path in paths {
            guard let entry = try await storage.get(path), let term = Self.term(of: entry), term < ring.activeTerm else { continue }
            let (key, aad, body) = try openParameters(entry)
            let value: [UInt8]
            if body.count == AEAD.overhead {
                // No plaintext at all (an index entry such as token/parent/…): guarded memory
                // cannot hold zero bytes, and there is nothing in them to guard.
                value = try encrypt(try decrypt(entry), path: path, version: entry.version + 1)
            } else {
                let plain: SecureBytes
                do {
                    plain = try AEAD.openSecure(body, key: key, associatedData: aad)
                } catch {
                    throw BarrierError(.tampered, "entry \(entry.path) v\(entry.version) failed authentication")
                }
                var header: [UInt8] = [Self.format]
                withUnsafeBytes(of: ring.active.number.bigEndian) { header.append(contentsOf: $0) }
                value = header + (try AEAD.seal(
                    secure: plain, key: ring.active.key,
                    associatedData: Self.associatedData(path: path, version: entry.version + 1, header: header)))
                encryptions.withLock { $0[ring.activeTerm, default: 0] += 1 }
            }
            do {
                try await storage.commit([.put(StoredEntry(path: path, version: entry.version + 1, value: value),
                                               expectedVersion: entry.version)])
                rewrapped += 1
            } catch let error as StorageError where error.code == .conflict {
                continue
            }
        }
        return (paths.count < limit ? nil : paths.last, rewrapped)
    }

    /// Up to `limit` stored paths starting with `prefix`, in order, after `after` (for indexes
    /// whose keys sort by time, such as token expiries).
    func paths(withPrefix prefix: String, after: String?, limit: Int) async throws -> [String] {
        _ = try currentKeyring()
        return try await storage.paths(withPrefix: prefix, after: after, limit: limit)
    }

    /// Immediate children of `prefix` (names; folders end in `/`).
    public func list(_ prefix: String) async throws -> [String] {
        _ = try currentKeyring()
        return try await storage.listChildren(of: prefix)
    }
}
