import Foundation
import Synchronization

/// Limits login attempts per source (Unix uid or client address) to `limit` per minute, so a
/// secret id or certificate cannot be brute-forced; over the limit the answer is 429 with
/// `Retry-After`. Fixed one-minute windows; memory is bounded by pruning stale sources.
final class LoginRateLimiter: Sendable {
    private struct Window {
        var start: Int64
        var count: Int
    }

    private let limit: Int
    private let windows = Mutex<[String: Window]>([:])
    private static let window: Int64 = 60

    /// `limit` attempts per source per minute; 0 disables the limit.
    private let clock: any WallClock

    init(limit: Int, clock: any WallClock = SystemClock()) {
        self.limit = limit
        self.clock = clock
    }

    /// Counts one attempt from `source`; throws 429 once the source is over its limit.
    func attempt(source: String, now: Int64? = nil) throws {
        guard limit > 0 else { return }
        let now = now ?? clock.seconds()
        let retryAfter: Int64? = windows.withLock { windows in
            if windows.count > 10_000 {
                windows = windows.filter { now - $0.value.start < Self.window }
            }
            var current = windows[source] ?? Window(start: now, count: 0)
            if now - current.start >= Self.window { current = Window(start: now, count: 0) }
            current.count += 1
            windows[source] = current
            return current.count > limit ? max(1, current.start + Self.window - now) : nil
        }
        if let retryAfter {
            throw APIError(status: 429, ["too many login attempts; retry later"], retryAfter: Int(retryAfter))
        }
    }

    /// The source a login attempt is counted against.
    static func source(of request: LogicalRequest) -> String {
        if case .unix(let uid, _, _)? = request.identity { return "uid:\(uid)" }
        return AppRoleEngine.address(request.remoteAddress)
    }
}
