import Foundation
public import Logging

extension Logger {
    /// The logger tests hand to the broker: warnings and worse, unless `MAYFLY_TEST_LOG`
    /// names another level (`MAYFLY_TEST_LOG=trace scripts/test --filter X`), so that a
    /// failure is not buried under thousands of "credential issued" lines.
    public static func test(_ label: String = "test") -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = ProcessInfo.processInfo.environment["MAYFLY_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        return logger
    }
}
