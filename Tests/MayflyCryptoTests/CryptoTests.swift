import Foundation
@testable import MayflyCrypto
import Testing

@Suite struct AEADTests {
    @Test func roundTripAndEmptyPlaintext() throws {
        let key = SecureBytes.random(count: AEAD.keyLength)
        let aad = Array("path/1".utf8)
        for message in [[], Array("hello".utf8), Random.bytes(4096)] {
            let sealed = try AEAD.seal(message, key: key, associatedData: aad)
            #expect(sealed.count == message.count + 24 + 16)
            #expect(try AEAD.open(sealed, key: key, associatedData: aad) == message)
        }
        let secure = try AEAD.openSecure(try AEAD.seal(Array("k".utf8), key: key, associatedData: aad), key: key, associatedData: aad)
        #expect(try secure.copyBytes() == Array("k".utf8))
    }

    @Test func everyFlippedByteFails() throws {
        let key = SecureBytes.random(count: AEAD.keyLength)
        let sealed = try AEAD.seal(Array("secret".utf8), key: key, associatedData: [1])
        for index in sealed.indices {
            var tampered = sealed
            tampered[index] ^= 0x80
            #expect(throws: CryptoError(.decryptionFailed)) { _ = try AEAD.open(tampered, key: key, associatedData: [1]) }
        }
    }

    @Test func wrongKeyWrongAADAndTruncationFail() throws {
        let key = SecureBytes.random(count: AEAD.keyLength)
        let sealed = try AEAD.seal(Array("secret".utf8), key: key, associatedData: [1])
        #expect(throws: CryptoError.self) { _ = try AEAD.open(sealed, key: SecureBytes.random(count: 32), associatedData: [1]) }
        #expect(throws: CryptoError.self) { _ = try AEAD.open(sealed, key: key, associatedData: [2]) }
        #expect(throws: CryptoError.self) { _ = try AEAD.open(sealed.dropLast(), key: key, associatedData: [1]) }
        #expect(throws: CryptoError.self) { _ = try AEAD.open([UInt8](repeating: 0, count: 10), key: key, associatedData: [1]) }
        #expect(throws: CryptoError.self) { _ = try AEAD.seal([1], key: SecureBytes.random(count: 16), associatedData: []) }
    }
}

@Suite struct ShamirTests {
    @Test(arguments: [(2, 2), (3, 2), (5, 3), (10, 5), (20, 20)])
    func anyThresholdSubsetRecovers(parts: Int, threshold: Int) throws {
        let secret = SecureBytes.random(count: 32)
        let shares = try Shamir.split(secret: secret, parts: parts, threshold: threshold)
        #expect(shares.count == parts)
        #expect(shares.allSatisfy { $0.count == 33 && $0.last != 0 })
        #expect(Set(shares.map { $0.last! }).count == parts, "x coordinates are distinct")
        for offset in 0..<min(parts, 4) {
            let subset = (0..<threshold).map { shares[($0 + offset) % parts] }
            #expect(try Shamir.combine(subset).copyBytes() == secret.copyBytes())
        }
        if threshold > 2 {
            let tooFew = Array(shares.prefix(threshold - 1))
            #expect(try Shamir.combine(tooFew).copyBytes() != secret.copyBytes())
        }
    }

    /// Shares built by hand from f(x) = 0x42 + 0x01·x in GF(2^8): f(1) = 0x43, f(2) = 0x40.
    @Test func knownAnswerInTheAESField() throws {
        #expect(try Shamir.combine([[0x43, 1], [0x40, 2]]).copyBytes() == [0x42])
        // f(x) = 0x42 + 0x03·x: f(2) = 0x42 ^ (0x03·0x02 = 0x06) = 0x44; f(0x80) = 0x42 ^ (0x03·0x80 = 0x9b) = 0xd9.
        #expect(try Shamir.combine([[0x44, 2], [0xd9, 0x80]]).copyBytes() == [0x42])
    }

