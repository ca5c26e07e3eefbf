import Foundation
import Glibc
import Testing

/// Runs helper programs for the tests (openssl, a second `mayfly`, the README's commands).
enum ChildRun {
    /// Whether process `pid` has exited: gone, or a zombie nobody reaped yet. Foundation's
    /// `Process` can miss a child's exit when many run at once (its `isRunning` then stays true
    /// and `waitUntilExit` spins for ever on the thread that called it), so waits ask the kernel.
    static func hasExited(_ pid: pid_t) -> Bool {
        if kill(pid, 0) != 0 { return errno == ESRCH }
        // /proc files report size 0, so they are read with read(2), not Foundation.
        let fd = open("/proc/\(pid)/stat", O_RDONLY)
        guard fd >= 0 else { return errno == ENOENT }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 1024)
        let count = read(fd, &bytes, bytes.count)
        guard count > 0 else { return false }
        let stat = String(decoding: bytes[0..<count], as: UTF8.self)
        guard let end = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: end)...].trimmingCharacters(in: .whitespaces).prefix(1)
        return state == "Z" || state == "X"
    }

    /// Runs `script` with /bin/sh and waits for it on a thread of its own; records an issue
    /// when it fails (`what` names it).
    static func shell(_ script: String, what: String) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        try process.runSerialized()
        #expect(await exit(of: process, timeout: .seconds(600)) == 0, "\(what) failed")
    }

    /// Waits until `process` has exited, polling the kernel (see `hasExited`) between sleeps, so
    /// no thread of the cooperative pool is held meanwhile (see `OwnThread`); kills it after
    /// `timeout`. Its exit status.
    @discardableResult
    static func exit(of process: Process, timeout: Duration = .seconds(60)) async -> Int32 {
        let pid = process.processIdentifier
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, !hasExited(pid) {
            if ContinuousClock.now >= deadline { kill(pid, SIGKILL) }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return exitStatus(process)
    }

    /// Runs `process` (its executable, arguments and directory set) with standard output and
    /// error going to a fresh file, until it exits or `timeout` passes (then it is killed);
    /// returns its status and output. `timedOut` is told when it had to be killed.
    static func toExit(_ process: Process, timeout: Duration = .seconds(60), timedOut: () -> Void = {}) async throws
        -> (status: Int32, output: String)
    {
        let outputPath = "/tmp/mf-child-\(UUID().uuidString.prefix(8)).log"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        defer { try? output.close() }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = output
        try process.runSerialized()
        let started = ContinuousClock.now
        let status = await exit(of: process, timeout: timeout)
        if ContinuousClock.now - started >= timeout { timedOut() }
        return (status, (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
    }

    /// The exit status of a process that has exited: Foundation's, or, when Foundation missed
    /// the exit (see `hasExited`), the kernel's, reaping the zombie.
    static func exitStatus(_ process: Process) -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        var status: Int32 = 0
        if waitpid(process.processIdentifier, &status, 0) == process.processIdentifier {
            return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        }
        // Foundation reaped it meanwhile: its status arrives in a moment.
        for _ in 0..<100 where process.isRunning { usleep(10_000) }
        return process.isRunning ? -1 : process.terminationStatus
    }
}

extension Process {
    /// One launch at a time: Foundation's `run()` is not safe to call from several threads at
    /// once here (a full test run crashed inside it, in a `memcpy`, while tests started
    /// children side by side), so every launch in the tests goes through this lock.
    func runSerialized() throws {
        try Process.launchLock.withLock { try run() }
    }

    private static let launchLock = NSLock()
}
