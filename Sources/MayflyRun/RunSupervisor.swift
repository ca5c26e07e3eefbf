import Foundation
public import MayflyClient
import Synchronization

/// The engine of `mayfly run`: one event loop over signals, the program's exit and replaced
/// credentials; one renewal task per lease.
public actor RunSupervisor {
    private let client: MayflyClient
    private let specs: [RunCredentialSpec]
    private let kvSpecs: [RunKVSpec]
    private let pgEnv: Bool
    private let onChange: RunChangeAction
    private let file: String?
    private let stopTimeout: Double
    private let keepLeases: Bool
    private var current: [DatabaseCredential] = []
    private var kvValues: [String: String] = [:]
    private var child: ChildProcess?
    private var stopping = false

    enum Event: Sendable {
        case signal(Int32)
        case exited(pid_t, Int32)
        case replaced(index: Int, DatabaseCredential)
        case failed(String)
        /// The first fetch is over (its result is the fetching task's).
        case fetched
    }

    private let events: AsyncStream<Event>
    private let sink: AsyncStream<Event>.Continuation

    public init(client: MayflyClient, credentials: [RunCredentialSpec], kv: [RunKVSpec], pgEnv: Bool,
         onChange: RunChangeAction, file: String?, stopTimeout: Double, keepLeases: Bool)
    {
        self.client = client
        specs = credentials
        kvSpecs = kv
        self.pgEnv = pgEnv
        self.onChange = onChange
        self.file = file
        self.stopTimeout = stopTimeout
        self.keepLeases = keepLeases
        (events, sink) = AsyncStream.makeStream()
    }

    /// Writes one `mayfly run:` line to standard error.
    public static func say(_ line: String) {
        FileHandle.standardError.write(Data("mayfly run: \(line)\n".utf8))
    }

    // MARK: Fetching

    /// Retries `body` while the broker is unreachable, sealed, busy or failing (with backoff,
    /// said on stderr); a refusal (4xx other than 429) is final. The delay doubles up to
    /// `maximumDelay` seconds (a renewal keeps it well inside its lease: a broker back after a
    /// restart must see the renewal before the lease runs out).
    private static func retrying<T: Sendable>(_ what: String, maximumDelay: Double = 15,
                                              _ body: @Sendable () async throws -> T) async throws -> T {
        var delay = 0.5
        while true {
            do {
                return try await body()
            } catch let error as MayflyClient.APIError where (400..<500).contains(error.status) && error.status != 429 {
                throw error
            } catch {
                try Task.checkCancellation()
                say("\(what): \(error); retrying in \(delay < 1 ? String(format: "%.1f", delay) : String(Int(delay)))s")
                try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
                delay = min(delay * 2, max(maximumDelay, 0.5))
            }
        }
    }

    private func fetchAll() async throws {
        let client = client
        for spec in specs {
            // Kept as they come, so that an interrupted start revokes what it got.
            current.append(try await Self.retrying("cannot fetch \(spec.path)") { try await client.databaseCredential(spec.path) })
        }
        var values: [String: String] = [:]
        var secrets: [String: [String: String]] = [:]
        for spec in kvSpecs {
            if secrets[spec.path] == nil {
                secrets[spec.path] = try await Self.retrying("cannot read \(spec.path)") { try await client.secret(spec.path) }
            }
            guard let value = secrets[spec.path]?[spec.field] else {
                throw MayflyClient.APIError(status: 404, message: "\(spec.path) has no field \"\(spec.field)\"")
            }
            values[spec.variable] = value
        }
        kvValues = values
    }

    private func environment() -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for key in ["MAYFLY_TOKEN", "VAULT_TOKEN"] { environment[key] = nil }  // the program gets credentials, not our token
        for (spec, credential) in zip(specs, current) { environment[spec.variable] = credential.databaseURL }
        if pgEnv, let first = current.first { environment.merge(first.libpqEnvironment) { $1 } }
        environment.merge(kvValues) { $1 }
        return environment
    }

    /// The variables `mayfly run` sets (for `--file`), as `NAME='value'` lines.
    private func fileContents() -> String {
        var ours: [String: String] = kvValues
        for (spec, credential) in zip(specs, current) { ours[spec.variable] = credential.databaseURL }
        if pgEnv, let first = current.first { ours.merge(first.libpqEnvironment) { $1 } }
        return ours.keys.sorted().map { "\($0)='\(ours[$0]!.replacingOccurrences(of: "'", with: "'\\''"))'\n" }.joined()
    }

    private func writeFile() throws {
        guard let file else { return }
        // Replaced atomically: only ever a regular file (never a device such as /dev/null).
        var info = stat()
        if lstat(file, &info) == 0, (info.st_mode & S_IFMT) != S_IFREG {
            throw ChildProcess.SpawnError(description: "--file \(file) exists and is not a regular file; not replacing it")
        }
        let temporary = file + ".tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard descriptor >= 0 else { throw ChildProcess.SpawnError(description: "cannot write \(file): \(String(cString: strerror(errno)))") }
        let bytes = Array(fileContents().utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        fsync(descriptor)
        close(descriptor)
        guard written == bytes.count, rename(temporary, file) == 0 else {
            unlink(temporary)
            throw ChildProcess.SpawnError(description: "cannot write \(file): \(String(cString: strerror(errno)))")
        }
    }

    // MARK: Running

    /// Runs `program` until it exits; returns its exit code.
    /// Fetches the credentials, starts `program` with them and supervises it; returns its
    /// exit status (or Mayfly's, when fetching failed).
    public func run(_ program: [String]) async -> Int32 {
        let sources = installSignalHandlers()
        defer { for source in sources { source.cancel() } }
        var events = events.makeAsyncIterator()
        // SIGINT or SIGTERM while the credentials are still being fetched (the broker down or
        // sealed) ends `mayfly run` at once, revoking whatever it already got.
        let sink = sink
        let fetching = Task {
            defer { sink.yield(.fetched) }
            try await self.fetchAll()
            try self.writeFile()
        }
        waiting: while let event = await events.next() {
            switch event {
            case .fetched: break waiting
            case .signal(let signal) where signal == SIGINT || signal == SIGTERM:
                fetching.cancel()
                _ = await fetching.result
                Self.say("interrupted before \(program[0]) started")
                await revokeAll()
                try? await client.shutdown()
                return 128 + signal
            default: continue
            }
        }
        if case .failure(let error) = await fetching.result {
            Self.say("\(error); not starting \(program[0])")
            await revokeAll()
            try? await client.shutdown()
            return 1
        }
        do {
            try start(program)
        } catch {
            Self.say("\(error)")
            await revokeAll()
            try? await client.shutdown()
            return 127
        }
        var renewals: [Task<Void, Never>] = []
        for index in current.indices { renewals.append(renewal(index: index, credential: current[index])) }
        var code: Int32 = 0
        var killer: Task<Void, Never>?
        loop: while let event = await events.next() {
            switch event {
            case .signal(let signal):
                child?.signal(signal)
                if (signal == SIGINT || signal == SIGTERM) && !stopping {
                    stopping = true
                    // The program gets --stop-timeout seconds to exit, then SIGKILL.
                    if let running = child {
                        let timeout = stopTimeout
                        killer = Task {
                            try? await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
                            guard !Task.isCancelled else { return }
                            running.signal(SIGKILL)
                        }
                    }
                }
            case .exited(let pid, let status):
                guard pid == child?.pid || pid == -1 else { continue }  // -1: the restart failed
                code = status
                break loop
            case .replaced(let index, let credential):
                let old = current[index]
                current[index] = credential
                renewals[index].cancel()
                renewals[index] = renewal(index: index, credential: credential)
                do {
                    try writeFile()
                } catch {
                    Self.say("\(error)")
                }
                await apply(program)
                if !keepLeases { try? await client.revoke(leaseID: old.leaseID) }
            case .failed(let message):
                Self.say(message)
            case .fetched:
                continue
            }
        }
        killer?.cancel()
        for task in renewals { task.cancel() }
        await revokeAll()
        try? await client.shutdown()
        return code
    }

    private func start(_ program: [String]) throws {
        let process = try ChildProcess.spawn(program, environment: environment())
        child = process
        let sink = sink
        Task {
            let status = await process.exitCode()
            sink.yield(.exited(process.pid, status))
        }
    }

    /// Tells the program about new credentials, as `--on-change` says.
    private func apply(_ program: [String]) async {
        guard !stopping, let running = child else { return }
        switch onChange {
        case .restart:
            Self.say("credentials replaced; restarting \(program[0])")
            child = nil
            _ = await running.stop(timeout: stopTimeout)
            do {
                try start(program)
            } catch {
                Self.say("\(error)")
                sink.yield(.exited(-1, 127))
            }
        case .signal(let signal):
            Self.say("credentials replaced; sending signal \(signal) to \(program[0])")
            running.signal(signal)
        case .none:
            break
        }
    }

    private func revokeAll() async {
        guard !keepLeases else { return }
        for credential in current where !credential.leaseID.isEmpty {
            do {
                try await client.revoke(leaseID: credential.leaseID)
            } catch {
                Self.say("cannot revoke \(credential.leaseID) (it expires by itself): \(error)")
            }
        }
    }

    /// Renews at about two thirds of the TTL (±10%); when the lease cannot be renewed, or only
    /// for less than a third of its first TTL (the max TTL is near), fetches a new credential.
    private func renewal(index: Int, credential: DatabaseCredential) -> Task<Void, Never> {
        let client = client, sink = sink, path = specs[index].path
        return Task {
            let full = max(credential.leaseDuration, 1)
            var remaining = full
            while !Task.isCancelled {
                let wait = Double(remaining) * 2 / 3 * Double.random(in: 0.9...1.1)
                do {
                    try await Task.sleep(for: .milliseconds(Int(max(wait, 0.5) * 1000)))
                } catch {
                    return
                }
                var replace = remaining * 3 < full || !credential.renewable
                if !replace {
                    do {
                        remaining = try await Self.retrying("cannot renew \(credential.leaseID)",
                                                            maximumDelay: Double(full) / 6) {
                            try await client.renew(leaseID: credential.leaseID, increment: full)
                        }
                        if remaining * 3 < full { continue }  // capped: use what is left, then replace
                    } catch {
                        if Task.isCancelled { return }
                        replace = true
                        sink.yield(.failed("lease \(credential.leaseID) cannot be renewed (\(error)); fetching a new credential"))
                    }
                }
                guard replace else { continue }
                do {
                    let fresh = try await Self.retrying("cannot fetch \(path)") { try await client.databaseCredential(path) }
                    sink.yield(.replaced(index: index, fresh))
                } catch {
                    sink.yield(.failed("cannot replace the credential of \(path): \(error)"))
                }
                return
            }
        }
    }

    private func installSignalHandlers() -> [any DispatchSourceSignal] {
        let sink = sink
        return [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2].map { number in
            Foundation.signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { sink.yield(.signal(number)) }
            source.resume()
            return source
        }
    }
}
