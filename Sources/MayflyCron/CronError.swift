/// Why a cron expression, duration or time zone was refused; the message names the field.
public struct CronError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, e.g. `minute field "61": value 61 out of range 0-59`.
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
