import Foundation

/// Runs blocking work (waiting for a child process, reading a pipe to its end) on a thread of
/// its own. Swift's cooperative pool has as many threads as cores (two here), and every test
/// in the process shares it: one blocking wait there stalls all of them, and a test polling a
/// server with a deadline then fails for time it never got to run.
public enum OwnThread {
    /// `body`'s result, computed on a new thread.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }
}
