import CMayflyShims
import Foundation

/// A minimal blocking HTTP/1.1 client on one keep-alive Unix-socket connection: cheap enough
/// that the load generator does not steal the CPU it is measuring. Not thread-safe; each
/// load thread owns one (hence `@unchecked Sendable`: handed to exactly one thread).
final class UnixHTTPClient: @unchecked Sendable {
    struct Response {
        var status: Int
        var body: Data
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let fd: Int32
    private var buffer: [UInt8] = []

    init(socketPath: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        let result = mayfly_unix_connect(fd, socketPath)
        if result == ENAMETOOLONG {
            close(fd)
            throw Failure(description: "socket path too long: \(socketPath)")
        }
        guard result == 0 else {
            let message = String(cString: strerror(result))
            close(fd)
            throw Failure(description: "connect \(socketPath): \(message)")
        }
    }

    deinit { close(fd) }

    func request(_ method: String, _ path: String, token: String?, body: String? = nil) throws -> Response {
        var head = "\(method) /v1/\(path) HTTP/1.1\r\nHost: mayfly\r\n"
        if let token { head += "X-Vault-Token: \(token)\r\n" }
        let payload = Array((body ?? "").utf8)
        if body != nil { head += "Content-Type: application/json\r\n" }
        head += "Content-Length: \(payload.count)\r\n\r\n"
        try send(Array(head.utf8) + payload)
        return try readResponse()
    }

    private func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written > 0 else { throw Failure(description: "write: \(String(cString: strerror(errno)))") }
            offset += written
        }
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 16_384)
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { throw Failure(description: "connection closed by the server") }
        buffer += chunk[0..<count]
    }

    private func readResponse() throws -> Response {
        let separator: [UInt8] = [13, 10, 13, 10]
        var headerEnd: Int?
        while headerEnd == nil {
            if buffer.count >= 4 {
                for index in 0...(buffer.count - 4) where buffer[index..<index + 4].elementsEqual(separator) {
                    headerEnd = index
                    break
                }
            }
            if headerEnd == nil { try fill() }
        }
        let head = String(decoding: buffer[0..<headerEnd!], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        guard let statusLine = lines.first, let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "")
        else { throw Failure(description: "malformed response: \(head.prefix(80))") }
        var length = 0
        for line in lines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "content-length" {
                length = Int(parts[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
        }
        let start = headerEnd! + 4
        while buffer.count < start + length { try fill() }
        let body = Data(buffer[start..<start + length])
        buffer.removeFirst(start + length)
        return Response(status: status, body: body)
    }
}
