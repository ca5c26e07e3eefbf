import Foundation

/// The bindings of the config file, with user and group names resolved to numeric ids once
/// (at load and on reload), so a request costs a few dictionary lookups. Several bindings
/// may match one caller; their policies add up. No match means no access (deny by default).
/// Built while loading the config (single-threaded), where the non-reentrant passwd and
/// group lookups are safe.
public struct BindingTable: Sendable {
    private var byUID: [UInt32: [String]] = [:]
    private var byGID: [UInt32: [String]] = [:]
    private var byCertificate: [String: [String]] = [:]
    /// Bound groups each user is a supplementary member of (from the group database, read
    /// when the table is built: a request never touches /etc/group).
    private var supplementary: [UInt32: Set<UInt32>] = [:]

    /// Why a binding cannot be used.
    public struct Failure: Error, CustomStringConvertible {
        public let identity: String
        public let reason: String
        public var description: String { "bind \"\(identity)\": \(reason)" }
    }

    public init() {}

    /// Resolves every binding; a user or group name that does not exist is an error.
    public init(_ bindings: [Binding]) throws(Failure) {
        for binding in bindings {
            try add(binding)
        }
        for gid in byGID.keys {
            for member in Self.members(of: gid) { supplementary[member, default: []].insert(gid) }
        }
    }

    private mutating func add(_ binding: Binding) throws(Failure) {
        let identity = binding.identity
        func fail(_ reason: String) -> Failure { Failure(identity: identity, reason: reason) }
        let parts = identity.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2 else { throw fail("expected unix:uid|user|gid|group:<value> or cert:<value>") }
        switch parts[0] {
        case "unix":
            guard parts.count == 3, !parts[2].isEmpty else { throw fail("expected unix:uid|user|gid|group:<value>") }
            let value = parts[2]
            switch parts[1] {
            case "uid":
                guard let uid = UInt32(value) else { throw fail("uid must be a number") }
                byUID[uid, default: []] += binding.policies
            case "gid":
                guard let gid = UInt32(value) else { throw fail("gid must be a number") }
                byGID[gid, default: []] += binding.policies
            case "user":
                guard let entry = getpwnam(value) else { throw fail("no such user \"\(value)\"") }
                byUID[entry.pointee.pw_uid, default: []] += binding.policies
            case "group":
                guard let entry = getgrnam(value) else { throw fail("no such group \"\(value)\"") }
                byGID[entry.pointee.gr_gid, default: []] += binding.policies
            default:
                throw fail("unknown kind \"\(parts[1])\" (uid, user, gid or group)")
            }
        case "cert":
            let rest = String(identity.dropFirst("cert:".count))
            guard !rest.isEmpty else { throw fail("expected cert:<URI SAN>, cert:dns:<name> or cert:cn:<name>") }
            byCertificate[rest, default: []] += binding.policies
        default:
            throw fail("identities start with unix: or cert:")
        }
    }

    /// True when no binding is configured.
    public var isEmpty: Bool { byUID.isEmpty && byGID.isEmpty && byCertificate.isEmpty }

    /// The policies bound to `identity` (sorted, unique), or nil when nothing matches.
    public func policies(for identity: PeerIdentity) -> [String]? {
        var found: [String] = []
        var matched = false
        switch identity {
        case .unix(let uid, let gid, _):
            if let policies = byUID[uid] { found += policies; matched = true }
            for group in supplementary[uid, default: []].union([gid]) {
                if let policies = byGID[group] { found += policies; matched = true }
            }
        case .certificate(let uris, let dnsNames, let commonName):
            var keys = uris + dnsNames.map { "dns:" + $0 }
            if let commonName { keys.append("cn:" + commonName) }
            for key in keys {
                if let policies = byCertificate[key] { found += policies; matched = true }
            }
        }
        return matched ? Array(Set(found)).sorted() : nil
    }

    /// Uids of the supplementary members of group `gid`.
    static func members(of gid: UInt32) -> [UInt32] {
        guard let group = getgrgid(gid), var member = group.pointee.gr_mem else { return [] }
        var names: [String] = []
        while let name = member.pointee {
            names.append(String(cString: name))
            member += 1
        }
        return names.compactMap { getpwnam($0)?.pointee.pw_uid }
    }
}