    @Test func malformedSharesAreRejected() throws {
        let shares = try Shamir.split(secret: SecureBytes.random(count: 16), parts: 3, threshold: 2)
        #expect(throws: CryptoError.self) { _ = try Shamir.combine([shares[0]]) }
        #expect(throws: CryptoError.self) { _ = try Shamir.combine([shares[0], shares[0]]) }
        #expect(throws: CryptoError.self) { _ = try Shamir.combine([shares[0], Array(shares[1].dropFirst())]) }
        #expect(throws: CryptoError.self) { _ = try Shamir.combine([[1, 0], [2, 1]]) }
        #expect(throws: CryptoError.self) { _ = try Shamir.split(secret: SecureBytes.random(count: 4), parts: 3, threshold: 4) }
        #expect(throws: CryptoError.self) { _ = try Shamir.split(secret: SecureBytes.random(count: 4), parts: 256, threshold: 2) }
    }
}

@Suite struct SecureBytesTests {
    @Test func wipeFreesAndForbidsAccess() throws {
        let bytes = SecureBytes.random(count: 32)
        #expect(!bytes.isWiped)
        #expect(try bytes.copyBytes() != [UInt8](repeating: 0, count: 32))
        bytes.wipe()
        #expect(bytes.isWiped)
        #expect(throws: CryptoError(.wiped)) { _ = try bytes.copyBytes() }
        bytes.wipe()  // idempotent
    }

    @Test func guardedMemoryCountsLiveAllocations() {
        // Other suites allocate concurrently, so measure many of our own allocations.
        let before = GuardedMemory.liveByteCount
        let keys = (0..<64).map { _ in SecureBytes.random(count: 4096) }
        #expect(GuardedMemory.liveByteCount >= before + 64 * 4096 - 32 * 1024)
        keys.forEach { $0.wipe() }
        #expect(GuardedMemory.liveByteCount <= before + 32 * 1024)
    }

    @Test func descriptionNeverShowsContent() throws {
        let bytes = SecureBytes(copying: Array("topsecret".utf8))
        #expect("\(bytes)" == "SecureBytes(9 bytes)")
        #expect(String(reflecting: bytes) == "SecureBytes(9 bytes)")
        #expect(!"\(CryptoError(.decryptionFailed))".contains("topsecret"))
    }
}

