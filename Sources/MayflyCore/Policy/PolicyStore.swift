import Foundation
import MayflyPolicies
import Synchronization

/// Where policies come from: the built-in `default` (compiled in from `policies/default.hcl`),
/// the `*.hcl` / `*.json` files of the configured directory (loaded at start and on SIGHUP,
/// swapped whole; a broken file keeps the previous set), and the API (`sys/policies/acl`,
/// stored encrypted). File policies cannot be changed through the API.
public final class PolicyStore: Sendable {
    private struct State {
        var files: [String: Policy] = [:]
        var stored: [String: Policy] = [:]
        var aclCache: [String: ACL] = [:]
    }

    private let directory: String?
    private let barrier: Barrier
    private let state = Mutex(State())
    private let builtinDefault: Policy
    static let storagePrefix = "policy/"

    /// Loads the directory; a malformed file is an error naming the file and line.
    init(directory: String?, barrier: Barrier) throws(PolicyFileError) {
        self.directory = directory
        self.barrier = barrier
        do {
            builtinDefault = try Policy.parse(name: "default", text: BuiltinPolicies.defaultText)
        } catch {
            throw PolicyFileError(file: "(built-in default.hcl)", error: error)
        }
        try reload()
    }

    /// Reads the directory again and swaps the file policies in one step; on any error the
    /// previous set stays active and the error (file and line) is thrown.
    public func reload() throws(PolicyFileError) {
        guard let directory else { return }
        let files = try Self.load(directory: directory)
        state.withLock { state in
            state.files = files
            state.aclCache = [:]
        }
    }

    static func load(directory: String) throws(PolicyFileError) -> [String: Policy] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw PolicyFileError(file: directory, message: "cannot read the policies directory")
        }
        var policies: [String: Policy] = [:]
        for file in names.sorted() where file.hasSuffix(".hcl") || file.hasSuffix(".json") {
            let path = (directory as NSString).appendingPathComponent(file)
            let name = (file as NSString).deletingPathExtension
            guard name != "root", (try? PolicyStore.validate(name: name)) != nil else {
                throw PolicyFileError(file: path, message: "\"\(name)\" is not a usable policy name")
            }
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw PolicyFileError(file: path, message: "cannot read the file as UTF-8")
            }
            do {
                policies[name] = try Policy.parse(name: name, text: text)
            } catch {
                throw PolicyFileError(file: path, error: error)
            }
        }
        return policies
    }

    /// Loads the API-written policies (after unseal).
    func loadStored() async throws {
        var stored: [String: Policy] = [:]
        for name in try await barrier.list(Self.storagePrefix) where !name.hasSuffix("/") {
            guard let bytes = try await barrier.get(Self.storagePrefix + name) else { continue }
            if let policy = try? Policy.parse(name: name, text: String(decoding: bytes, as: UTF8.self)) {
                stored[name] = policy
            }
        }
        state.withLock { state in
            state.stored = stored
            state.aclCache = [:]
        }
    }

    /// Forgets the API policies (on seal).
    func unloadStored() {
        state.withLock { state in
            state.stored = [:]
            state.aclCache = [:]
        }
    }

    /// The policy called `name`, wherever it comes from.
    func policy(_ name: String) -> Policy? {
        if name == "root" { return .root }
        return state.withLock { $0.files[name] ?? $0.stored[name] } ?? (name == "default" ? builtinDefault : nil)
    }

    /// Whether `name` exists.
    func exists(_ name: String) -> Bool { policy(name) != nil }

    /// The ACL for a set of policy names (unknown names grant nothing), cached until a policy changes.
    func acl(for names: [String]) -> ACL {
        let key = names.sorted().joined(separator: "\n")
        if let cached = state.withLock({ $0.aclCache[key] }) { return cached }
        let acl = ACL(policies: names.compactMap(policy))
        state.withLock { state in
            if state.aclCache.count > 1000 { state.aclCache = [:] }
            state.aclCache[key] = acl
        }
        return acl
    }

    /// Names of every policy (built-in, files, API).
    func names() -> [String] {
        let (files, stored) = state.withLock { (Array($0.files.keys), Array($0.stored.keys)) }
        return Array(Set(files + stored + ["default", "root"])).sorted()
    }

    /// Where `name` is defined, for API writes: files and root cannot be changed.
    func isReadOnly(_ name: String) -> Bool {
        name == "root" || state.withLock { $0.files[name] != nil }
    }

    static func validate(name: String) throws {
        let allowed = name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" || $0 == "."
        }
        guard !name.isEmpty, name.utf8.count <= 128, allowed, name.first != "." else {
            throw APIError.badRequest("invalid policy name \"\(APIError.clip(name))\": use letters, digits, '-', '_' or '.'")
        }
    }

    /// Stores an API policy after parsing it (a malformed one is a 400 naming the line).
    func write(name: String, text: String) async throws {
        try Self.validate(name: name)
        guard !isReadOnly(name) else {
            throw APIError.badRequest(name == "root" ? "cannot update the root policy"
                                      : "policy \"\(name)\" is defined in the policies directory; edit the file and reload")
        }
        let policy: Policy
        do {
            policy = try Policy.parse(name: name, text: text)
        } catch {
            throw APIError.badRequest("failed to parse policy: \(error.description)")
        }
        try await barrier.put(Self.storagePrefix + name, Array(text.utf8))
        state.withLock { state in
            state.stored[name] = policy
            state.aclCache = [:]
        }
    }

    /// The source text of an API policy, or the canonical form of a built-in or file one.
    func text(_ name: String) async throws -> String? {
        if let bytes = try await barrier.get(Self.storagePrefix + name) { return String(decoding: bytes, as: UTF8.self) }
        if let directory {
            for ext in ["hcl", "json"] {
                let path = (directory as NSString).appendingPathComponent("\(name).\(ext)")
                if let text = try? String(contentsOfFile: path, encoding: .utf8) { return text }
            }
        }
        return name == "default" ? BuiltinPolicies.defaultText : nil
    }

    func delete(name: String) async throws {
        try Self.validate(name: name)
        guard name != "default" else { throw APIError.badRequest("cannot delete \"default\" policy") }
        guard !isReadOnly(name) else { throw APIError.badRequest("policy \"\(name)\" cannot be deleted through the API") }
        try await barrier.delete(Self.storagePrefix + name)
        state.withLock { state in
            state.stored[name] = nil
            state.aclCache = [:]
        }
    }
}

/// A policy file that cannot be loaded: its path, line and what is wrong.
public struct PolicyFileError: Error, Sendable, CustomStringConvertible {
    public let file: String
    public let line: Int?
    public let message: String

    init(file: String, message: String) {
        self.file = file
        line = nil
        self.message = message
    }

    init(file: String, error: PolicyError) {
        self.file = file
        line = error.line
        message = error.message
    }

    public var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}
