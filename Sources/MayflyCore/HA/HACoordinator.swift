public import Foundation
public import Logging
import MayflyCrypto
public import MayflyStore
import Synchronization

/// One node's part in HA: takes the leader lock when it is free or expired (a new term),
/// renews it every third of `lock_ttl` while it leads, and steps down — becoming a standby,
/// without a restart — when a renewal finds the lock lost or cannot renew before it would
/// expire. The store's fence follows: writes carry this node's term while it leads and are
/// refused while it does not, so a leader that was paused or cut off cannot write once
/// another holds the lock, whatever it still believes.
///
/// The lock names the holder by `node_id` and a random suffix of this process, so a
/// restarted node (or two processes given one `node_id`) never inherits a live term.
public final class HACoordinator: Leadership, Sendable {
    public enum Role: Sendable, Equatable {
        case standby
        case leader(term: Int64)
    }

    /// What this node knows of the cluster now.
    public struct Status: Sendable {
        public var role: Role
        /// The lock as last read: its holder's node id, address and term (nil before the first read).
        public var lock: LeaderLock?
        /// When this node became leader (its current term), for `sys/leader`'s `active_time`.
        public var since: Date?
    }

    let store: any LeaderLockStore
    public let config: HAConfig
    /// The lock holder's name: `node_id/random`, unique to this process.
    public let holder: String
    private let logger: Logger
    private struct State {
        var role: Role = .standby
        var lock: LeaderLock?
        var since: Date?
        var lastRenewal = ContinuousClock.now
        var onLeader: (@Sendable (Int64) async -> Void)?
        var onStandby: (@Sendable () async -> Void)?
        var whileStandby: (@Sendable () async -> Void)?
        var lastStandbyRound = ContinuousClock.now
    }
    private let state = Mutex(State())

    public init(store: any LeaderLockStore, config: HAConfig, logger: Logger) {
        self.store = store
        self.config = config
        self.logger = logger
        holder = config.nodeID + "/" + Hex.encode(Random.bytes(4))
        store.setFence(.standby)
    }

    /// The node id of a lock holder (`node_id/random`).
    public static func nodeID(ofHolder holder: String) -> String {
        String(holder.split(separator: "/", maxSplits: 1).first ?? "")
    }

    /// What runs when this node takes the lock (leader-only start-up: reconcile, resumption)
    /// and when it loses it. Set once, before `run`.
    /// `whileStandby` runs every few seconds while this node is a standby (it picks up the
    /// keyring terms the leader adds).
    public func onTransitions(leader: @escaping @Sendable (Int64) async -> Void, standby: @escaping @Sendable () async -> Void,
                              whileStandby: @escaping @Sendable () async -> Void = {})
    {
        state.withLock {
            $0.onLeader = leader
            $0.onStandby = standby
            $0.whileStandby = whileStandby
        }
    }

    public func isLeader() async -> Bool { isLeaderNow }

    /// Whether this node leads now: it holds the lock, and renewed it less than two thirds of
    /// the TTL ago. A leader that was frozen (SIGSTOP, a long pause) past that stops serving at
    /// once when it wakes, before its next renewal finds the lock gone: it forwards (or asks
    /// for a retry) instead of answering from what it held.
    public var isLeaderNow: Bool {
        let (role, renewed) = state.withLock { ($0.role, $0.lastRenewal) }
        guard case .leader = role else { return false }
        return ContinuousClock.now - renewed < safeLead
    }

    /// How long after a renewal this node still counts itself leader.
    private var safeLead: Duration { .milliseconds(Int64(config.lockTTL * 1000 * 2 / 3)) }

    public var status: Status { state.withLock { Status(role: $0.role, lock: $0.lock, since: $0.since) } }

    /// How often a leader renews: a third of the TTL, so two renewals may fail before it expires.
    var renewInterval: Duration { .milliseconds(Int64(config.lockTTL * 1000 / 3)) }
    /// How often a standby looks for a free lock: often, so it takes over soon after expiry.
    var standbyInterval: Duration { .milliseconds(Int64(min(config.lockTTL / 3, 0.5) * 1000)) }

    /// Runs the election until cancelled; on the way out a leader gives the lock up at once.
    /// The node's heartbeat row and a standby's keyring refresh run beside it, every second,
    /// so that a slow store never delays a takeover.
    public func run() async {
        let heartbeat = Task {
            while !Task.isCancelled {
                await report()
                try? await Task.sleep(for: .seconds(1))
            }
        }
        while !Task.isCancelled {
            await elect()
            try? await Task.sleep(for: nextRound())
        }
        heartbeat.cancel()
        // In a task of its own: this one is cancelled (the shutdown), and the release must
        // still reach the store.
        await Task { await self.resign() }.value
    }

