// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "mayfly",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mayfly", targets: ["mayfly"]),
        .library(name: "MayflyClient", targets: ["MayflyClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        // C declarations only; each is imported by exactly one wrapper module.
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // C types Swift's Glibc module hides (`struct ucred`), checked against the real ones.
        .target(name: "CMayflyShims"),

        // libsodium: guarded key memory, AEAD, Shamir, keyed hashes.
        .target(name: "MayflyCrypto", dependencies: ["CSodium"], swiftSettings: swiftSettings),
        // libpq: connections, escaping, TLS policy.
        .target(
            name: "MayflyPostgres",
            dependencies: ["CLibPQ", .product(name: "NIOPosix", package: "swift-nio")],
            swiftSettings: swiftSettings),
        // Pure HCL parser (config files and policies).
        .target(name: "MayflyHCL", swiftSettings: swiftSettings),
        // JSON values, their parser and writer, and timestamps: shared by core, client and CLI.
        .target(name: "MayflyJSON", swiftSettings: swiftSettings),
        // Pure cron parser and next-fire calculator (schedules of rotations and jobs).
        .target(name: "MayflyCron", swiftSettings: swiftSettings),
        // The SQL schema, embedded from the top-level migrations/ folder.
        .target(
            name: "MayflyMigrations", path: "migrations",
            exclude: ["README.md"],
            resources: [.embedInCode("sql"), .embedInCode("postgresql")],
            swiftSettings: swiftSettings),
        // The built-in default policy, embedded from the top-level policies/ folder.
        .target(
            name: "MayflyPolicies", path: "policies",
            exclude: ["examples", "README.md"],
            resources: [.embedInCode("default.hcl")],
            swiftSettings: swiftSettings),
        // Storage protocol and the SQLite backend.
        .target(
            name: "MayflyStore",
            dependencies: [.product(name: "GRDB", package: "GRDB.swift"), "MayflyMigrations", "MayflyPostgres"],
            swiftSettings: swiftSettings),
        // The domain: barrier, seal, KV, tokens, config.
        .target(
            name: "MayflyCore",
            dependencies: [
                "MayflyCrypto", "MayflyJSON", "MayflyStore", "MayflyHCL", "MayflyCron", "MayflyPostgres", "MayflyPolicies",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings),
        // HTTP: listeners, Vault-compatible routes and envelope.
        .target(
            name: "MayflyServer",
            dependencies: [
                "MayflyCore", "MayflyCrypto", "MayflyJSON", "MayflyStore", "CMayflyShims",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),
        // Swift client of the API (Unix socket and HTTPS).
        .target(
            name: "MayflyClient",
            dependencies: [
                "MayflyJSON",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings),
        // `mayfly run`: fetches credentials, starts a program with them, renews and replaces them.
        .target(name: "MayflyRun", dependencies: ["MayflyClient"], swiftSettings: swiftSettings),
        // Dev mode's throw-away PostgreSQL cluster (`mayfly server --dev`).
        .target(
            name: "MayflyDevCluster", dependencies: ["MayflyCore", "MayflyCrypto", "MayflyPostgres", "MayflyRun"],
            swiftSettings: swiftSettings),
        // The `mayfly` command.
        .executableTarget(
            name: "mayfly",
            dependencies: [
                "MayflyServer", "MayflyClient", "MayflyJSON", "MayflyCore", "MayflyCrypto", "MayflyPostgres", "MayflyStore", "MayflyRun",
                "MayflyDevCluster", "CMayflyShims",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),
        // `mayfly-bench`: the load generator and SQL baselines behind scripts/bench.
        .executableTarget(
            name: "mayfly-bench",
            dependencies: [
                "CMayflyShims", "MayflyCore", "MayflyCrypto", "MayflyPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings),

        // What the test targets share: the test logger.
        .target(
            name: "MayflyTestSupport", dependencies: [.product(name: "Logging", package: "swift-log")],
            path: "Tests/MayflyTestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "MayflyCryptoTests", dependencies: ["MayflyCrypto"], swiftSettings: swiftSettings),
        .testTarget(name: "MayflyHCLTests", dependencies: ["MayflyHCL"], swiftSettings: swiftSettings),
        .testTarget(name: "MayflyCronTests", dependencies: ["MayflyCron"], swiftSettings: swiftSettings),
        .testTarget(name: "MayflyStoreTests", dependencies: ["MayflyStore", "MayflyMigrations", "MayflyPostgres"],
                    swiftSettings: swiftSettings),
        .testTarget(name: "MayflyPostgresTests", dependencies: ["MayflyPostgres", "MayflyRun", "MayflyTestSupport"],
                    swiftSettings: swiftSettings),
        .testTarget(
            name: "MayflyCoreTests",
            dependencies: ["MayflyCore", "MayflyCrypto", "MayflyStore", "MayflyPostgres", "MayflyPolicies", "MayflyTestSupport",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "MayflyServerTests",
            dependencies: [
                "MayflyServer", "MayflyCore", "MayflyClient", "MayflyPostgres", "MayflyRun", "MayflyTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),
    ]
)
