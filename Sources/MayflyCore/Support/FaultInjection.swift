import Foundation

/// Crash points for fault tests, in the spirit of PostgreSQL's injection points: when the
/// environment variable `MAYFLY_FAULT` names a point, the process kills itself with SIGKILL
/// there, so tests can prove that restarts recover (e.g. between writing a lease and
/// creating its role). Unset in normal operation; costs one dictionary lookup.
enum FaultInjection {
    private static let active = ProcessInfo.processInfo.environment["MAYFLY_FAULT"]

    static func point(_ name: String) {
        if active == name { kill(getpid(), SIGKILL) }
    }
}
