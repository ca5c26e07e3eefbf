/// One encrypted value at a path, as the storage layer sees it: opaque bytes.
public struct StoredEntry: Sendable, Equatable {
    /// The entry's path, e.g. `kv/secret/data/app/db/3`.
    public var path: String
    /// Count of writes to this path (starts at 1); bound into the ciphertext by the barrier.
    public var version: Int64
    /// The ciphertext.
    public var value: [UInt8]

    public init(path: String, version: Int64, value: [UInt8]) {
        self.path = path
        self.version = version
        self.value = value
    }
}

/// One change in an atomic `Storage.commit`.
public enum StorageOperation: Sendable, Equatable {
    /// Writes `entry`. With `expectedVersion`, the commit fails with `StorageError.conflict`
    /// unless the stored version equals it (0 means "must not exist").
    case put(StoredEntry, expectedVersion: Int64?)
    /// Removes the entry at `path` if present.
    case delete(path: String)
    /// Removes every entry whose path starts with `prefix`.
    case deletePrefix(String)
}

/// The physical store under the barrier. Implementations hold ciphertext only and must make
/// `commit` atomic and durable before returning (an acknowledged write survives a crash).
public protocol Storage: Sendable {
    /// The entry at `path`, or nil.
    func get(_ path: String) async throws -> StoredEntry?
    /// The stored version of `path`, 0 when absent.
    func version(of path: String) async throws -> Int64
    /// Applies all operations atomically, or none.
    func commit(_ operations: [StorageOperation]) async throws
    /// The immediate children of `prefix` (which ends in `/` or is empty), sorted: a child
    /// with entries below it is returned as `name/`; a child that is itself an entry as `name`.
    func listChildren(of prefix: String) async throws -> [String]
    /// Up to `limit` paths that start with `prefix`, sorted, strictly after `after` when given.
    func paths(withPrefix prefix: String, after: String?, limit: Int) async throws -> [String]
    /// A plaintext value that must be readable while sealed (seal configuration, wrapped root key).
    func systemValue(_ name: String) async throws -> [UInt8]?
    /// Sets or (with nil) removes a system value.
    func setSystemValue(_ name: String, _ value: [UInt8]?) async throws
    /// The names of the system values set, sorted (a store migration copies them all).
    func systemValueNames() async throws -> [String]
}

/// The immediate children of `prefix`, found by a skip-scan over sorted paths: `first(atOrAfter:)`
/// returns the first stored path at or after a cursor. After a child folder `name/`, the scan
/// seeks straight past its subtree (`name0`: '0' is the byte after '/'), so a folder costs one
/// seek however much it holds. Both stores list children this way.
func childListing(of prefix: String, first: (String) throws -> String?) rethrows -> [String] {
    var children: [String] = []
    var cursor = prefix
    while let path = try first(cursor), path.hasPrefix(prefix) {
        let rest = path.dropFirst(prefix.count)
        if let slash = rest.firstIndex(of: "/") {
            let name = String(rest[..<slash])
            children.append(name + "/")
            cursor = prefix + name + "0"
        } else {
            children.append(String(rest))
            cursor = path + "\u{1}"
        }
    }
    // A name can be both an entry and a folder; keep each form once, sorted.
    return Array(Set(children)).sorted()
}
