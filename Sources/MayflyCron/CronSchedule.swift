public import Foundation

/// A cron schedule and its next fire time.
///
/// Syntax: five fields `minute hour day-of-month month day-of-week` with `*`, numbers, lists
/// (`1,15`), ranges (`1-5`), steps (`*/5`, `10-50/20`, and `5/15` meaning `5-59/15`), month
/// names `JAN`-`DEC` and weekday names `SUN`-`SAT` (any case, also in ranges), and 0 or 7 for
/// Sunday; the macros `@hourly @daily @midnight @weekly @monthly @yearly @annually`; or
/// `@every <duration>` (`90s`, `10m`, `1h30m`), which fires that long after the given instant,
/// whatever the zone. `L`, `W`, `#` and `?` are refused.
///
/// Fields are matched on the wall clock of an IANA zone (UTC by default), as cron does:
/// - when day-of-month and day-of-week are both restricted (neither starts with `*`), a day
///   matches if either does; otherwise both must (the `*` one matches every day);
/// - a *wildcard* job is one whose minute or hour field starts with `*` (`*/15 * * * *`,
///   `0 * * * *`, `* 2 * * *`); any other is a *fixed-time* job (`30 2 * * *`, `0,30 1-3 * * *`);
/// - spring forward: a fixed-time job whose wall time is skipped runs once, at the end of the
///   gap (a 02:30 job runs at 03:00; several skipped times still give one run); a wildcard job
///   has no runs in the skipped hour;
/// - fall back: a fixed-time job runs once, at the first occurrence of a repeated time; a
///   wildcard job runs in both occurrences of the repeated hour, as the wall clock shows them.
///
/// These are the rules of Vixie cron and cronie, except that a skipped stretch of any length
/// counts as a gap (cron treats a jump of more than a few hours as a clock reset and skips it).
public struct CronSchedule: Sendable, Equatable, CustomStringConvertible {
    /// The expression as given.
    public let expression: String
    /// The IANA zone the fields are matched in; `UTC` by default.
    public let timeZoneIdentifier: String
    private let rule: Rule
    private let zone: TimeZone

    private enum Rule: Sendable {
        case fields(minute: CronField, hour: CronField, day: CronField, month: CronField, weekday: CronField)
        case every(CronDuration)
    }

    /// How far ahead `nextFire` looks: eight years, enough for `0 0 29 2 *` across 2100.
    static let horizonDays: Int64 = 8 * 366

    public var description: String { expression }

    /// Parses `expression`; `timeZone` is an IANA name such as `Europe/Berlin` (UTC when nil).
    public init(_ expression: String, timeZone: String? = nil) throws(CronError) {
        self.expression = expression
        let zoneName = timeZone ?? "UTC"
        guard !zoneName.isEmpty, let zone = TimeZone(identifier: zoneName) else {
            throw CronError("unknown time zone \"\(zoneName)\"")
        }
        self.zone = zone
        timeZoneIdentifier = zoneName

        var words = expression.split(whereSeparator: \.isWhitespace).map(String.init)
        if let macro = words.first, macro.hasPrefix("@") {
            let expansion: String
            switch macro.lowercased() {
            case "@yearly", "@annually": expansion = "0 0 1 1 *"
            case "@monthly": expansion = "0 0 1 * *"
            case "@weekly": expansion = "0 0 * * 0"
            case "@daily", "@midnight": expansion = "0 0 * * *"
            case "@hourly": expansion = "0 * * * *"
            case "@every":
                guard words.count == 2, let duration = try? CronDuration(words[1]) else {
                    throw CronError("@every needs a duration like 90s, 10m, 1h30m")
                }
                guard duration.seconds >= 1 else { throw CronError("@every needs a duration of at least 1s") }
                rule = .every(duration)
                return
            default:
                throw CronError(
                    "unknown macro \"\(macro)\" (use @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually or @every <duration>)"
                )
            }
            guard words.count == 1 else { throw CronError("\(macro) takes no fields") }
            words = expansion.split(separator: " ").map(String.init)
        }
        guard words.count == 5 else {
            let hint = words.count == 6 ? " (a seconds field is not supported)" : ""
            throw CronError("expected 5 fields (minute hour day-of-month month day-of-week), got \(words.count)\(hint)")
        }
        let day = try CronField(words[2], .dayOfMonth), month = try CronField(words[3], .month)
        let weekday = try CronField(words[4], .dayOfWeek)
        // Unless the weekday alone can match (both day fields restricted), some month must have
        // one of the days (February counts 29): `0 0 30 2 *` would never fire.
        if day.isStar || weekday.isStar {
            let longest = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
            guard month.values.contains(where: { m in day.values.contains { $0 <= longest[m - 1] } }) else {
                throw CronError("day-of-month field \"\(words[2])\": no month of the month field has that day, so the schedule would never fire")
            }
        }
        rule = .fields(
            minute: try CronField(words[0], .minute), hour: try CronField(words[1], .hour),
            day: day, month: month, weekday: weekday)
    }

