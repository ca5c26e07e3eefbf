public import Foundation

/// Where the scheduler (and what it runs) reads the time, so tests can drive it.
public protocol SchedulerClock: Sendable {
    func now() -> Date
}

extension SchedulerClock {
    /// Whole Unix seconds.
    func seconds() -> Int64 { Int64(now().timeIntervalSince1970.rounded(.down)) }
}

/// The system's wall clock.
public struct SystemClock: SchedulerClock {
    public init() {}
    public func now() -> Date { Date() }
}