@Suite struct HashingAndEncodingTests {
    @Test func hmacSHA256RFC4231() {
        let key1 = [UInt8](repeating: 0x0b, count: 20)
        #expect(Hex.encode(KeyedHash.hmacSHA256(key: key1, Array("Hi There".utf8)))
                == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(Hex.encode(KeyedHash.hmacSHA256(key: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        let secure = SecureBytes(copying: key1)
        let fromSecure = try? KeyedHash.hmacSHA256(key: secure, Array("Hi There".utf8))
        #expect(fromSecure == KeyedHash.hmacSHA256(key: key1, Array("Hi There".utf8)))
    }

    /// A stream fed in parts hashes what SHA-256 of the whole gives; a copy forks it (the audit
    /// file hashes a line's body outside its lock and the tail under it).
    @Test func aSHA256StreamMatchesTheWholeAndACopyForks() {
        let body = (0..<1000).map { UInt8($0 & 0xff) }, tailA = Array("A tail".utf8), tailB = Array("B".utf8)
        var stream = SHA256Stream()
        stream.update(Array(body[..<3]))
        stream.update(Array(body[3...]))
        var forkA = stream, forkB = stream
        forkA.update(tailA)
        forkB.update(tailB)
        #expect(stream.digest() == KeyedHash.sha256(body))
        #expect(forkA.digest() == KeyedHash.sha256(body + tailA) && forkB.digest() == KeyedHash.sha256(body + tailB))
        #expect(forkA.digest() == forkA.digest(), "digest leaves the stream as it was")
        #expect(Hex.encode(SHA256Stream().digest()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    /// An `HMACKey` (the state after the key blocks) gives the same MACs as a fresh HMAC, for
    /// every message length around the block size, reused many times; wiped, it MACs nothing.
    @Test func anHMACKeyMatchesAFreshHMACAndMACsNothingOnceWiped() throws {
        let long = [UInt8](repeating: 0xaa, count: 131)  // RFC 4231 case 6: a key longer than a block
        let rfc = try HMACKey(key: SecureBytes(copying: long))
        #expect(Hex.encode(try rfc.mac(Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)))
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        let raw = (0..<32).map { UInt8($0 * 7 & 0xff) }
        let key = try HMACKey(key: SecureBytes(copying: raw))
        for length in [0, 1, 55, 56, 63, 64, 65, 127, 128, 1000] {
            let message = (0..<length).map { UInt8(($0 * 31 + length) & 0xff) }
            #expect(try key.mac(message) == KeyedHash.hmacSHA256(key: raw, message), "length \(length)")
            #expect(try key.mac(message) == KeyedHash.hmacSHA256(key: raw, message), "length \(length), again")
        }
        key.wipe()
        #expect(key.isWiped)
        #expect(throws: CryptoError.self) { try key.mac([1, 2, 3]) }
        #expect("\(key)" == "HMACKey")
    }

    @Test func sha256AndPBKDF2() {
        #expect(Hex.encode(KeyedHash.sha256(Array("abc".utf8)))
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Hex.encode(KeyedHash.pbkdf2SHA256(password: Array("passwd".utf8), salt: Array("salt".utf8), iterations: 1, length: 64))
                == "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783")
    }

    @Test func hexAndBase64() {
        let bytes = Random.bytes(33)
        #expect(Hex.decode(Hex.encode(bytes)) == bytes)
        #expect(Hex.decode("ABcd") == [0xab, 0xcd])
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
        #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        #expect(Base64.encode(Array("hi".utf8)) == "aGk=")
        #expect(Base64.decode("aGk") == Array("hi".utf8))
        #expect(Base64.decode("a$b=") == nil)
        #expect(Base64.decode("") == nil)
        #expect(Base64.encodeURLSafeNoPadding([0xfb, 0xff]) == "-_8")
    }

    @Test func constantTimeEqualsAndRandomStrings() {
        #expect(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2, 4]))
        #expect(!ConstantTime.equals([1, 2], [1, 2, 3]))
        let alphabet = Array("ab")
        let text = Random.string(count: 200, alphabet: alphabet)
        #expect(text.count == 200 && Set(text) == ["a", "b"])
        #expect(Random.bytes(16) != Random.bytes(16))
    }

    /// Request IDs, AppRole IDs: version-4 UUIDs in lower case, as Foundation's would read.
    @Test func randomUUIDsAreVersion4InLowerCase() throws {
        let ids = (0..<1000).map { _ in Random.uuid() }
        #expect(Set(ids).count == ids.count)
        for id in ids.prefix(50) {
            let parsed = try #require(UUID(uuidString: id), "\(id)")
            #expect(parsed.uuidString.lowercased() == id)
            let groups = id.split(separator: "-").map(\.count)
            #expect(groups == [8, 4, 4, 4, 12])
            let bytes = withUnsafeBytes(of: parsed.uuid) { Array($0) }
            #expect(bytes[6] >> 4 == 4, "version 4")
            #expect(bytes[8] >> 6 == 0b10, "RFC 4122 variant")
        }
    }

    /// A plain copy of key material for an API that takes an array is zeroed once done with.
    @Test func aPlainCopyOfSecureBytesIsZeroedAfterUse() throws {
        let secret = SecureBytes(copying: Array("-----BEGIN PRIVATE KEY-----".utf8))
        let seen = try secret.withPlainCopy { String(decoding: $0, as: UTF8.self) }
        #expect(seen == "-----BEGIN PRIVATE KEY-----")
        var plain = try secret.copyBytes()
        SecureBytes.zero(&plain)
        #expect(plain == [UInt8](repeating: 0, count: secret.count))
        secret.wipe()
        #expect(throws: CryptoError.self) { try secret.withPlainCopy { _ in () } }
    }
}
