/// Why the server could not start. Messages name the file or setting at fault.
public struct ServerError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
