import Foundation
import MayflyCron
import Synchronization

/// The list of everything that runs unattended, rebuilt from the config and the store (static
/// roles and databases can be added through the API at any time), cached for a few seconds.
final class ScheduledJobs: Sendable {
    private let config: MayflyConfig
    private let databases: DatabaseEngine
    private let leases: LeaseManager
    private let staticRoles: StaticRoleManager
    private let incidents: IncidentManager
    private let rewrapper: KeyRewrapper
    private let tokens: TokenStore
    private let cache = Mutex<(jobs: [ScheduledJob], at: ContinuousClock.Instant)?>(nil)
    // Set by the Broker once both exist (the jobs need the seal manager for key rotation).
    let seal = Box()

    /// Holds the seal manager, set once after construction.
    final class Box: Sendable {
        private let value = Mutex<SealManager?>(nil)
        func set(_ manager: SealManager) { value.withLock { $0 = manager } }
        var manager: SealManager? { value.withLock { $0 } }
    }

    init(config: MayflyConfig, databases: DatabaseEngine, leases: LeaseManager, staticRoles: StaticRoleManager,
         incidents: IncidentManager, rewrapper: KeyRewrapper, tokens: TokenStore)
    {
        self.tokens = tokens
        self.config = config
        self.databases = databases
        self.leases = leases
        self.staticRoles = staticRoles
        self.incidents = incidents
        self.rewrapper = rewrapper
    }

    /// `@every <n>s`.
    private static func every(_ seconds: Int64) -> CronSchedule {
        // An @every duration of at least 1s always parses.
        (try? CronSchedule("@every \(min(max(1, seconds), DurationParser.maximum))s")) ?? (try! CronSchedule("@yearly"))
    }

    /// Forgets the cached list (a static role or database config was written or deleted), so
    /// the next look — `schedule list`, `schedule run` — sees the change at once.
    func invalidate() {
        cache.withLock { $0 = nil }
    }

    func all() async -> [ScheduledJob] {
        if let cached = cache.withLock({ $0 }), ContinuousClock.now - cached.at < .seconds(5) { return cached.jobs }
        let jobs = await build()
        cache.withLock { $0 = (jobs, ContinuousClock.now) }
        return jobs
    }

    private func build() async -> [ScheduledJob] {
        let leases = leases, incidents = incidents, rewrapper = rewrapper, databases = databases
        let staticRoles = staticRoles, rate = config.keyringRewrapRate, jitter = config.schedulerJitter, tokens = tokens
        var jobs: [ScheduledJob] = [
            ScheduledJob(name: "lease-sweep", schedule: Self.every(1), jitter: 0, recordEveryRun: false, durable: false,
                         lastRun: nil) { _ in
                let handled = try await leases.sweep()
                return handled > 0 ? "revoked or retried \(handled) lease(s)" : nil
            },
            ScheduledJob(name: "token-sweep", schedule: Self.every(1), jitter: 0, recordEveryRun: false, durable: false,
                         lastRun: nil) { _ in
                let handled = try await tokens.sweepExpired()
                return handled > 0 ? "revoked \(handled) expired token(s) with the tokens they created and their leases" : nil
            },
            ScheduledJob(name: "incident-resume", schedule: Self.every(2), jitter: 0, recordEveryRun: false, durable: false,
                         lastRun: nil) { _ in
                await incidents.resumeUnfinished()
                return nil
            },
            ScheduledJob(name: "reconcile", schedule: Self.every(300), jitter: 0, recordEveryRun: true, durable: false,
                         lastRun: nil) { _ in
                let (dropped, closed) = try await leases.reconcile(databaseNames: try await databases.configuredNames(),
                                                                   afterRestart: false)
                try await leases.admission.resync()
                await leases.releaseMemory()
                return "dropped \(dropped) role(s) without a lease, closed \(closed) lease(s) without a role"
            },
            ScheduledJob(name: "keyring-rewrap", schedule: Self.every(1), jitter: 0, recordEveryRun: false, durable: false,
                         lastRun: nil) { now in
                try await rewrapper.step(limit: rate, now: now)
            },
        ]
        if let expression = config.keyringRotationSchedule, let schedule = try? CronSchedule(expression) {
            let seal = self.seal
            jobs.append(ScheduledJob(name: "keyring-rotation", schedule: schedule, jitter: jitter, recordEveryRun: true,
                                     durable: true, lastRun: nil) { now in
                guard let manager = seal.manager else { return nil }
                let status = try await manager.rotate()
                try await rewrapper.start(now: now)
                return "keyring term \(status.term) installed; re-wrap started"
            })
        }
        if let names = try? await databases.configuredNames() {
            for name in names {
                guard let config = try? await databases.config(name), let expression = config.rootRotationSchedule,
                    let schedule = try? CronSchedule(expression)
                else { continue }
                jobs.append(ScheduledJob(name: "root-rotation:\(name)", schedule: schedule, jitter: jitter,
                                         recordEveryRun: true, durable: true,
                                         lastRun: { try await databases.config(name)?.lastRootRotation }) { now in
                    try await databases.rotateRoot(name, now: now)
                    return "admin password of \(name) rotated"
                })
            }
        }
        if let names = try? await staticRoles.names() {
            for name in names {
                guard let role = try? await staticRoles.definition(name) else { continue }
                let schedule: CronSchedule
                if let expression = role.rotationSchedule {
                    guard let parsed = try? CronSchedule(expression, timeZone: role.timeZone) else { continue }
                    schedule = parsed
                } else if let period = role.rotationPeriod {
                    schedule = Self.every(period)
                } else {
                    continue
                }
                jobs.append(ScheduledJob(name: "static-role:\(name)", schedule: schedule, jitter: jitter,
                                         recordEveryRun: true, durable: true,
                                         lastRun: { try await staticRoles.state(name)?.lastRotation }) { now in
                    try await staticRoles.rotate(name, now: now)
                    return "static role \(name) rotated"
                })
            }
        }
        return jobs
    }
}
