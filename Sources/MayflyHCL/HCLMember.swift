/// One `key = value` (or block) with the line where its key starts.
public struct HCLMember: Sendable, Equatable {
    public var key: String
    public var value: HCLValue
    /// 1-based line of the key.
    public var line: Int

    public init(key: String, value: HCLValue, line: Int) {
        self.key = key
        self.value = value
        self.line = line
    }
}
