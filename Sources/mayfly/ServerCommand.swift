import ArgumentParser
import CMayflyShims
import Foundation
import Logging
import MayflyCore
import MayflyCrypto
import MayflyServer
import MayflyStore
import ServiceLifecycle

/// `mayfly server`: runs the broker from a config file, or a throw-away dev server.
struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server", abstract: "Run the Mayfly server.",
        discussion: """
            With --config, serves the listeners of that HCL (or JSON) file until
            SIGTERM or SIGINT.

            With --dev, starts an initialised and unsealed server on
            ./.mayfly/mayfly.sock with its store in a temporary directory, an audit
            log, and a throw-away PostgreSQL; everything is deleted on exit. Never use
            --dev for real secrets.

            With --dev-ha, starts a two-node HA cluster instead: the store in the
            throw-away PostgreSQL, nodes on ./.mayfly/node-1.sock and node-2.sock (pid
            files beside them), so that a failover can be tried in a minute.
            """)

    @Option(name: .long, help: "Config file (HCL or JSON).") var config: String?
    @Flag(name: .long, help: "Run a throw-away development server.") var dev = false
    @Flag(name: .long, help: "In dev mode, do not start a PostgreSQL.") var devNoPostgres = false
    @Flag(name: .customLong("dev-ha"), help: "Run a throw-away two-node HA cluster on a throw-away PostgreSQL.") var devHA = false
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical (overrides the config).")
    var logLevel: String?

    func validate() throws {
        guard [config != nil, dev, devHA].filter({ $0 }).count == 1 else {
            throw ValidationError("give one of --config FILE, --dev or --dev-ha")
        }
        if devHA && devNoPostgres { throw ValidationError("--dev-ha keeps its store in PostgreSQL: --dev-no-postgres does not apply") }
        if let logLevel, Logger.Level(rawValue: logLevel == "warn" ? "warning" : logLevel) == nil {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() async throws {
        // Files the server creates (store, key file) are private; the socket is opened up
        // explicitly to its configured mode and group.
        umask(0o077)
        if dev {
            try await DevServer(noPostgres: devNoPostgres, logLevel: logLevel).run()
            return
        }
        if devHA {
            try await DevCluster(logLevel: logLevel).run()
            return
        }
        let loaded: MayflyConfig
        do {
            loaded = try ConfigLoader.load(path: config!)
        } catch {
            FileHandle.standardError.write(Data("Error: invalid configuration: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let logger = makeLogger(level: logLevel ?? loaded.logLevel)
        try await serve(config: loaded, logger: logger, configPath: config)
    }
}

/// A logger writing to stderr at `level`.
func makeLogger(level: String) -> Logger {
    let level = Logger.Level(rawValue: level == "warn" ? "warning" : level) ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    var logger = Logger(label: "mayfly")
    logger.logLevel = level
    return logger
}

/// Opens the broker and serves until a shutdown signal; startup errors exit with status 1.
func serve(config: MayflyConfig, logger: Logger, configPath: String? = nil,
           onReady: @escaping @Sendable (Broker) async -> Void = { _ in }) async throws
{
    var config = config
    DescriptorBudget.apply(to: &config, logger: logger)
    let broker: Broker
    let services: [any Service]
    let storeLock: any Sendable
    do {
        // Another server on the same socket or store is refused before anything is opened.
        try MayflyHTTPServer.checkListeners(config)
        for listener in config.unixListeners { try MayflyHTTPServer.claimSocket(listener.path) }
        storeLock = try await Broker.lockStore(config)
        broker = try await Broker.open(config: config, logger: logger)
        services = try MayflyHTTPServer(broker: broker, logger: logger, configPath: configPath).applications()
    } catch {
        // The operator's own setup is at fault here: say what exactly (paths, reasons).
        logger.critical("cannot start", metadata: ["error": "\(String(reflecting: error))"])
        FileHandle.standardError.write(Data("Error: cannot start: \(String(reflecting: error))\n".utf8))
        throw ExitCode(1)
    }
    let status = await broker.seal.status
    logger.notice("mayfly started", metadata: [
        "version": "\(Broker.version)", "initialized": "\(status.initialized)", "sealed": "\(status.sealed)",
    ])
    // What the operator runs next, said where they look first.
    if !status.initialized {
        logger.notice("not initialised yet: run `mayfly operator init` (with a key-file seal it creates the key file and unseals)")
    } else if status.sealed {
        logger.notice("sealed: run `mayfly operator unseal` with \(status.threshold) of the \(status.shares) unseal key shares")
    }
    defer { withExtendedLifetime(storeLock) {} }  // held until the server stops
    try await MayflyHTTPServer.run(services: services, logger: logger, onStarted: {
        // Serving from here on: the code of start-up need not stay resident.
        _ = mayfly_release_startup_code()
        await onReady(broker)
    })
    logger.notice("mayfly stopped")
}
