import CSodium

/// Shamir secret sharing over GF(2^8) in Vault's share format: each share is the y values
/// (one per secret byte) followed by its x coordinate, so it is one byte longer than the
/// secret. x coordinates are distinct, random and non-zero.
public enum Shamir {
    /// Splits `secret` into `parts` shares, any `threshold` of which recover it
    /// (2 ≤ threshold ≤ parts ≤ 255).
    public static func split(secret: SecureBytes, parts: Int, threshold: Int) throws -> [[UInt8]] {
        guard (2...255).contains(parts), (2...parts).contains(threshold) else {
            throw CryptoError(.invalidParameters, "need 2 <= threshold <= parts <= 255")
        }
        // Distinct non-zero x coordinates: a random permutation of 1...255, first `parts`.
        var xs = Array(UInt8(1)...UInt8(255))
        for i in stride(from: xs.count - 1, to: 0, by: -1) {
            xs.swapAt(i, Int(Random.uniform(UInt32(i + 1))))
        }
        xs = Array(xs.prefix(parts))
        var shares = xs.map { [UInt8](repeating: 0, count: secret.count) + [$0] }
        var coefficients = [UInt8](repeating: 0, count: threshold - 1)
        defer { sodium_memzero(&coefficients, coefficients.count) }
        try secret.withUnsafeBytes { bytes in
            for (index, intercept) in bytes.enumerated() {
                randombytes_buf(&coefficients, coefficients.count)
                for (s, x) in xs.enumerated() {
                    // Horner: ((c_{t-1} x + c_{t-2}) x + … + c_1) x + intercept
                    var y: UInt8 = 0
                    for c in coefficients.reversed() { y = GF256.add(GF256.multiply(y, x), c) }
                    shares[s][index] = GF256.add(GF256.multiply(y, x), intercept)
                }
            }
        }
        return shares
    }

    /// Recovers the secret from at least two shares of equal length with distinct x. With
    /// fewer shares than the threshold the result is a different, meaningless value.
    public static func combine(_ shares: [[UInt8]]) throws -> SecureBytes {
        guard shares.count >= 2, let length = shares.first?.count, length >= 2,
            shares.allSatisfy({ $0.count == length })
        else { throw CryptoError(.invalidShares, "need at least two shares of equal length") }
        let xs = shares.map { $0[length - 1] }
        guard Set(xs).count == xs.count, !xs.contains(0) else {
            throw CryptoError(.invalidShares, "duplicate or zero x coordinate")
        }
        let secret = SecureBytes(count: length - 1)
        try secret.withUnsafeMutableBytes { out in
            for index in 0..<(length - 1) {
                // Lagrange interpolation at x = 0.
                var value: UInt8 = 0
                for (i, xi) in xs.enumerated() {
                    var basis: UInt8 = 1
                    for (j, xj) in xs.enumerated() where j != i {
                        basis = GF256.multiply(basis, GF256.divide(xj, GF256.add(xj, xi)))
                    }
                    value = GF256.add(value, GF256.multiply(shares[i][index], basis))
                }
                out[index] = value
            }
        }
        return secret
    }
}
