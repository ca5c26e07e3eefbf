/// Why a cron expression or time zone was refused; the message names the field.
public struct CronError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
