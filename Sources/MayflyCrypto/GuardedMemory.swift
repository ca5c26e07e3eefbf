import Synchronization

/// Process-wide accounting of guarded allocations, so tests can prove that key material is
/// gone (for example after seal).
public enum GuardedMemory {
    private static let counters = Mutex<(count: Int, bytes: Int)>((0, 0))

    /// Number of `SecureBytes` currently allocated and not wiped.
    public static var liveAllocationCount: Int { counters.withLock { $0.count } }
    /// Their total size in bytes.
    public static var liveByteCount: Int { counters.withLock { $0.bytes } }

    static func allocated(_ bytes: Int) { counters.withLock { $0.count += 1; $0.bytes += bytes } }
    static func released(_ bytes: Int) { counters.withLock { $0.count -= 1; $0.bytes -= bytes } }
}
