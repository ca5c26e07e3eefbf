public import Foundation

/// Where the core reads the wall-clock time: one clock, given to every part by the broker,
/// so that TTLs, expiry, schedules and incidents can run on a test clock (`ManualClock`).
public protocol WallClock: Sendable {
    func now() -> Date

    /// Waits `seconds` of this clock's time (the system clock: really; a test clock: its time
    /// moves on by that much at once).
    func sleep(seconds: Double) async
}

extension WallClock {
    /// Whole Unix seconds.
    func seconds() -> Int64 { Int64(now().timeIntervalSince1970.rounded(.down)) }
}

/// The system's wall clock.
public struct SystemClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(seconds: Double) async {
        try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
    }
}
