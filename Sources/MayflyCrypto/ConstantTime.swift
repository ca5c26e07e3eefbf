import CSodium

/// Comparisons whose time does not depend on where inputs differ.
public enum ConstantTime {
    /// True when equal; false on a length mismatch (lengths are not secret).
    public static func equals(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        let a = Array(a), b = Array(b)
        guard a.count == b.count else { return false }
        guard !a.isEmpty else { return true }
        return sodium_memcmp(a, b, a.count) == 0
    }
}