    /// When to look again: a leader at its renewal interval; a standby every half second, or
    /// just after the lock it saw expires, if sooner.
    private func nextRound() -> Duration {
        if isLeaderNow { return renewInterval }
        guard let lock = state.withLock({ $0.lock }), lock.live, lock.secondsToExpiry < min(config.lockTTL / 3, 0.5) else {
            return standbyInterval
        }
        return .milliseconds(Int64(max(0, lock.secondsToExpiry) * 1000) + 20)
    }

    /// One round (start-up and tests): an election, then the node's report.
    public func step() async {
        await elect()
        await report()
    }

    /// Reports this node in the members table; a standby also runs its periodic work.
    private func report() async {
        let role = state.withLock { $0.role }
        var term: Int64 = 0
        if case .leader(let held) = role { term = held }
        let member = ClusterMember(node: config.nodeID, holder: holder, address: config.clusterAddress,
                                   apiAddress: config.apiAddress, role: term > 0 ? "leader" : "standby", term: term,
                                   version: Broker.version)
        do {
            try await store.reportMember(member)
        } catch {
            logger.debug("cannot report this node's heartbeat", metadata: ["error": "\(String(reflecting: error))"])
        }
        if term == 0, let round = state.withLock({ state -> (@Sendable () async -> Void)? in
            guard ContinuousClock.now - state.lastStandbyRound >= .seconds(5) else { return nil }
            state.lastStandbyRound = .now
            return state.whileStandby
        }) {
            await round()
        }
    }

    /// The nodes as they last reported themselves.
    public func members() async throws -> [ClusterMember] { try await store.members() }

    /// The lock as the store holds it now.
    public func leaderLock() async throws -> LeaderLock? { try await store.leaderLock() }

    private func elect() async {
        let role = state.withLock { $0.role }
        switch role {
        case .leader(let term):
            do {
                if try await store.renewLeadership(node: holder, term: term, ttl: config.lockTTL) {
                    state.withLock { $0.lastRenewal = .now }
                } else {
                    await stepDown(term, reason: "another node holds the leader lock now")
                }
            } catch {
                // Unrenewed for most of the TTL: the lock may already be gone; stop before it is.
                let silent = ContinuousClock.now - state.withLock { $0.lastRenewal }
                logger.warning("cannot renew the leader lock", metadata: ["error": "\(String(reflecting: error))"])
                if silent > safeLead {
                    await stepDown(term, reason: "the store did not answer for \(silent)")
                }
            }
            if let lock = try? await store.leaderLock() { state.withLock { $0.lock = lock } }
        case .standby:
            do {
                if let term = try await store.acquireLeadership(
                    node: holder, address: config.clusterAddress, apiAddress: config.apiAddress, ttl: config.lockTTL) {
                    await becomeLeader(term)
                }
                let lock = try await store.leaderLock()
                state.withLock { $0.lock = lock }
            } catch {
                logger.warning("cannot reach the store to elect a leader", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    private func becomeLeader(_ term: Int64) async {
        store.setFence(.leader(node: holder, term: term))
        let callback = state.withLock { state in
            state.role = .leader(term: term)
            state.since = Date()
            state.lastRenewal = .now
            return state.onLeader
        }
        logger.notice("this node leads now", metadata: ["node": "\(config.nodeID)", "term": "\(term)"])
        await callback?(term)
    }

    private func stepDown(_ term: Int64, reason: String) async {
        store.setFence(.standby)
        let callback = state.withLock { state in
            state.role = .standby
            state.since = nil
            return state.onStandby
        }
        logger.warning("this node no longer leads: it is a standby now", metadata: [
            "node": "\(config.nodeID)", "term": "\(term)", "reason": "\(reason)",
        ])
        await callback?()
    }

    /// Gives the lock up (a graceful stop), so another node takes over without waiting for it to expire.
    public func resign() async {
        guard case .leader(let term) = state.withLock({ $0.role }) else { return }
        store.setFence(.standby)
        state.withLock { $0.role = .standby }
        do {
            try await store.releaseLeadership(node: holder, term: term)
            logger.notice("leader lock released", metadata: ["term": "\(term)"])
        } catch {
            logger.warning("cannot release the leader lock: another node takes over when it expires",
                           metadata: ["term": "\(term)", "error": "\(String(reflecting: error))"])
        }
    }
}
