import CSodium

/// Calls `sodium_init()` exactly once, before any other libsodium function.
enum Sodium {
    private static let initialized: Bool = {
        precondition(sodium_init() >= 0, "libsodium failed to initialise")
        return true
    }()

    static func ensureInitialized() {
        _ = initialized
    }
}
