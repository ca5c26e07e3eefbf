import Foundation
import MayflyCrypto

/// The data-encryption keys, one per term. New writes use the active (newest) term; reads
/// pick the key by the term recorded in the ciphertext header, so old terms still decrypt.
/// Key bytes live only in `SecureBytes` and are serialised straight into guarded memory.
final class Keyring: Sendable {
    struct Term: Sendable {
        let number: UInt32
        let key: SecureBytes
        let installTime: Date
    }

    let terms: [UInt32: Term]
    let activeTerm: UInt32

    init(terms: [Term]) {
        self.terms = Dictionary(uniqueKeysWithValues: terms.map { ($0.number, $0) })
        self.activeTerm = terms.map(\.number).max() ?? 0
    }

    /// A keyring with one fresh random term, installed at `now`.
    static func generate(now: Date) -> Keyring {
        Keyring(terms: [Term(number: 1, key: SecureBytes.random(count: AEAD.keyLength), installTime: now)])
    }

    /// This keyring plus a new random term, installed at `now`.
    func rotated(now: Date) -> Keyring {
        let next = Term(number: activeTerm + 1, key: SecureBytes.random(count: AEAD.keyLength), installTime: now)
        return Keyring(terms: Array(terms.values) + [next])
    }

    var active: Term { terms[activeTerm]! }

    /// Wipes every key.
    func wipe() {
        for term in terms.values { term.key.wipe() }
    }

    // Layout: count u32 | per term: number u32, install time (unix seconds) i64, key 32 bytes.
    private static let termSize = 4 + 8 + AEAD.keyLength

    /// The keyring encrypted under `rootKey`.
    func sealed(rootKey: SecureBytes) throws -> [UInt8] {
        let ordered = terms.values.sorted { $0.number < $1.number }
        let plain = SecureBytes(count: 4 + ordered.count * Self.termSize)
        defer { plain.wipe() }
        try plain.withUnsafeMutableBytes { out in
            out.storeBytes(of: UInt32(ordered.count).bigEndian, toByteOffset: 0, as: UInt32.self)
            for (index, term) in ordered.enumerated() {
                let base = 4 + index * Self.termSize
                out.storeBytes(of: term.number.bigEndian, toByteOffset: base, as: UInt32.self)
                out.storeBytes(
                    of: Int64(term.installTime.timeIntervalSince1970).bigEndian, toByteOffset: base + 4, as: Int64.self)
                try term.key.withUnsafeBytes { key in
                    UnsafeMutableRawBufferPointer(rebasing: out[(base + 12)..<(base + Self.termSize)]).copyMemory(from: key)
                }
            }
        }
        return try AEAD.seal(secure: plain, key: rootKey, associatedData: Array("core/keyring".utf8))
    }

    /// Decrypts a keyring sealed with `sealed(rootKey:)`.
    static func open(_ blob: [UInt8], rootKey: SecureBytes) throws -> Keyring {
        let plain = try AEAD.openSecure(blob, key: rootKey, associatedData: Array("core/keyring".utf8))
        defer { plain.wipe() }
        let terms: [Term] = try plain.withUnsafeBytes { raw in
            guard raw.count >= 4 else { throw BarrierError.corrupt("keyring too short") }
            let count = Int(UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
            guard raw.count == 4 + count * termSize, count > 0 else { throw BarrierError.corrupt("keyring length") }
            return (0..<count).map { index in
                let base = 4 + index * termSize
                let number = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: base, as: UInt32.self))
                let time = Int64(bigEndian: raw.loadUnaligned(fromByteOffset: base + 4, as: Int64.self))
                let key = SecureBytes(count: AEAD.keyLength)
                try? key.withUnsafeMutableBytes { out in
                    out.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[(base + 12)..<(base + termSize)]))
                }
                return Term(number: number, key: key, installTime: Date(timeIntervalSince1970: TimeInterval(time)))
            }
        }
        return Keyring(terms: terms)
    }
}
