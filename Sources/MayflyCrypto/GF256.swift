/// Arithmetic in GF(2^8) with the AES polynomial x^8+x^4+x^3+x+1 (0x11b), as Vault's Shamir
/// uses. Multiplication runs in constant time (no tables, no data-dependent branches).
enum GF256 {
    static func add(_ a: UInt8, _ b: UInt8) -> UInt8 { a ^ b }

    static func multiply(_ a: UInt8, _ b: UInt8) -> UInt8 {
        var a = a, b = b, product: UInt8 = 0
        for _ in 0..<8 {
            product ^= a & (0 &- (b & 1))
            let carry = 0 &- (a >> 7)
            a = (a << 1) ^ (0x1b & carry)
            b >>= 1
        }
        return product
    }

    /// a^254 = a^-1 (and 0 for 0).
    static func inverse(_ a: UInt8) -> UInt8 {
        var result: UInt8 = 1, base = a, exponent = 254
        while exponent > 0 {
            if exponent & 1 == 1 { result = multiply(result, base) }
            base = multiply(base, base)
            exponent >>= 1
        }
        return result
    }

    static func divide(_ a: UInt8, _ b: UInt8) -> UInt8 { multiply(a, inverse(b)) }
}
