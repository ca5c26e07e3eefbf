/// A `--creds` option of `mayfly run`: a credential path and the environment variable that
/// carries its connection string.
public struct RunCredentialSpec: Equatable, Sendable {
    public var path: String
    public var variable: String

    public init(path: String, variable: String) {
        self.path = path
        self.variable = variable
    }
}

/// A `--kv` option of `mayfly run`: a KV field and the environment variable that carries it.
public struct RunKVSpec: Equatable, Sendable {
    public var path: String
    public var field: String
    public var variable: String

    public init(path: String, field: String, variable: String) {
        self.path = path
        self.field = field
        self.variable = variable
    }
}

/// What `mayfly run` does to its program when a credential is replaced.
public enum RunChangeAction: Equatable, Sendable {
    case restart, signal(Int32), none
}
