import Foundation
import Logging
import MayflyCron
import Synchronization

/// Runs every unattended job in one place: rotations on cron schedules, key rotation and
/// re-wrap, lease sweeping, reconcile, incident retries. Each job runs at most once at a time,
/// only on the leader, with jitter; a job that missed runs while the server was down runs
/// once on start (not once per missed run). Every run of a scheduled job is recorded, and the
/// history is pruned by age.
final class Scheduler: Sendable {
    private let barrier: Barrier
    let clock: any WallClock
    private let leadership: any Leadership
    private let logger: Logger
    /// Seconds of history kept.
    let historyRetention: Int64
    private let jobSource: @Sendable () async -> [ScheduledJob]
    private let running = Mutex<Set<String>>([])
    /// State of jobs that are not durable.
    private let memoryStates = Mutex<[String: JobState]>([:])
    /// Jitter drawn for each job's next fire, kept so a job's next time is stable between ticks.
    private let jitters = Mutex<[String: (base: Int64, jitter: Int64)]>([:])
    static let statePrefix = "scheduler/state/"
    static let historyPrefix = "scheduler/history/"

    init(barrier: Barrier, clock: any WallClock, leadership: any Leadership, logger: Logger,
         historyRetention: Int64, jobs: @escaping @Sendable () async -> [ScheduledJob])
    {
        self.barrier = barrier
        self.clock = clock
        self.leadership = leadership
        self.logger = logger
        self.historyRetention = historyRetention
        jobSource = jobs
    }

    // MARK: Records

    private func state(_ name: String, durable: Bool = true) async throws -> JobState? {
        guard durable else { return memoryStates.withLock { $0[name] } }
        guard let bytes = try await barrier.get(Self.statePrefix + name) else { return nil }
        return try JSONDecoder().decode(JobState.self, from: Data(bytes))
    }

    private func save(_ name: String, _ state: JobState, durable: Bool = true) async throws {
        guard durable else { return memoryStates.withLock { $0[name] = state } }
        try await barrier.put(Self.statePrefix + name, try JSONEncoder().encode(state).bytes)
    }

    /// The recorded runs of `name`, oldest first.
    func history(_ name: String) async throws -> [JobRun] {
        var runs: [JobRun] = []
        for key in try await barrier.list(Self.historyPrefix + name + "/") where !key.hasSuffix("/") {
            if let bytes = try await barrier.get(Self.historyPrefix + name + "/" + key) {
                runs.append(try JSONDecoder().decode(JobRun.self, from: Data(bytes)))
            }
        }
        return runs
    }

    private func record(_ run: JobRun) async throws {
        let key = String(format: "%015.0f", run.start * 1000) + "-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        try await barrier.put(Self.historyPrefix + run.job + "/" + key, try JSONEncoder().encode(run).bytes)
    }

    /// Removes history older than the retention; returns how many runs were removed.
    @discardableResult
    func pruneHistory() async throws -> Int {
        let cutoff = Double(clock.seconds() - historyRetention) * 1000
        var removed = 0
        for folder in try await barrier.list(Self.historyPrefix) where folder.hasSuffix("/") {
            var old: [BarrierOperation] = []
            for key in try await barrier.list(Self.historyPrefix + folder) where !key.hasSuffix("/") {
                if let millis = Double(key.prefix { $0 != "-" }), millis < cutoff {
                    old.append(.delete(path: Self.historyPrefix + folder + key))
                }
            }
            if !old.isEmpty { try await barrier.commit(old) }
            removed += old.count
        }
        return removed
    }

    // MARK: Schedule

    /// A job with the time it last ran and when it is due next.
    struct Status: Sendable {
        var job: ScheduledJob
        var lastRun: Int64?
        var next: Int64?
        var state: JobState?

        /// When the job last ran, if it ever did (`lastRun` alone may only anchor the schedule
        /// of a job seen for the first time).
        var lastRan: Int64? { job.lastRun != nil || state?.lastOutcome != nil ? lastRun : nil }
    }

    /// Every job, the scheduler's own history pruning included.
    func jobs() async -> [ScheduledJob] {
        let prune = ScheduledJob(name: "history-prune", schedule: try! CronSchedule("@every 3600s"), jitter: 0,
                                 recordEveryRun: false, durable: false, lastRun: nil) { _ in
            let removed = try await self.pruneHistory()
            return removed > 0 ? "removed \(removed) run(s) older than the retention" : nil
        }
        return await jobSource() + [prune]
    }

    func status(_ job: ScheduledJob) async throws -> Status {
        let state = try await state(job.name, durable: job.durable)
        let last = try await job.lastRun?() ?? state?.lastRun
        guard let last else { return Status(job: job, lastRun: nil, next: nil, state: state) }
        let base = job.schedule.nextFire(after: Date(timeIntervalSince1970: TimeInterval(last)))
            .map { Int64($0.timeIntervalSince1970) }
        return Status(job: job, lastRun: last, next: base.map { $0 + jitter(job, base: $0) }, state: state)
    }

