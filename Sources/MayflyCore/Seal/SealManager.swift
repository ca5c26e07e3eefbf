public import Foundation
import Logging
import MayflyCrypto
import MayflyStore

/// Initialisation, seal and unseal. The chain of keys is: unseal key (Shamir shares or key
/// file) → root key → keyring terms → values. Only wrapped forms are stored; while sealed,
/// no key is in memory.
public actor SealManager {
    private let storage: any Storage
    private let barrier: Barrier
    private let tokens: TokenStore
    private let mode: SealMode
    private let logger: Logger
    private var rootKey: SecureBytes?
    private var config: SealConfig?
    private var pendingShares: [[UInt8]] = []
    private var nonce = ""
    private let afterUnseal: @Sendable () async throws -> Void
    private let rotations = KeyedLock()

    init(storage: any Storage, barrier: Barrier, tokens: TokenStore, mode: SealMode, logger: Logger,
         afterUnseal: @escaping @Sendable () async throws -> Void)
    {
        self.storage = storage
        self.barrier = barrier
        self.tokens = tokens
        self.mode = mode
        self.logger = logger
        self.afterUnseal = afterUnseal
    }

    /// Reads the stored seal configuration (call once at start).
    func load() async throws {
        if let bytes = try await storage.systemValue("seal-config") {
            config = try JSONDecoder().decode(SealConfig.self, from: Data(bytes))
        }
    }

    public var isInitialized: Bool { config != nil }
    /// The root key while unsealed (for tests that check it is wiped on seal).
    var loadedRootKey: SecureBytes? { rootKey }
    public var isSealed: Bool { rootKey == nil }

    public var status: SealStatus {
        SealStatus(
            type: config?.type ?? sealType, initialized: config != nil, sealed: rootKey == nil,
            threshold: config?.secretThreshold ?? 0, shares: config?.secretShares ?? 0,
            progress: pendingShares.count, nonce: nonce)
    }

    private var sealType: String {
        if case .keyFile = mode { return "keyfile" }
        return "shamir"
    }

    /// The result of `initialize`: the shares (empty with a key-file seal) and the root token.
    public struct InitResult: Sendable {
        public var shares: [[UInt8]]
        public var rootToken: String
    }

    /// Initialises the store: new root key, keyring and token key; the unseal key is split into
    /// `shares` with `threshold` (Shamir) or taken from the key file. Leaves the store sealed
    /// for Shamir and unsealed for a key-file seal.
    public func initialize(shares: Int, threshold: Int) async throws -> InitResult {
        guard config == nil else { throw APIError.badRequest("Vault is already initialized") }
        let unsealKey: SecureBytes
        var config: SealConfig
        switch mode {
        case .shamir:
            guard (1...255).contains(shares) else { throw APIError.badRequest("secret shares must be between 1 and 255") }
            guard threshold >= 1, threshold <= shares else {
                throw APIError.badRequest("secret threshold must be between 1 and the number of shares")
            }
            guard threshold >= 2 || shares == 1 else {
                throw APIError.badRequest("secret threshold must be at least 2 when there is more than one share")
            }
            unsealKey = SecureBytes.random(count: AEAD.keyLength)
            config = SealConfig(type: "shamir", secretShares: shares, secretThreshold: threshold)
        case .keyFile(let path):
            unsealKey = try KeyFile.loadOrCreate(path: path)
            config = SealConfig(type: "keyfile", secretShares: 0, secretThreshold: 0)
        }
        defer { unsealKey.wipe() }
        let root = SecureBytes.random(count: AEAD.keyLength)
        let keyring = Keyring.generate(now: tokens.clock.now())
        try await storage.setSystemValue(
            "root-key", try AEAD.seal(secure: root, key: unsealKey, associatedData: Array("core/root-key".utf8)))
        try await storage.setSystemValue("keyring", try keyring.sealed(rootKey: root))
        barrier.install(keyring)
        let rootToken: String
        do {
            try await tokens.generateKey()
            rootToken = try await tokens.create(
                TokenRequest(policies: ["root"], displayName: "root", renewable: false, path: "auth/token/root")
            ).token
        } catch {
            barrier.seal()
            tokens.unload()
            throw error
        }
        var shareList: [[UInt8]] = []
        if case .shamir = mode {
            shareList = shares == 1 ? [try unsealKey.copyBytes()] : try Shamir.split(
                secret: unsealKey, parts: shares, threshold: threshold)
        }
        // The seal configuration is written last: its presence is what "initialised" means.
        try await storage.setSystemValue("seal-config", try JSONEncoder().encode(config).bytes)
        self.config = config
        logger.notice("store initialised", metadata: ["seal": "\(config.type)", "shares": "\(shares)", "threshold": "\(threshold)"])
        if case .keyFile = mode {
            try await finishUnseal(root: root)
        } else {
            barrier.seal()
            tokens.unload()
            root.wipe()
        }
        return InitResult(shares: shareList, rootToken: rootToken)
    }

    /// Adds one share; unseals once the threshold is reached. A wrong combination resets progress.
    public func submit(share: [UInt8]) async throws -> SealStatus {
        guard let config else { throw APIError.badRequest("Vault is not initialized") }
        guard rootKey == nil else { return status }
        guard case .shamir = mode else { throw APIError.badRequest("this server unseals from its key file") }
        // Only a share this store could have made counts towards the threshold, so garbage from
        // any caller cannot spoil an unseal in progress: the key itself when there is one share,
        // else the key plus a non-zero x coordinate, distinct from the shares given so far.
        let single = config.secretShares <= 1
        guard share.count == AEAD.keyLength + (single ? 0 : 1) else {
            throw APIError.badRequest("unseal failed, invalid key: a share of this store is \(AEAD.keyLength + (single ? 0 : 1)) bytes")
        }
        if pendingShares.contains(where: { ConstantTime.equals($0, share) }) { return status }
        if !single {
            guard share.last != 0, !pendingShares.contains(where: { $0.last == share.last }) else {
                throw APIError.badRequest("unseal failed, invalid key: not a share of this store")
            }
        }
        if pendingShares.isEmpty { nonce = Random.uuid() }
        pendingShares.append(share)
        guard pendingShares.count >= config.secretThreshold else { return status }
        let submitted = pendingShares
        pendingShares = []
        nonce = ""
        let unsealKey: SecureBytes
        do {
            unsealKey = submitted.count == 1 ? SecureBytes(copying: submitted[0]) : try Shamir.combine(submitted)
        } catch {
            throw APIError.badRequest("unseal failed, invalid key")
        }
        defer { unsealKey.wipe() }
        try await unseal(with: unsealKey)
        return status
    }

    /// Forgets submitted shares.
    public func resetProgress() {
        pendingShares = []
        nonce = ""
    }

    /// Unseals from the key file (key-file seal); a wrong file is a clear error.
    public func unsealFromKeyFile() async throws {
        guard case .keyFile(let path) = mode, config != nil, rootKey == nil else { return }
        let key = try KeyFile.load(path: path)
        defer { key.wipe() }
        do {
            try await unseal(with: key)
        } catch let error as APIError where error.status == 400 {
            throw APIError(status: 400, ["the key file \(path) does not unseal this store (wrong key file?)"])
        }
    }

    private func unseal(with unsealKey: SecureBytes) async throws {
        guard let wrapped = try await storage.systemValue("root-key") else {
            throw BarrierError.corrupt("wrapped root key missing")
        }
        let root: SecureBytes
        do {
            root = try AEAD.openSecure(wrapped, key: unsealKey, associatedData: Array("core/root-key".utf8))
        } catch {
            logger.warning("unseal attempt failed: the key does not open the root key")
            throw APIError.badRequest("unseal failed, invalid key")
        }
        try await finishUnseal(root: root)
    }

    private func finishUnseal(root: SecureBytes) async throws {
        do {
            guard let blob = try await storage.systemValue("keyring") else { throw BarrierError.corrupt("keyring missing") }
            barrier.install(try Keyring.open(blob, rootKey: root))
            installedKeyring = blob
            try await tokens.loadKey()
            rootKey = root
            try await afterUnseal()
        } catch {
            root.wipe()
            rootKey = nil
            barrier.seal()
            tokens.unload()
            throw error
        }
        logger.notice("unsealed")
    }

    /// Re-reads the keyring from the store: a node that takes over as leader picks up the
    /// terms the last leader added (the root key is the same). Nothing happens while sealed.
    func reloadKeyring() async throws {
        guard let rootKey else { return }
        guard let blob = try await storage.systemValue("keyring") else { throw BarrierError.corrupt("keyring missing") }
        // Unchanged since it was installed: the keys in use stay (nothing is wiped under a reader).
        guard blob != installedKeyring else { return }
        let ring = try Keyring.open(blob, rootKey: rootKey)
        guard self.rootKey != nil else {
            ring.wipe()  // sealed meanwhile
            return
        }
        barrier.install(ring)
        installedKeyring = blob
    }

    /// The sealed keyring as last installed from the store (ciphertext; for `reloadKeyring`).
    private var installedKeyring: [UInt8]?

    /// Wipes every key from memory.
    public func seal() {
        pendingShares = []
        nonce = ""
        barrier.seal()
        tokens.unload()
        rootKey?.wipe()
        rootKey = nil
        logger.notice("sealed")
    }

    /// Adds a keyring term; new writes use it, old terms still decrypt.
    public func rotate() async throws -> KeyStatus {
        // One rotation at a time: the actor is re-entered at the storage write, and two
        // rotations from the same keyring would each make a term N+1 of their own, so values
        // sealed under the one whose keyring write lost would never open again.
        try await rotations.withLock("keyring") { try await self.rotateOnce() }
    }

    private func rotateOnce() async throws -> KeyStatus {
        guard let rootKey else { throw APIError.sealed }
        let current = try barrier.currentKeyring()
        let ring = current.rotated(now: tokens.clock.now())
        do {
            let sealed = try ring.sealed(rootKey: rootKey)
            try await storage.setSystemValue("keyring", sealed)
            installedKeyring = sealed
        } catch {
            ring.active.key.wipe()
            throw error
        }
        // Sealed meanwhile: the stored keyring (every old term plus the new one) is loaded at
        // the next unseal; installing it now would unseal the barrier behind the seal's back.
        guard self.rootKey != nil, (try? barrier.currentKeyring()) === current else {
            ring.active.key.wipe()
            throw APIError.sealed
        }
        barrier.install(ring)
        logger.notice("keyring rotated", metadata: ["term": "\(ring.activeTerm)"])
        return try keyStatus()
    }

    /// The active term, when it was installed and how many values it has encrypted since unseal.
    public func keyStatus() throws -> KeyStatus {
        let ring = try barrier.currentKeyring()
        return KeyStatus(
            term: ring.activeTerm, installTime: ring.active.installTime,
            encryptions: barrier.encryptionCount(term: ring.activeTerm))
    }
}

/// `sys/key-status`.
public struct KeyStatus: Sendable {
    public var term: UInt32
    public var installTime: Date
    public var encryptions: Int
}
