/// A JSON parser from bytes to `JSONValue`, written for the hot path (request bodies, stored
/// records): one pass, no Foundation, no exceptions thrown and caught per value. Integers that
/// fit in 64 bits stay integers (as do numbers such as `1.0` or `1e2` that are whole); strings
/// must be valid UTF-8 without raw control characters; nesting is bounded.
struct JSONReader {
    private let bytes: [UInt8]
    private var index = 0
    private var depth = 0

    /// The error every malformed input gets (the detail is not the client's business).
    static let malformed = JSONParseError("failed to parse JSON input: malformed request body")

    /// Parses one JSON value filling all of `bytes` (surrounding whitespace allowed).
    static func parse(_ bytes: [UInt8], maximumDepth: Int) throws -> JSONValue {
        var reader = JSONReader(bytes: bytes)
        reader.skipWhitespace()
        let value = try reader.value(maximumDepth: maximumDepth)
        reader.skipWhitespace()
        guard reader.index == bytes.count else { throw malformed }
        return value
    }

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    private mutating func value(maximumDepth: Int) throws -> JSONValue {
        guard index < bytes.count else { throw Self.malformed }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            try enter(maximumDepth)
            defer { depth -= 1 }
            var members: [String: JSONValue] = [:]
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw Self.malformed }
                let key = try string()
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw Self.malformed }
                index += 1
                skipWhitespace()
                // A repeated key keeps its first value, as Foundation's decoder did.
                let parsed = try value(maximumDepth: maximumDepth)
                if members[key] == nil { members[key] = parsed }
                skipWhitespace()
                guard index < bytes.count else { throw Self.malformed }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard bytes[index] == UInt8(ascii: "}") else { throw Self.malformed }
                index += 1
                return .object(members)
            }
        case UInt8(ascii: "["):
            try enter(maximumDepth)
            defer { depth -= 1 }
            var items: [JSONValue] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(items)
            }
            while true {
                skipWhitespace()
                items.append(try value(maximumDepth: maximumDepth))
                skipWhitespace()
                guard index < bytes.count else { throw Self.malformed }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard bytes[index] == UInt8(ascii: "]") else { throw Self.malformed }
                index += 1
                return .array(items)
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        default:
            return try number()
        }
    }

    /// Steps into an object or array (past its opening bracket), one level deeper.
    private mutating func enter(_ maximumDepth: Int) throws {
        depth += 1
        guard depth <= maximumDepth else {
            throw JSONParseError("failed to parse JSON input: nested more than \(maximumDepth) levels deep")
        }
        index += 1
    }

    private mutating func literal(_ word: StaticString) throws {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw Self.malformed }
        let matches = word.withUTF8Buffer { expected in
            (0..<count).allSatisfy { bytes[index + $0] == expected[$0] }
        }
        guard matches else { throw Self.malformed }
        index += count
    }

    private mutating func number() throws -> JSONValue {
        let start = index
        var integral = true
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        let digitsStart = index
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        let intDigits = index - digitsStart
        guard intDigits > 0 else { throw Self.malformed }
        // No leading zeros ("01"), as JSON says.
        guard intDigits == 1 || bytes[digitsStart] != UInt8(ascii: "0") else { throw Self.malformed }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            integral = false
            index += 1
            let fraction = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            guard index > fraction else { throw Self.malformed }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            integral = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            let exponent = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            guard index > exponent else { throw Self.malformed }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if integral, let value = Int64(text) { return .int(value) }
        guard let double = Double(text), double.isFinite else { throw Self.malformed }
        if double.rounded() == double, abs(double) < 9.2e18 { return .int(Int64(double)) }
        return .double(double)
    }

    /// A string starting at the opening quote; leaves `index` after the closing quote.
    private mutating func string() throws -> String {
        index += 1
        let start = index
        // Fast path: no escapes.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let text = try Self.utf8(bytes[start..<index])
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            guard byte >= 0x20 else { throw Self.malformed }
            index += 1
        }
        var decoded = Array(bytes[start..<index])
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return try Self.utf8(decoded[...])
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { throw Self.malformed }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): decoded.append(0x22)
                case UInt8(ascii: "\\"): decoded.append(0x5C)
                case UInt8(ascii: "/"): decoded.append(0x2F)
                case UInt8(ascii: "b"): decoded.append(0x08)
                case UInt8(ascii: "f"): decoded.append(0x0C)
                case UInt8(ascii: "n"): decoded.append(0x0A)
                case UInt8(ascii: "r"): decoded.append(0x0D)
                case UInt8(ascii: "t"): decoded.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        // A high surrogate must be followed by an escaped low one.
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                        else { throw Self.malformed }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw Self.malformed }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw Self.malformed
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw Self.malformed }
                    decoded.append(contentsOf: String(Character(unicode)).utf8)
                default:
                    throw Self.malformed
                }
            default:
                guard byte >= 0x20 else { throw Self.malformed }
                decoded.append(byte)
                index += 1
            }
        }
        throw Self.malformed
    }

    private mutating func hex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw Self.malformed }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw Self.malformed
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    /// `bytes` as a string, refusing invalid UTF-8 (never replaced silently).
    private static func utf8(_ bytes: ArraySlice<UInt8>) throws -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw malformed }
        return text
    }
}

/// Why JSON could not be parsed (the message is safe to show the client: it never quotes the
/// input). The broker answers it with a 400.
public struct JSONParseError: Error, CustomStringConvertible, Sendable {
    public let message: String

    init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
