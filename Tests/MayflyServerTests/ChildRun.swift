import Foundation
import Glibc
import MayflyRun
import Testing

/// Runs helper programs for the tests (openssl, a second `mayfly`, the README's commands) as
/// `ChildProcess`es: never with Foundation's `Process`, whose `run()` can crash a process with
/// many descriptors open (see `ChildProcess`), and never blocking a thread while they run: the
/// cooperative pool has as many threads as cores (two here) and every test in the process
/// shares it, so one blocking wait stalls them all (a test polling a server with a deadline
/// then fails for time it never got to run).
enum ChildRun {
    /// The test process's environment, which children get unless told otherwise.
    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// Runs `script` with /bin/sh and waits for it; records an issue when it fails (`what`
    /// names it).
    static func shell(_ script: String, what: String) async throws {
        let (status, output) = try await toExit(["/bin/sh", "-c", script], timeout: .seconds(600))
        #expect(status == 0, "\(what) failed: \(output.suffix(2000))")
    }

    /// Runs `arguments` (in `directory`, with `environment`, standard input empty) with its
    /// standard output and error going to one fresh file, until it exits or `timeout` passes
    /// (then it is killed, and `timedOut` is told); its status and output.
    static func toExit(_ arguments: [String], directory: String? = nil, environment: [String: String] = environment,
                       timeout: Duration = .seconds(60), timedOut: () -> Void = {}) async throws
        -> (status: Int32, output: String)
    {
        let outputPath = "/tmp/mf-child-\(UUID().uuidString.prefix(8)).log"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let child = try ChildProcess.spawn(arguments, environment: environment, directory: directory,
                                           input: "/dev/null", output: outputPath, errors: outputPath)
        let started = ContinuousClock.now
        let status = await child.exitCode(killingAfter: timeout)
        if ContinuousClock.now - started >= timeout { timedOut() }
        return (status, (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
    }
}
