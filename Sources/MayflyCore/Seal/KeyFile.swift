import Foundation
import MayflyCrypto

/// The key-file seal: a 32-byte unseal key, hex-encoded on one line, in a file only the
/// server can read. Lets a restarted server unseal itself without operators.
enum KeyFile {
    /// Reads the key; errors name the file and what is wrong, never the content.
    static func load(path: String) throws -> SecureBytes {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw APIError(status: 500, ["cannot read the seal key file \(path)"])
        }
        var bytes = [UInt8](data)
        defer { for i in bytes.indices { bytes[i] = 0 } }
        while let last = bytes.last, last == 10 || last == 13 || last == 32 { bytes.removeLast() }
        guard bytes.count == AEAD.keyLength * 2, var raw = Hex.decode(String(decoding: bytes, as: UTF8.self)) else {
            throw APIError(status: 500, ["the seal key file \(path) must hold \(AEAD.keyLength) bytes as \(AEAD.keyLength * 2) hex characters"])
        }
        defer { for i in raw.indices { raw[i] = 0 } }
        return SecureBytes(copying: raw)
    }

    /// Reads the key, or creates the file (mode 0600) with a new random key.
    static func loadOrCreate(path: String) throws -> SecureBytes {
        if FileManager.default.fileExists(atPath: path) { return try load(path: path) }
        let key = SecureBytes.random(count: AEAD.keyLength)
        var hex = Array((Hex.encode(try key.copyBytes()) + "\n").utf8)
        defer { for i in hex.indices { hex[i] = 0 } }
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        }
        guard FileManager.default.createFile(atPath: path, contents: Data(hex), attributes: [.posixPermissions: 0o600])
        else {
            key.wipe()
            throw APIError(status: 500, ["cannot create the seal key file \(path)"])
        }
        return key
    }
}
