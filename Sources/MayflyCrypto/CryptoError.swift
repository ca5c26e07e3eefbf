/// A cryptographic failure. `description` names only the kind of failure; no key or
/// plaintext byte ever appears in either description.
public struct CryptoError: Error, Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What failed, extensible without breaking callers.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case decryptionFailed, wiped, invalidShares, invalidParameters, invalidKeyLength, outOfMemory
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// Authentication failed: wrong key, wrong associated data, or tampered input.
        public static let decryptionFailed = Code(.decryptionFailed)
        /// The key material was already wiped.
        public static let wiped = Code(.wiped)
        /// Shamir shares are missing, malformed or inconsistent.
        public static let invalidShares = Code(.invalidShares)
        /// A parameter is out of range.
        public static let invalidParameters = Code(.invalidParameters)
        /// A key has the wrong length.
        public static let invalidKeyLength = Code(.invalidKeyLength)
        /// Guarded memory could not be allocated.
        public static let outOfMemory = Code(.outOfMemory)
        public var description: String { base.rawValue }
    }

    public let code: Code
    let detail: String

    init(_ code: Code, _ detail: String = "") {
        self.code = code
        self.detail = detail
    }

    public static func == (lhs: CryptoError, rhs: CryptoError) -> Bool { lhs.code == rhs.code }

    public var description: String { "crypto error: \(code)" }
    public var debugDescription: String { detail.isEmpty ? description : "crypto error: \(code): \(detail)" }
}
