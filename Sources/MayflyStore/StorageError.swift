/// A storage failure. `description` is generic; `debugDescription` carries the detail
/// (never a value: the storage layer only sees ciphertext, but paths stay out of `description` too).
public struct StorageError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What went wrong, extensible without breaking callers.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable { case conflict, unavailable, corrupt, migration, fenced }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// A conditional put found another version than expected.
        public static let conflict = Code(.conflict)
        /// The store cannot be opened, read or written (I/O error, disk full, locked).
        public static let unavailable = Code(.unavailable)
        /// The stored data is not what this version of Mayfly expects.
        public static let corrupt = Code(.corrupt)
        /// The schema could not be brought up to date.
        public static let migration = Code(.migration)
        /// A shared store refused a write: this node does not hold the leader lock (any more),
        /// or holds an older term than the lock's.
        public static let fenced = Code(.fenced)
        public var description: String { base.rawValue }
    }

    public let code: Code
    let detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "storage error: \(code)" }
    public var debugDescription: String { "storage error: \(code): \(detail)" }
}
