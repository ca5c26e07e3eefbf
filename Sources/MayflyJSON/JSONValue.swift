import Foundation

/// A JSON value as it travels through requests and responses. Integers stay integers, so
/// TTLs and versions are emitted as JSON integers, as Vault clients require.
public enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// Parses JSON bytes; throws `JSONParseError` when malformed or nested too deep.
    public static func parse(_ bytes: some Collection<UInt8>) throws -> JSONValue {
        try JSONReader.parse(Array(bytes), maximumDepth: maximumDepth)
    }

    /// Deepest nesting a request body may have (no Vault request nests more than a few levels).
    public static let maximumDepth = 64

    /// Compact JSON with sorted keys.
    public func encoded() -> [UInt8] {
        JSONWriter.encode(self)
    }

    /// Appends `encoded()` to `out` (for a line put together from parts).
    public func encode(into out: inout [UInt8]) {
        JSONWriter.write(self, into: &out)
    }

    /// Appends `encoded()` to `out` with every string value (not object keys) written by
    /// `string` instead, e.g. replaced by its keyed hash, without building a second value.
    public func encode(into out: inout [UInt8], string: (String, inout [UInt8]) -> Void) {
        JSONWriter.write(self, into: &out, string: string)
    }

    /// Appends `text` as a JSON string to `out`.
    public static func encode(string text: String, into out: inout [UInt8]) {
        JSONWriter.string(text, into: &out)
    }

    public var stringValue: String? { if case .string(let v) = self { v } else { nil } }
    public var boolValue: Bool? { if case .bool(let v) = self { v } else { nil } }

    public var objectValue: [String: JSONValue]? { if case .object(let v) = self { v } else { nil } }
    public var arrayValue: [JSONValue]? { if case .array(let v) = self { v } else { nil } }
    public var isNull: Bool { self == .null }

    /// Integer value of an integer, or of a double with no fraction.
    public var intValue: Int64? {
        switch self {
        case .int(let v): v
        case .double(let v) where v.rounded() == v && abs(v) < 9e15: Int64(v)
        default: nil
        }
    }

    /// Numeric value of a number (integer or not).
    public var doubleValue: Double? {
        switch self {
        case .int(let v): Double(v)
        case .double(let v): v
        default: nil
        }
    }

    /// Name of the JSON type, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "bool"
        case .int, .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    public subscript(key: String) -> JSONValue? { objectValue?[key] }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { $1 }))
    }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue {
    /// `.string` or `.null`.
    public static func string(_ value: String?) -> JSONValue { value.map { .string($0) } ?? .null }
    /// `.array` of strings.
    public static func strings(_ values: [String]) -> JSONValue { .array(values.map { .string($0) }) }
}
