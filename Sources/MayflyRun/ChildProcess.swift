public import Foundation
import Synchronization

/// A child process started with `posix_spawnp` (so no file descriptor of ours but the three
/// standard ones is inherited), whose exit a dedicated thread waits for with `waitpid`.
///
/// The server and the tests start children with this, not with Foundation's `Process`: on Linux, Swift
/// 6.3's `Process.run()` reads `/proc/self/fd` with a struct copy that can run past glibc's
/// buffer and crash the parent (swift-corelibs-foundation PR 5472), the more likely the more
/// descriptors are open — a server's or a test run's case.
public final class ChildProcess: Sendable {
    /// The child's process id.
    public let pid: pid_t
    private let state = Mutex<(status: Int32?, waiters: [CheckedContinuation<Int32, Never>])>((nil, []))

    private init(pid: pid_t) {
        self.pid = pid
    }

    struct SpawnError: Error, CustomStringConvertible {
        let description: String
    }

    /// Starts `arguments[0]` (a path, or a name looked up in PATH) with exactly `environment`.
    /// `directory`: its working directory (nil: ours). `input`: a file read as its standard
    /// input (nil: ours). `output` and `errors`: files its standard output and error are
    /// appended to (created with mode 0600; the same path for both interleaves them; nil: ours).
    public static func spawn(_ arguments: [String], environment: [String: String], directory: String? = nil,
                             input: String? = nil, output: String? = nil, errors: String? = nil) throws -> ChildProcess
    {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The child starts with default signal handling, whatever we ignore.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        if let input { posix_spawn_file_actions_addopen(&actions, 0, input, O_RDONLY, 0) }
        if let output { posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_APPEND | O_CREAT, 0o600) }
        if let errors {
            if errors == output {
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
            } else {
                posix_spawn_file_actions_addopen(&actions, 2, errors, O_WRONLY | O_APPEND | O_CREAT, 0o600)
            }
        }
        if let directory {
            typealias ChangeDirectory = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
            guard let symbol = dlsym(nil, "posix_spawn_file_actions_addchdir_np"),
                unsafeBitCast(symbol, to: ChangeDirectory.self)(&actions, directory) == 0
            else { throw SpawnError(description: "cannot start \(arguments[0]) in \(directory): this C library cannot set a child's directory") }
        }
        // Close every descriptor of ours above stderr in the child (sockets to the broker:
        // SwiftNIO does not open them close-on-exec).
        Self.closeInheritedDescriptors(&actions)

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw SpawnError(description: "cannot start \(arguments[0]): \(String(cString: strerror(result)))")
        }
        let child = ChildProcess(pid: pid)
        let childPID = pid
        let thread = Thread {
            var status: Int32 = 0
            while waitpid(childPID, &status, 0) < 0 && errno == EINTR {}
            // Exit code, or 128 + the signal that killed it (as shells report it).
            let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            let waiters = child.state.withLock { state -> [CheckedContinuation<Int32, Never>] in
                state.status = code
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(returning: code) }
        }
        thread.start()
        return child
    }

    /// Sends `signal` to the child (ignored once it has exited).
    public func signal(_ signal: Int32) {
        guard state.withLock({ $0.status == nil }) else { return }
        kill(pid, signal)
    }

    /// The exit code if the child has exited (128 + signal when a signal ended it), else nil.
    public var exitStatus: Int32? { state.withLock { $0.status } }

    /// Whether the child has not exited yet.
    public var isRunning: Bool { exitStatus == nil }

    /// The exit code once the child has exited (128 + signal when a signal ended it).
    public func exitCode() async -> Int32 {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Int32? in
                if let status = state.status { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    /// The exit code once the child has exited, SIGKILLing it if it still runs after `timeout`.
    public func exitCode(killingAfter timeout: Duration) async -> Int32 {
        let killer = Task {
            try await Task.sleep(for: timeout)
            self.signal(SIGKILL)
        }
        let code = await exitCode()
        killer.cancel()
        return code
    }

    /// SIGTERM, then SIGKILL if it has not exited after `timeout` seconds; returns its exit code.
    public func stop(timeout: Double) async -> Int32 {
        signal(SIGTERM)
        return await exitCode(killingAfter: .milliseconds(Int(timeout * 1000)))
    }
}

extension ChildProcess {
    /// Makes the spawned child close every descriptor above stderr: glibc's
    /// `posix_spawn_file_actions_addclosefrom_np` (2.34+, done in the child, so a descriptor
    /// another thread opens meanwhile is closed too; looked up at run time because Swift's Glibc
    /// module does not declare it), else each descriptor open now.
    public static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np"),
            unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3) == 0
        {
            return
        }
        for descriptor in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.compactMap({ Int32($0) }) ?? []
        where descriptor > 2 && fcntl(descriptor, F_GETFD) >= 0 {
            posix_spawn_file_actions_addclose(&actions, descriptor)
        }
    }
}
