import MayflyCron

/// Something that runs unattended: a name, a cron schedule and the work.
struct ScheduledJob: Sendable {
    /// `static-role:<name>`, `root-rotation:<database>`, `lease-sweep`, … (no `/`).
    var name: String
    var schedule: CronSchedule
    /// Seconds of random delay added to each fire time (spreads load; 0 in tests).
    var jitter: Int64
    /// Whether every run goes into the history. Frequent housekeeping (sweeps every second)
    /// records only runs that did something or failed.
    var recordEveryRun: Bool
    /// Whether the job's last run is kept in the store (so a restart catches up missed runs).
    /// Frequent housekeeping keeps it in memory only.
    var durable: Bool
    /// When the job last ran, if the job keeps that itself (a static role's last rotation);
    /// nil means the scheduler's own record is used.
    var lastRun: (@Sendable () async throws -> Int64?)?
    /// The work; given the scheduled time, returns a short, secret-free detail (nil: nothing done).
    var action: @Sendable (_ now: Int64) async throws -> String?
}
