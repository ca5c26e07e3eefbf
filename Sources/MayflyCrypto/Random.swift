import CSodium

/// Cryptographically secure randomness from libsodium.
public enum Random {
    /// `count` random bytes.
    public static func bytes(_ count: Int) -> [UInt8] {
        Sodium.ensureInitialized()
        var bytes = [UInt8](repeating: 0, count: count)
        randombytes_buf(&bytes, count)
        return bytes
    }

    /// A uniform value in 0..<upperBound.
    public static func uniform(_ upperBound: UInt32) -> UInt32 {
        Sodium.ensureInitialized()
        return randombytes_uniform(upperBound)
    }

    /// `count` characters drawn uniformly from `alphabet` (no modulo bias).
    public static func string(count: Int, alphabet: [Character]) -> String {
        precondition(!alphabet.isEmpty)
        return String((0..<count).map { _ in alphabet[Int(uniform(UInt32(alphabet.count)))] })
    }
}
