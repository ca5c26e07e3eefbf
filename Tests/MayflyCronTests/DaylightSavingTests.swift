import Foundation
import MayflyCron
import Testing

/// Checks `nextFire` around clock changes against a simulation of cron itself: a daemon that
/// wakes every minute, reads the wall clock (Foundation's calendar, not the module's own
/// arithmetic), and on a jump forward runs fixed-time jobs for every skipped minute and wildcard
/// jobs for the current one, and on a jump back runs only wildcard jobs until the clock has
/// caught up (Vixie cron and cronie).
@Suite struct DaylightSavingTests {
    struct WallTime {
        var minute: Int, hour: Int, day: Int, month: Int, weekday: Int
    }

    /// Expression, whether it is a fixed-time job (neither minute nor hour starts with `*`),
    /// and the same schedule written as a predicate.
    static let jobs: [(String, Bool, @Sendable (WallTime) -> Bool)] = [
        ("30 2 * * *", true, { $0.minute == 30 && $0.hour == 2 }),
        ("0,30 1-3 * * *", true, { [0, 30].contains($0.minute) && (1...3).contains($0.hour) }),
        ("15 0 * * *", true, { $0.minute == 15 && $0.hour == 0 }),
        ("45 23 * * *", true, { $0.minute == 45 && $0.hour == 23 }),
        ("0 0 * * SUN", true, { $0.minute == 0 && $0.hour == 0 && $0.weekday == 0 }),
        ("*/15 * * * *", false, { $0.minute % 15 == 0 }),
        ("0 * * * *", false, { $0.minute == 0 }),
        ("*/20 1-3 * * *", false, { $0.minute % 20 == 0 && (1...3).contains($0.hour) }),
    ]

    /// Zones and instants of clock changes (each checked 36 hours either side).
    static let changes: [(String, String)] = [
        ("Europe/Berlin", "2026-03-29T01:00:00Z"), ("Europe/Berlin", "2026-10-25T01:00:00Z"),
        ("America/New_York", "2026-03-08T07:00:00Z"), ("America/New_York", "2026-11-01T06:00:00Z"),
        ("Australia/Lord_Howe", "2026-04-04T15:00:00Z"), ("Australia/Lord_Howe", "2026-10-03T15:30:00Z"),
        ("America/Santiago", "2026-04-05T03:00:00Z"), ("America/Santiago", "2026-09-06T04:00:00Z"),
        ("Pacific/Apia", "2011-12-30T10:00:00Z"),  // Samoa skipped 30 December 2011 entirely
        ("Asia/Tokyo", "2026-06-01T00:00:00Z"),
    ]

    @Test(arguments: changes)
    func matchesASimulatedCronDaemon(_ zoneName: String, _ change: String) throws {
        let zone = try #require(TimeZone(identifier: zoneName))
        let center = Int64(CronScheduleTests.date(change).timeIntervalSince1970)
        let (from, to) = (center - 36 * 3600, center + 36 * 3600)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
        var cache: [Int64: WallTime] = [:]
        func wallTime(_ wallMinute: Int64) -> WallTime {
            if let known = cache[wallMinute] { return known }
            let parts = calendar.dateComponents(
                [.minute, .hour, .day, .month, .weekday], from: Date(timeIntervalSince1970: TimeInterval(wallMinute * 60)))
            let time = WallTime(
                minute: parts.minute!, hour: parts.hour!, day: parts.day!, month: parts.month!, weekday: parts.weekday! - 1)
            cache[wallMinute] = time
            return time
        }
        func wallMinute(_ instant: Int64) -> Int64 {
            (instant + Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant))))) / 60
        }

        for (expression, fixed, matches) in Self.jobs {
            // The daemon.
            var expected: [Int64] = []
            var previous = wallMinute(from)
            var highest = previous
            for instant in stride(from: from + 60, through: to, by: 60) {
                let wall = wallMinute(instant)
                let runs: Bool
                if wall > previous + 1 {
                    runs = fixed ? (previous + 1...wall).contains { matches(wallTime($0)) } : matches(wallTime(wall))
                } else if wall <= highest {
                    runs = !fixed && matches(wallTime(wall))
                } else {
                    runs = matches(wallTime(wall))
                }
                if runs { expected.append(instant) }
                previous = wall
                highest = max(highest, wall)
            }
            // The schedule.
            let schedule = try CronSchedule(expression, timeZone: zoneName)
            var actual: [Int64] = []
            var cursor = Date(timeIntervalSince1970: TimeInterval(from))
            while let next = schedule.nextFire(after: cursor), next.timeIntervalSince1970 <= TimeInterval(to) {
                actual.append(Int64(next.timeIntervalSince1970))
                cursor = next
            }
            #expect(actual == expected, "\(expression) in \(zoneName) around \(change)")
        }
    }
}
