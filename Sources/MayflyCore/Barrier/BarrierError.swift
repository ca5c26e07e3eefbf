/// Why the barrier could not return a value. `description` is generic on purpose.
public struct BarrierError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable { case sealed, tampered, corrupt, unknownTerm }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// No keys in memory.
        public static let sealed = Code(.sealed)
        /// A stored ciphertext failed authentication: flipped bytes, or moved to another path or version.
        public static let tampered = Code(.tampered)
        /// Stored data has an unexpected shape.
        public static let corrupt = Code(.corrupt)
        /// The ciphertext names a keyring term this keyring does not have.
        public static let unknownTerm = Code(.unknownTerm)
        public var description: String { base.rawValue }
    }

    public let code: Code
    let detail: String

    init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    static func corrupt(_ detail: String) -> BarrierError { BarrierError(.corrupt, detail) }

    public var description: String {
        switch code {
        case .tampered: "stored data failed its integrity check"
        case .sealed: "Vault is sealed"
        default: "storage data error: \(code)"
        }
    }
    public var debugDescription: String { "barrier error \(code): \(detail)" }
}
