import CSodium
import Synchronization

/// Key material in guarded memory from `sodium_malloc` (guard pages, canary), zeroed and
/// freed by `wipe()` or on deinit. Never printed.
///
/// `@unchecked Sendable`: the pointer (kept as its address, 0 once wiped) is only used while
/// `state`'s mutex is held, and is cleared in the same critical section that frees it, so no
/// caller can observe a freed pointer.
public final class SecureBytes: @unchecked Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    private let state: Mutex<UInt>
    /// Size in bytes.
    public let count: Int

    /// `count` zero bytes.
    public init(count: Int) {
        Sodium.ensureInitialized()
        precondition(count > 0, "SecureBytes needs at least one byte")
        guard let pointer = sodium_malloc(count) else { fatalError("sodium_malloc failed: out of memory") }
        sodium_memzero(pointer, count)
        self.count = count
        state = Mutex(UInt(bitPattern: pointer))
        GuardedMemory.allocated(count)
    }

    /// A copy of `bytes`; the caller wipes its own copy.
    public convenience init(copying bytes: some Collection<UInt8>) {
        self.init(count: max(1, bytes.count))
        let array = Array(bytes)
        state.withLock { address in
            array.withUnsafeBytes { source in
                if let base = source.baseAddress {
                    UnsafeMutableRawPointer(bitPattern: address)!.copyMemory(from: base, byteCount: array.count)
                }
            }
        }
    }

    /// `count` random bytes.
    public static func random(count: Int) -> SecureBytes {
        let bytes = SecureBytes(count: count)
        bytes.state.withLock { randombytes_buf(UnsafeMutableRawPointer(bitPattern: $0)!, count) }
        return bytes
    }

    /// True once wiped.
    public var isWiped: Bool { state.withLock { $0 == 0 } }

    /// Runs `body` with read access to the bytes.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let count = self.count
        return try state.withLock { address in
            guard let pointer = UnsafeRawPointer(bitPattern: address) else { throw CryptoError(.wiped) }
            return try body(UnsafeRawBufferPointer(start: pointer, count: count))
        }
    }

    /// Runs `body` with write access to the bytes (to fill freshly allocated key material).
    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        let count = self.count
        return try state.withLock { address in
            guard let pointer = UnsafeMutableRawPointer(bitPattern: address) else { throw CryptoError(.wiped) }
            return try body(UnsafeMutableRawBufferPointer(start: pointer, count: count))
        }
    }

    /// A plain copy, for serialising into an encrypted blob only.
    public func copyBytes() throws -> [UInt8] {
        try withUnsafeBytes { Array($0) }
    }

    /// Runs `body` with a plain copy of the bytes (for an API that takes an array, such as a TLS
    /// library reading a key), zeroed when `body` returns. `body` must not keep the array.
    public func withPlainCopy<R>(_ body: ([UInt8]) throws -> R) throws -> R {
        var copy = try copyBytes()
        defer { Self.zero(&copy) }
        return try body(copy)
    }

    /// Zeroes `bytes` in place (a plain copy of key material, done with).
    public static func zero(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { sodium_memzero($0.baseAddress, $0.count) }
    }

    /// Zeroes and frees the memory; idempotent.
    public func wipe() {
        let count = self.count
        let freed = state.withLock { address -> Bool in
            guard let current = UnsafeMutableRawPointer(bitPattern: address) else { return false }
            sodium_memzero(current, count)
            sodium_free(current)
            address = 0
            return true
        }
        if freed { GuardedMemory.released(count) }
    }

    deinit { wipe() }

    public var description: String { "SecureBytes(\(count) bytes)" }
    public var debugDescription: String { description }
}