    public static func == (lhs: CronSchedule, rhs: CronSchedule) -> Bool {
        lhs.expression == rhs.expression && lhs.timeZoneIdentifier == rhs.timeZoneIdentifier
    }

    /// The first fire time strictly after `date`; nil when none falls within eight years (only
    /// near the end of representable time: impossible dates are refused by `init`). Fire times
    /// of field schedules are whole minutes.
    public func nextFire(after date: Date) -> Date? {
        let seconds = date.timeIntervalSince1970
        guard seconds.isFinite, abs(seconds) < 1e13 else { return nil }
        switch rule {
        case .every(let interval):
            return date.addingTimeInterval(TimeInterval(interval.seconds))
        case .fields(let minute, let hour, let day, let month, let weekday):
            let after = Int64(seconds.rounded(.down))
            // Start a local day early: around a change of offset, the previous day's wall times
            // can fall after `date`.
            let local = after + Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(after))))
            let first = CivilCalendar.floorDiv(local, 86400) - 1
            let last = first + Self.horizonDays
            let either = !day.isStar && !weekday.isStar
            let wildcard = minute.isStar || hour.isStar
            var (y, m, d) = CivilCalendar.civil(first)
            while true {
                let monthStart = CivilCalendar.dayNumber(year: y, month: m, day: 1)
                guard monthStart <= last else { return nil }
                if month.contains(m) {
                    for dayOfMonth in d...CivilCalendar.daysIn(year: y, month: m) {
                        let dayNumber = monthStart + Int64(dayOfMonth - 1)
                        let byDate = day.contains(dayOfMonth)
                        let byWeekday = weekday.contains(CivilCalendar.weekday(dayNumber))
                        guard either ? byDate || byWeekday : byDate && byWeekday else { continue }
                        if let instant = firstFire(
                            on: dayNumber, after: after, hours: hour.values, minutes: minute.values, wildcard: wildcard)
                        {
                            return Date(timeIntervalSince1970: TimeInterval(instant))
                        }
                    }
                }
                d = 1
                (y, m) = m == 12 ? (y + 1, 1) : (y, m + 1)
            }
        }
    }

    /// The earliest instant after `after` at which the job fires for the local day `dayNumber`.
    private func firstFire(on dayNumber: Int64, after: Int64, hours: [Int], minutes: [Int], wildcard: Bool) -> Int64? {
        let dayStart = dayNumber * 86400
        let offsets = ZoneOffsets(zone, from: dayStart - 86400, to: dayStart + 2 * 86400)
        if let offset = offsets.fixed {
            guard dayStart + 86340 - offset > after else { return nil }
            for h in hours {
                let hourStart = dayStart + Int64(h * 3600) - offset
                guard hourStart + 3540 > after else { continue }
                for m in minutes where hourStart + Int64(m * 60) > after {
                    return hourStart + Int64(m * 60)
                }
            }
            return nil
        }
        // The offset changes near this day: resolve every wall time and keep the earliest.
        var best = Int64.max
        for h in hours {
            for m in minutes {
                let wall = dayStart + Int64(h * 3600 + m * 60)
                var candidate: Int64?
                if let found = offsets.instants(wall) {
                    // Repeated times: fixed-time jobs only at the first, wildcard jobs at both.
                    candidate = found.first > after ? found.first : (wildcard && found.last > after ? found.last : nil)
                } else if !wildcard, let end = offsets.gapEnd(wall), end > after {
                    // Skipped times: fixed-time jobs run once when the gap ends.
                    candidate = end
                }
                if let candidate, candidate < best { best = candidate }
            }
        }
        return best == .max ? nil : best
    }
}
