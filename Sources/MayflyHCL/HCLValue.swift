/// A value in the parsed tree. HCL blocks become nested objects (see `HCL`).
public indirect enum HCLValue: Sendable, Equatable {
    case string(String)
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case null
    case list([HCLValue])
    case object([HCLMember])

    /// The string of a `.string`.
    public var stringValue: String? { if case .string(let v) = self { v } else { nil } }
    /// The integer of an `.int`, or of a `.float` with no fraction.
    public var intValue: Int64? {
        switch self {
        case .int(let v): v
        case .float(let v) where v.rounded() == v && abs(v) < 9e18: Int64(v)
        default: nil
        }
    }
    /// The value of a `.bool`.
    public var boolValue: Bool? { if case .bool(let v) = self { v } else { nil } }
    /// The items of a `.list`.
    public var listValue: [HCLValue]? { if case .list(let v) = self { v } else { nil } }
    /// The members of an `.object`.
    public var objectValue: [HCLMember]? { if case .object(let v) = self { v } else { nil } }
    /// The type's name, for error messages.
    public var typeName: String {
        switch self {
        case .string: "string"
        case .int, .float: "number"
        case .bool: "bool"
        case .null: "null"
        case .list: "list"
        case .object: "object"
        }
    }
}
