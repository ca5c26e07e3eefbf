import Foundation
import MayflyCron
import Testing

/// Cron expressions to next-fire times (issue 6, point 1), with hand-checked expectations.
/// 2026-01-01 is a Thursday; Europe/Berlin is UTC+1 (CET) / +2 (CEST) and springs forward
/// on 2026-03-29 at 01:00Z; America/New_York is UTC-5 (EST) / -4 (EDT), springs forward on
/// 2026-03-08 at 07:00Z and falls back on 2026-11-01 at 06:00Z.
@Suite struct CronScheduleTests {
    static func date(_ text: String) -> Date {
        var parts = tm()
        let fields = text.split(whereSeparator: { "-T:Z".contains($0) }).compactMap { Int32($0) }
        parts.tm_year = fields[0] - 1900
        parts.tm_mon = fields[1] - 1
        parts.tm_mday = fields[2]
        parts.tm_hour = fields[3]
        parts.tm_min = fields[4]
        parts.tm_sec = fields[5]
        return Date(timeIntervalSince1970: TimeInterval(timegm(&parts)))
    }

    static let cases: [(String, String?, String, String)] = [
        // Every minute, steps, ranges, lists.
        ("* * * * *", nil, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"),
        ("* * * * *", nil, "2026-01-01T00:00:30Z", "2026-01-01T00:01:00Z"),
        ("*/5 * * * *", nil, "2026-01-01T00:03:00Z", "2026-01-01T00:05:00Z"),
        ("*/5 * * * *", nil, "2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z"),
        ("*/5 * * * *", nil, "2026-01-01T23:57:00Z", "2026-01-02T00:00:00Z"),
        ("10-50/20 * * * *", nil, "2026-01-01T00:11:00Z", "2026-01-01T00:30:00Z"),
        ("10-50/20 * * * *", nil, "2026-01-01T00:50:00Z", "2026-01-01T01:10:00Z"),
        ("5/15 * * * *", nil, "2026-01-01T00:06:00Z", "2026-01-01T00:20:00Z"),
        ("5/15 * * * *", nil, "2026-01-01T00:51:00Z", "2026-01-01T01:05:00Z"),
        ("0 9-17 * * *", nil, "2026-01-01T17:30:00Z", "2026-01-02T09:00:00Z"),
        ("0 9-17/4 * * *", nil, "2026-01-01T10:00:00Z", "2026-01-01T13:00:00Z"),
        ("15,45 3,15 * * *", nil, "2026-01-01T03:20:00Z", "2026-01-01T03:45:00Z"),
        ("15,45 3,15 * * *", nil, "2026-01-01T15:45:00Z", "2026-01-02T03:15:00Z"),
        ("0  12\t* * *", nil, "2026-01-01T00:00:00Z", "2026-01-01T12:00:00Z"),
        // Month and weekday names, 7 = Sunday.
        ("0 0 1 JAN *", nil, "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("0 12 * jun-aug *", nil, "2026-01-10T00:00:00Z", "2026-06-01T12:00:00Z"),
        ("0 8 * * MON-FRI", nil, "2026-01-02T09:00:00Z", "2026-01-05T08:00:00Z"),
        ("0 8 * * 1-5", nil, "2026-01-02T09:00:00Z", "2026-01-05T08:00:00Z"),
        ("0 10 * * 7", nil, "2026-01-01T00:00:00Z", "2026-01-04T10:00:00Z"),
        ("0 10 * * sun", nil, "2026-01-01T00:00:00Z", "2026-01-04T10:00:00Z"),
        ("0 10 * * 0", nil, "2026-01-04T10:00:00Z", "2026-01-11T10:00:00Z"),
        // Month ends, leap days, year rollover.
        ("0 0 31 * *", nil, "2026-04-01T00:00:00Z", "2026-05-31T00:00:00Z"),
        ("0 0 31 * *", nil, "2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z"),
        ("0 0 30 * *", nil, "2026-01-30T12:00:00Z", "2026-03-30T00:00:00Z"),
        ("0 0 29 2 *", nil, "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z"),
        ("0 0 29 2 *", nil, "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"),
        ("59 23 31 12 *", nil, "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"),
        // Day-of-month and day-of-week: either when both are restricted.
        ("0 0 13 * FRI", nil, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
        ("0 0 13 * FRI", nil, "2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z"),
        ("0 0 13 * FRI", nil, "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z"),
        ("0 0 13 * *", nil, "2026-01-01T00:00:00Z", "2026-01-13T00:00:00Z"),
        ("0 0 * * 2", nil, "2026-01-01T00:00:00Z", "2026-01-06T00:00:00Z"),
        // `*/10` starts with `*`, so (as in cron) both fields must match: a Monday on the 1st, 11th, 21st or 31st.
        ("0 0 */10 * MON", nil, "2026-01-01T00:00:00Z", "2026-05-11T00:00:00Z"),
        // Macros.
        ("@hourly", nil, "2026-01-01T00:30:00Z", "2026-01-01T01:00:00Z"),
        ("@daily", nil, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
        ("@midnight", nil, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
        ("@weekly", nil, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"),
        ("@monthly", nil, "2026-01-15T00:00:00Z", "2026-02-01T00:00:00Z"),
        ("@yearly", nil, "2026-03-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("@annually", nil, "2026-03-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("@every 90s", nil, "2026-01-01T00:00:00Z", "2026-01-01T00:01:30Z"),
        ("@every 1h30m", "Europe/Berlin", "2026-01-01T10:00:00Z", "2026-01-01T11:30:00Z"),
        // Spring forward: a 02:30 job runs once, at 03:00; wildcard-hour jobs skip the gap.
        ("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", "2026-03-28T01:30:00Z"),
        ("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"),
        ("30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"),
        ("*/15 2 * * *", "Europe/Berlin", "2026-03-29T00:50:00Z", "2026-03-29T01:00:00Z"),
        ("*/15 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"),
        ("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"),
        ("30 * * * *", "America/New_York", "2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z"),
        // Fall back: a 01:30 job runs once, at the first 01:30; wildcard-hour jobs run in both.
        ("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z"),
        ("30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"),
        ("0 * * * *", "America/New_York", "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z"),
        ("0 * * * *", "America/New_York", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"),
        // Zones without DST, and midnight in a zone.
        ("0 9 * * *", "Asia/Tokyo", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
        ("0 9 * * *", "Asia/Tokyo", "2025-12-31T23:00:00Z", "2026-01-01T00:00:00Z"),
        ("0 0 * * *", "Europe/Berlin", "2026-01-01T00:00:00Z", "2026-01-01T23:00:00Z"),
        ("0 0 1 * *", "America/New_York", "2026-06-15T00:00:00Z", "2026-07-01T04:00:00Z"),
    ]

    @Test(arguments: cases)
    func nextFire(_ expression: String, _ zone: String?, _ after: String, _ expected: String) throws {
        let schedule = try CronSchedule(expression, timeZone: zone)
        #expect(schedule.nextFire(after: Self.date(after)) == Self.date(expected),
                "\(expression) in \(zone ?? "UTC") after \(after)")
    }

    static let invalid: [(String, String?, String)] = [
        ("61 * * * *", nil, "minute field \"61\": value 61 out of range 0-59"),
        ("* 24 * * *", nil, "hour field"),
        ("* * 0 * *", nil, "day-of-month field"),
        ("* * 32 * *", nil, "day-of-month field"),
        ("* * * 13 *", nil, "month field"),
        ("* * * FOO *", nil, "month field \"FOO\": unknown name \"FOO\""),
        ("* * * * 8", nil, "day-of-week field"),
        ("* * * * MON-FOO", nil, "day-of-week field \"MON-FOO\": unknown name \"FOO\""),
        ("*/0 * * * *", nil, "minute field \"*/0\": step must be at least 1"),
        ("*/61 * * * *", nil, "minute field"),
        ("5-1 * * * *", nil, "minute field \"5-1\": range 5-1 runs backwards"),
        ("a * * * *", nil, "minute field \"a\""),
        ("1,,2 * * * *", nil, "minute field \"1,,2\": empty list item"),
        ("1, * * * *", nil, "minute field"),
        ("* * L * *", nil, "day-of-month field \"L\""),
        ("* * * * 5#3", nil, "day-of-week field"),
        ("* * *", nil, "expected 5 fields (minute hour day-of-month month day-of-week), got 3"),
        ("* * * * * *", nil, "got 6"),
        ("", nil, "got 0"),
        ("@fortnightly", nil, "unknown macro \"@fortnightly\""),
        ("@daily 5", nil, "@daily takes no fields"),
        ("@every", nil, "@every needs a duration"),
        ("@every 0s", nil, "@every needs a duration"),
        ("@every 10x", nil, "@every needs a duration"),
        ("0 3 * * *", "Mars/Base", "unknown time zone \"Mars/Base\""),
    ]

    @Test(arguments: invalid)
    func invalidExpressionsNameTheField(_ expression: String, _ zone: String?, _ message: String) {
        do {
            _ = try CronSchedule(expression, timeZone: zone)
            Issue.record("\(expression) was accepted")
        } catch {
            #expect(error.message.contains(message), "\(expression): \(error.message)")
        }
    }

    @Test(arguments: ["0 3 * * *", "30 2 * * *", "30 1 * * *"])
    func aDailyJobRunsOnceEveryDayOfTheYearAcrossBothDSTChanges(_ expression: String) throws {
        for zone in ["Europe/Berlin", "America/New_York"] {
            let schedule = try CronSchedule(expression, timeZone: zone)
            var fires: [Date] = []
            var cursor = Self.date("2026-01-01T12:00:00Z")
            let end = Self.date("2027-01-01T12:00:00Z")
            while let next = schedule.nextFire(after: cursor), next < end {
                fires.append(next)
                cursor = next
            }
            #expect(fires.count == 365, "\(expression) in \(zone)")
            #expect(Set(fires).count == fires.count)
        }
    }

    @Test func impossibleDatesHaveNoNextFire() throws {
        #expect(try CronSchedule("0 0 30 2 *").nextFire(after: Self.date("2026-01-01T00:00:00Z")) == nil)
    }
}
