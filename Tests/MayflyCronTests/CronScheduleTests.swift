import Foundation
import MayflyCron
import Testing

/// Cron expressions to next-fire times, with hand-checked expectations.
///
/// Calendar facts used: 2026-01-01 is a Thursday. Europe/Berlin is UTC+1 (CET) / UTC+2 (CEST),
/// springs forward on 2026-03-29 at 01:00Z (02:00 -> 03:00) and falls back on 2026-10-25 at
/// 01:00Z (03:00 -> 02:00). America/New_York is UTC-5 (EST) / UTC-4 (EDT), springs forward on
/// 2026-03-08 at 07:00Z (02:00 -> 03:00) and falls back on 2026-11-01 at 06:00Z (02:00 -> 01:00).
/// Australia/Lord_Howe is UTC+10:30 / +11 and springs forward on 2026-10-03 at 15:30Z
/// (02:00 -> 02:30); America/Santiago is UTC-4 / -3 and springs forward on 2026-09-06 at
/// 04:00Z (00:00 -> 01:00). Asia/Tokyo is UTC+9 and Asia/Kolkata UTC+5:30, without DST.
@Suite struct CronScheduleTests {
    static func date(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        guard let date = formatter.date(from: text) else { fatalError("bad test date \(text)") }
        return date
    }

