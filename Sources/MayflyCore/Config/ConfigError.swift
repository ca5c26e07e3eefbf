/// A configuration problem, naming the file and line. Config files hold no secrets (passwords
/// come from files they point to), so the message is safe to print.
public struct ConfigError: Error, Sendable, CustomStringConvertible, Equatable {
    public var file: String
    /// 1-based line, 0 when the problem is not tied to a line.
    public var line: Int
    public var message: String

    public init(file: String, line: Int, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)"
    }
}
