public import Foundation
import Synchronization

/// A clock that only moves when told to (tests).
public final class ManualClock: WallClock {
    private let current: Mutex<Date>

    public init(_ start: Date) {
        current = Mutex(start)
    }

    public func now() -> Date { current.withLock { $0 } }

    /// Moves the clock to `date`.
    public func set(_ date: Date) {
        current.withLock { $0 = date }
    }

    /// Moves the clock forward by `seconds`.
    /// Moves the clock on by `seconds` and returns: waiting costs a test no time.
    public func sleep(seconds: Double) async {
        advance(by: seconds)
        await Task.yield()
    }

    public func advance(by seconds: TimeInterval) {
        current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }
}
