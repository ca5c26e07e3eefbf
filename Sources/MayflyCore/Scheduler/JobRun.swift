/// One run of a scheduled job, as the history keeps it (no secrets).
public struct JobRun: Codable, Sendable, Equatable {
    public var job: String
    /// `schedule`, `catch-up` (the first run after missed ones) or `manual`.
    public var trigger: String
    /// Unix seconds (fractional) by the scheduler's clock.
    public var start: Double
    public var end: Double
    /// `ok` or `failed`.
    public var outcome: String
    public var error: String?
    public var detail: String?
}

/// What the scheduler remembers about a job between runs.
struct JobState: Codable, Sendable {
    /// Unix seconds of the last run's scheduled time (or start, for catch-up and manual runs).
    var lastRun: Int64
    var lastOutcome: String?
    var lastError: String?
    var lastEnd: Double?
    /// Failed runs in a row, and when the next attempt may start (capped backoff).
    var failures: Int?
    var retryAt: Int64?
}