    static let cases: [(String, String?, String, String)] = [
        // Every minute; strictly after, also from within a minute.
        ("* * * * *", nil, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"),
        ("* * * * *", nil, "2026-01-01T00:00:30Z", "2026-01-01T00:01:00Z"),
        ("* * * * *", nil, "2026-01-01T00:00:59.999Z", "2026-01-01T00:01:00Z"),
        // Steps, ranges, lists.
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
        ("0,30 1-2,20 * * *", nil, "2026-01-01T02:30:00Z", "2026-01-01T20:00:00Z"),
        ("0  12\t* * *", nil, "2026-01-01T00:00:00Z", "2026-01-01T12:00:00Z"),
        // Month and weekday names (any case, in ranges); 0 and 7 are Sunday.
        ("0 0 1 JAN *", nil, "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("0 0 1 JUL *", nil, "2026-01-01T00:00:00Z", "2026-07-01T00:00:00Z"),
        ("0 12 * jun-aug *", nil, "2026-01-10T00:00:00Z", "2026-06-01T12:00:00Z"),
        ("0 12 * Jun-Aug *", nil, "2026-08-31T12:00:00Z", "2027-06-01T12:00:00Z"),
        ("0 8 * * MON-FRI", nil, "2026-01-02T09:00:00Z", "2026-01-05T08:00:00Z"),
        ("0 8 * * 1-5", nil, "2026-01-02T09:00:00Z", "2026-01-05T08:00:00Z"),
        ("0 6 * * WED", nil, "2026-01-01T00:00:00Z", "2026-01-07T06:00:00Z"),
        ("0 10 * * 7", nil, "2026-01-01T00:00:00Z", "2026-01-04T10:00:00Z"),
        ("0 10 * * sun", nil, "2026-01-01T00:00:00Z", "2026-01-04T10:00:00Z"),
        ("0 10 * * 0", nil, "2026-01-04T10:00:00Z", "2026-01-11T10:00:00Z"),
        ("0 0 * * 5-7", nil, "2026-01-05T00:00:00Z", "2026-01-09T00:00:00Z"),
        ("0 0 * * 5-7", nil, "2026-01-10T00:00:00Z", "2026-01-11T00:00:00Z"),
        // Month ends, leap days, year rollover.
        ("0 0 31 * *", nil, "2026-04-01T00:00:00Z", "2026-05-31T00:00:00Z"),
        ("0 0 31 * *", nil, "2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z"),
        ("0 0 30 * *", nil, "2026-01-30T12:00:00Z", "2026-03-30T00:00:00Z"),
        ("0 0 29 2 *", nil, "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z"),
        ("0 0 29 2 *", nil, "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"),
        ("0 0 29 2 *", nil, "2097-01-01T00:00:00Z", "2104-02-29T00:00:00Z"),
        ("59 23 31 12 *", nil, "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"),
        ("*/10 * * * *", nil, "2026-12-31T23:55:00Z", "2027-01-01T00:00:00Z"),
        // Day-of-month and day-of-week: either when both are restricted.
        ("0 0 13 * FRI", nil, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
        ("0 0 13 * FRI", nil, "2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z"),
        ("0 0 13 * FRI", nil, "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z"),
        ("0 0 1 * MON", nil, "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z"),
        ("0 0 13 * *", nil, "2026-01-01T00:00:00Z", "2026-01-13T00:00:00Z"),
        ("0 0 * * 2", nil, "2026-01-01T00:00:00Z", "2026-01-06T00:00:00Z"),
        // `*/10` starts with `*`, so both must match: a Monday on the 1st, 11th, 21st or 31st.
        ("0 0 */10 * MON", nil, "2026-01-01T00:00:00Z", "2026-05-11T00:00:00Z"),
        // Macros.
        ("@hourly", nil, "2026-01-01T00:30:00Z", "2026-01-01T01:00:00Z"),
        ("@daily", nil, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
        ("@midnight", nil, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
        ("@weekly", nil, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"),
        ("@monthly", nil, "2026-01-15T00:00:00Z", "2026-02-01T00:00:00Z"),
        ("@yearly", nil, "2026-03-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("@annually", nil, "2026-03-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("@DAILY", "Europe/Berlin", "2026-06-01T00:00:00Z", "2026-06-01T22:00:00Z"),
        // @every: a fixed interval from the given instant, whatever the zone or DST.
        ("@every 90s", nil, "2026-01-01T00:00:00Z", "2026-01-01T00:01:30Z"),
        ("@every 1h30m", "Europe/Berlin", "2026-01-01T10:00:00Z", "2026-01-01T11:30:00Z"),
        ("@every 10m", "America/New_York", "2026-03-08T06:55:00Z", "2026-03-08T07:05:00Z"),
        ("@every 1s", nil, "2026-01-01T00:00:00.250Z", "2026-01-01T00:00:01.250Z"),
        // Spring forward, Europe/Berlin: a 02:30 job runs once, at 03:00 CEST.
        ("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", "2026-03-28T01:30:00Z"),
        ("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"),
        ("30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"),
        // Several skipped fixed times still run once; wildcard jobs just lose the hour.
        ("0,30 2 * * *", "Europe/Berlin", "2026-03-29T00:50:00Z", "2026-03-29T01:00:00Z"),
        ("0,30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"),
        ("*/15 2 * * *", "Europe/Berlin", "2026-03-29T00:50:00Z", "2026-03-30T00:00:00Z"),
        ("*/15 * * * *", "Europe/Berlin", "2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z"),
        ("*/15 * * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z"),
        // Spring forward, America/New_York.
        ("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"),
        ("30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"),
        ("30 * * * *", "America/New_York", "2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z"),
        // Spring forward by half an hour (Lord Howe) and at midnight (Santiago).
        ("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00Z", "2026-10-03T15:30:00Z"),
        ("0 0 * * *", "America/Santiago", "2026-09-05T12:00:00Z", "2026-09-06T04:00:00Z"),
        // Fall back, America/New_York: a 01:30 job runs once, at the first 01:30 (EDT).
        ("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z"),
        ("30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"),
        ("30 1 * * *", "America/New_York", "2026-11-01T05:45:00Z", "2026-11-02T06:30:00Z"),
        // ... while wildcard-hour jobs run in both occurrences of the repeated hour.
        ("0 * * * *", "America/New_York", "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z"),
        ("0 * * * *", "America/New_York", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"),
        ("*/30 * * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-01T06:00:00Z"),
        ("*/30 * * * *", "America/New_York", "2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z"),
        // Fall back, Europe/Berlin: the first 02:30 is CEST.
        ("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"),
        ("30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"),
        // Zones without DST, and midnight in a zone.
        ("0 9 * * *", "Asia/Tokyo", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
        ("0 9 * * *", "Asia/Tokyo", "2025-12-31T23:00:00Z", "2026-01-01T00:00:00Z"),
        ("0 0 1 1 *", "Asia/Tokyo", "2026-06-01T00:00:00Z", "2026-12-31T15:00:00Z"),
        ("0 0 * * *", "Asia/Kolkata", "2026-01-01T00:00:00Z", "2026-01-01T18:30:00Z"),
        ("0 0 * * *", "Europe/Berlin", "2026-01-01T00:00:00Z", "2026-01-01T23:00:00Z"),
        ("0 0 1 * *", "America/New_York", "2026-06-15T00:00:00Z", "2026-07-01T04:00:00Z"),
        ("0 0 * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
    ]

    @Test(arguments: cases)
    func nextFire(_ expression: String, _ zone: String?, _ after: String, _ expected: String) throws {
        let schedule = try CronSchedule(expression, timeZone: zone)
        let next = schedule.nextFire(after: Self.date(after))
        #expect(
            next == Self.date(expected),
            "\(expression) in \(zone ?? "UTC") after \(after): \(next.map { $0.ISO8601Format() } ?? "nil")")
    }

    static let invalid: [(String, String?, String)] = [
        ("61 * * * *", nil, "minute field \"61\": value 61 out of range 0-59"),
        ("0,61 * * * *", nil, "minute field \"0,61\": value 61 out of range 0-59"),
        ("* 24 * * *", nil, "hour field \"24\": value 24 out of range 0-23"),
        ("* * 0 * *", nil, "day-of-month field \"0\": value 0 out of range 1-31"),
        ("* * 32 * *", nil, "day-of-month field \"32\""),
        ("* * * 13 *", nil, "month field \"13\": value 13 out of range 1-12"),
        ("* * * FOO *", nil, "month field \"FOO\": unknown name \"FOO\""),
        ("* * * * 8", nil, "day-of-week field \"8\": value 8 out of range 0-7"),
        ("* * * * MON-FOO", nil, "day-of-week field \"MON-FOO\": unknown name \"FOO\""),
        ("* * * * FRI-SUN", nil, "day-of-week field \"FRI-SUN\": range FRI-SUN runs backwards"),
        ("*/0 * * * *", nil, "minute field \"*/0\": step must be at least 1"),
        ("*/61 * * * *", nil, "minute field \"*/61\": step 61 is larger"),
        ("* */x * * *", nil, "hour field \"*/x\": step \"x\" is not a number"),
        ("5-1 * * * *", nil, "minute field \"5-1\": range 5-1 runs backwards"),
        ("a * * * *", nil, "minute field \"a\": \"a\" is not a number"),
        ("+5 * * * *", nil, "minute field \"+5\""),
        ("1-2-3 * * * *", nil, "minute field \"1-2-3\""),
        ("1,,2 * * * *", nil, "minute field \"1,,2\": empty list item"),
        ("1, * * * *", nil, "minute field \"1,\": empty list item"),
        ("* ,1 * * *", nil, "hour field \",1\": empty list item"),
        ("* 1- * * *", nil, "hour field \"1-\": missing value"),
        ("* * L * *", nil, "day-of-month field \"L\": the L, W, # and ? extensions are not supported"),
        ("* * 15W * *", nil, "day-of-month field \"15W\""),
        ("* * ? * *", nil, "day-of-month field \"?\""),
        ("* * * * 5#3", nil, "day-of-week field \"5#3\""),
        ("* * * * 5L", nil, "day-of-week field \"5L\""),
        ("* * *", nil, "expected 5 fields (minute hour day-of-month month day-of-week), got 3"),
        ("* * * *", nil, "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
        ("0 * * * * *", nil, "got 6 (a seconds field is not supported)"),
        ("", nil, "got 0"),
        ("@fortnightly", nil, "unknown macro \"@fortnightly\""),
        ("@daily 5", nil, "@daily takes no fields"),
        ("@every", nil, "@every needs a duration like 90s, 10m, 1h30m"),
        ("@every 10x", nil, "@every needs a duration like 90s, 10m, 1h30m"),
        ("@every 10", nil, "@every needs a duration like 90s, 10m, 1h30m"),
        ("@every 1h 30m", nil, "@every needs a duration like 90s, 10m, 1h30m"),
        ("@every 0s", nil, "@every needs a duration of at least 1s"),
        ("0 3 * * *", "Mars/Base", "unknown time zone \"Mars/Base\""),
        ("0 3 * * *", "", "unknown time zone \"\""),
    ]

    @Test(arguments: invalid)
    func invalidExpressionsNameTheField(_ expression: String, _ zone: String?, _ message: String) {
        do {
            let schedule = try CronSchedule(expression, timeZone: zone)
            Issue.record("\(expression) was accepted as \(schedule)")
        } catch {
            #expect(error.message.contains(message), "\(expression): \(error.message)")
            #expect(error.description == error.message)
        }
    }

    /// Names that contain L or W are names, not the unsupported extensions.
    @Test(arguments: ["0 0 * * WED", "0 0 * JUL *", "0 0 * APR-JUL SAT", "0 0 * * wed,sat"])
    func namesAreNotMistakenForExtensions(_ expression: String) throws {
        _ = try CronSchedule(expression)
    }

    @Test(arguments: [("0 3 * * *", "Europe/Berlin"), ("30 2 * * *", "Europe/Berlin"),
                      ("30 1 * * *", "America/New_York"), ("30 2 * * *", "America/New_York")])
    func aDailyJobRunsOnceEveryDayOfTheYear(_ expression: String, _ zone: String) throws {
        let schedule = try CronSchedule(expression, timeZone: zone)
        var fires: [Date] = []
        var cursor = Self.date("2026-01-01T12:00:00Z")
        let end = Self.date("2027-01-01T12:00:00Z")
        while let next = schedule.nextFire(after: cursor), next < end {
            #expect(next > cursor)
            fires.append(next)
            cursor = next
        }
        #expect(fires.count == 365, "\(expression) in \(zone)")
        #expect(Set(fires).count == fires.count)
    }

    /// On the days the clocks change, an hourly job runs 23 and 25 times.
    @Test func anHourlyJobFollowsTheWallClockOnChangeDays() throws {
        let schedule = try CronSchedule("0 * * * *", timeZone: "America/New_York")
        func count(from: String, to: String) -> Int {
            var cursor = Self.date(from).addingTimeInterval(-1)
            var fires = 0
            while let next = schedule.nextFire(after: cursor), next < Self.date(to) {
                fires += 1
                cursor = next
            }
            return fires
        }
        // Local midnight to midnight: 05:00Z-04:00Z in March, 04:00Z-05:00Z in November.
        #expect(count(from: "2026-03-08T05:00:00Z", to: "2026-03-09T04:00:00Z") == 23)
        #expect(count(from: "2026-11-01T04:00:00Z", to: "2026-11-02T05:00:00Z") == 25)
    }

    /// A schedule that could never fire is refused, naming the field; one that fires rarely,
    /// or only through its weekday, is not.
    @Test func impossibleDatesAreRefused() throws {
        for expression in ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30-31 FEB */2"] {
            #expect(throws: CronError.self, "\(expression)") { _ = try CronSchedule(expression, timeZone: "Europe/Berlin") }
        }
        let error = #expect(throws: CronError.self) { _ = try CronSchedule("0 0 31 2 *") }
        #expect(error?.description.contains("day-of-month field \"31\"") == true && error?.description.contains("never fire") == true)
        #expect(try CronSchedule("0 0 29 2 *").nextFire(after: Self.date("2026-01-01T00:00:00Z")) == Self.date("2028-02-29T00:00:00Z"))
        #expect(try CronSchedule("0 0 30 2 MON").nextFire(after: Self.date("2026-01-01T00:00:00Z")) == Self.date("2026-02-02T00:00:00Z"),
                "both day fields restricted: a Monday in February matches")
    }

    @Test func propertiesDescriptionAndEquality() throws {
        let schedule = try CronSchedule("0 3 * * MON-FRI")
        #expect(schedule.expression == "0 3 * * MON-FRI")
        #expect(schedule.description == "0 3 * * MON-FRI")
        #expect(schedule.timeZoneIdentifier == "UTC")
        #expect(try CronSchedule("@every 1h30m").description == "@every 1h30m")
        let berlin = try CronSchedule("0 3 * * MON-FRI", timeZone: "Europe/Berlin")
        #expect(berlin.timeZoneIdentifier == "Europe/Berlin")
        #expect(schedule != berlin)
        #expect(try CronSchedule("0 3 * * MON-FRI") == schedule)
    }

    /// Over a long sweep of start times the next fire always lies ahead, falls on a whole
    /// minute, and starting anywhere between the start and that fire finds the same fire.
    @Test func nextFireIsConsistentOverALongSweep() throws {
        let schedules = try [
            CronSchedule("* * * * *"), CronSchedule("0 0 29 2 *"), CronSchedule("7-9 */6 * * *"),
            CronSchedule("30 2 * * *", timeZone: "Europe/Berlin"), CronSchedule("0 0 13 * FRI", timeZone: "America/New_York"),
            CronSchedule("*/15 * * * *", timeZone: "America/New_York"),
        ]
        var cursor = Self.date("2026-03-01T00:00:00Z")
        for index in 0..<3000 {
            let schedule = schedules[index % schedules.count]
            let next = try #require(schedule.nextFire(after: cursor), "\(schedule) after \(cursor)")
            #expect(next > cursor, "\(schedule) after \(cursor)")
            #expect(next.timeIntervalSince1970.truncatingRemainder(dividingBy: 60) == 0)
            let midway = cursor.addingTimeInterval(next.timeIntervalSince(cursor) / 2)
            #expect(schedule.nextFire(after: midway) == next, "\(schedule) after \(midway)")
            cursor.addTimeInterval(997)
        }
    }
}
