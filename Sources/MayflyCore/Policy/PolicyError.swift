/// A policy that cannot be used, with the line of the problem (1-based).
public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public var policy: String
    public var line: Int
    public var message: String

    public init(policy: String, line: Int, _ message: String) {
        self.policy = policy
        self.line = line
        self.message = message
    }

    public var description: String { "policy \"\(policy)\", line \(line): \(message)" }
    public var debugDescription: String { description }
}