    private func jitter(_ job: ScheduledJob, base: Int64) -> Int64 {
        guard job.jitter > 0 else { return 0 }
        return jitters.withLock { cache in
            if let cached = cache[job.name], cached.base == base { return cached.jitter }
            let value = Int64.random(in: 0...job.jitter)
            cache[job.name] = (base, value)
            return value
        }
    }

    /// The jobs due now. A job seen for the first time starts its schedule from now.
    private func dueJobs() async -> [(ScheduledJob, trigger: String)] {
        guard await leadership.isLeader() else { return [] }
        let now = clock.seconds()
        var due: [(ScheduledJob, String)] = []
        for job in await jobs() {
            do {
                let status = try await status(job)
                guard let next = status.next else {
                    if status.lastRun == nil { try await save(job.name, JobState(lastRun: now), durable: job.durable) }
                    continue
                }
                guard next <= now, (status.state?.retryAt ?? 0) <= now else { continue }
                // Missed more than one run (the server was down): run once, as a catch-up.
                let following = job.schedule.nextFire(after: Date(timeIntervalSince1970: TimeInterval(next)))
                    .map { Int64($0.timeIntervalSince1970) } ?? Int64.max
                due.append((job, following <= now ? "catch-up" : "schedule"))
            } catch {
                logger.warning("cannot check a scheduled job", metadata: ["job": "\(job.name)", "error": "\(String(reflecting: error))"])
            }
        }
        return due
    }

    /// Runs every due job and waits for them (tests drive time with this).
    @discardableResult
    func runDueJobs() async -> [JobRun] {
        let due = await dueJobs()
        return await withTaskGroup(of: JobRun?.self) { group in
            for (job, trigger) in due { group.addTask { await self.execute(job, trigger: trigger) } }
            var runs: [JobRun] = []
            for await run in group { if let run { runs.append(run) } }
            return runs
        }
    }

    /// Starts every due job without waiting (the background loop).
    func startDueJobs() async {
        for (job, trigger) in await dueJobs() {
            Task { await self.execute(job, trigger: trigger) }
        }
    }

    /// Runs `name` now (`mayfly schedule run`), whatever its schedule says.
    func runNow(_ name: String) async throws -> JobRun {
        guard let job = await jobs().first(where: { $0.name == name }) else {
            throw APIError(status: 404, ["no scheduled job \"\(APIError.clip(name))\""])
        }
        guard let run = await execute(job, trigger: "manual") else {
            throw APIError(status: 409, ["job \"\(name)\" is running now; try again when it finishes"])
        }
        return run
    }

    /// Runs `job` unless it is already running (the per-job lock); records the run.
    private func execute(_ job: ScheduledJob, trigger: String) async -> JobRun? {
        guard running.withLock({ $0.insert(job.name).inserted }) else { return nil }
        defer { _ = running.withLock { $0.remove(job.name) } }
        let start = clock.now().timeIntervalSince1970
        let now = Int64(start.rounded(.down))
        var run = JobRun(job: job.name, trigger: trigger, start: start, end: start, outcome: "ok", error: nil, detail: nil)
        do {
            run.detail = try await job.action(now)
        } catch {
            run.outcome = "failed"
            run.error = (error as? APIError)?.messages.first ?? DatabaseEngine.describe(error)
            logger.warning("scheduled job failed", metadata: ["job": "\(job.name)", "error": "\(String(reflecting: error))"])
        }
        run.end = clock.now().timeIntervalSince1970
        do {
            let previous = try await state(job.name, durable: job.durable)
            var state = JobState(lastRun: now, lastOutcome: run.outcome, lastError: run.error, lastEnd: run.end)
            if run.outcome != "ok" {
                // A failed run keeps its place and is tried again after a capped backoff.
                let failures = (previous?.failures ?? 0) + 1
                state.lastRun = previous?.lastRun ?? now
                state.failures = failures
                state.retryAt = now + LeaseManager.backoff(attempts: failures)
            }
            try await save(job.name, state, durable: job.durable)
            if job.recordEveryRun || run.outcome != "ok" || run.detail != nil { try await record(run) }
        } catch {
            logger.error("cannot record a scheduled run", metadata: ["job": "\(job.name)", "error": "\(String(reflecting: error))"])
        }
        if run.outcome == "ok" && (job.recordEveryRun || run.detail != nil) {
            logger.info("scheduled job ran", metadata: ["job": "\(job.name)", "trigger": "\(trigger)", "detail": "\(run.detail ?? "")"])
        }
        return run
    }
}
