/// Whether this node may run scheduled jobs. A single node always may; the HA work
/// implements this with a lock in shared storage.
public protocol Leadership: Sendable {
    func isLeader() async -> Bool
}

/// The single-node answer: always the leader.
public struct SingleNodeLeadership: Leadership {
    public init() {}
    public func isLeader() async -> Bool { true }
}
