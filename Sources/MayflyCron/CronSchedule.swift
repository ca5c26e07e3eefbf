public import Foundation

/// A cron schedule: five fields (minute hour day-of-month month day-of-week) with lists,
/// ranges, steps and month/weekday names, the macros `@hourly @daily @midnight @weekly
/// @monthly @yearly @annually`, or `@every <duration>`. Fields are matched on the wall clock
/// of an IANA time zone (UTC by default), with cron's rules:
/// - day-of-month and day-of-week both restricted: a day matches if either matches;
/// - daylight saving gap (spring forward): a job whose hour is fixed and whose time does not
///   exist that day runs once, at the end of the gap (a 02:30 job runs at 03:00); jobs with a
///   `*` hour simply have no runs in the missing hour;
/// - repeated hour (fall back): a job whose hour is fixed runs once, at the first
///   occurrence; jobs with a `*` hour run in both occurrences, as the wall clock says.
public struct CronSchedule: Sendable, Equatable, CustomStringConvertible {
    /// The expression as given.
    public let expression: String
    /// The zone the fields are read in.
    public let timeZoneIdentifier: String
    private let kind: Kind
    private let zone: TimeZone

    private enum Kind: Sendable, Equatable {
        case fields(minute: CronField, hour: CronField, day: CronField, month: CronField, weekday: CronField)
        case every(seconds: Int64)
    }

    /// How far ahead `nextFire` looks before concluding that nothing matches (e.g. `0 0 30 2 *`).
    static let horizonDays = 366 * 8

    public var description: String { expression }

    /// Parses `expression`; `timeZone` is an IANA name such as `Europe/Berlin` (UTC when nil).
    public init(_ expression: String, timeZone: String? = nil) throws(CronError) {
        let text = expression.trimmingCharacters(in: .whitespaces)
        self.expression = text
        let zoneName = timeZone ?? "UTC"
        guard let zone = TimeZone(identifier: zoneName) else { throw CronError("unknown time zone \"\(zoneName)\"") }
        self.zone = zone
        timeZoneIdentifier = zoneName
        var fieldsText = text
        if text.hasPrefix("@") {
            let parts = text.split(separator: " ", omittingEmptySubsequences: true)
            switch parts.first.map(String.init)?.lowercased() {
            case "@yearly", "@annually": fieldsText = "0 0 1 1 *"
            case "@monthly": fieldsText = "0 0 1 * *"
            case "@weekly": fieldsText = "0 0 * * 0"
            case "@daily", "@midnight": fieldsText = "0 0 * * *"
            case "@hourly": fieldsText = "0 * * * *"
            case "@every":
                guard parts.count == 2, let seconds = Self.duration(String(parts[1])), seconds >= 1 else {
                    throw CronError("@every needs a duration of at least 1s, like 90s, 10m or 1h30m")
                }
                kind = .every(seconds: seconds)
                return
            default:
                throw CronError("unknown macro \"\(parts.first ?? "")\" (use @hourly, @daily, @weekly, @monthly, @yearly or @every <duration>)")
            }
            guard parts.count == 1 else { throw CronError("\(parts[0]) takes no fields") }
        }
        let fields = fieldsText.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw CronError("expected 5 fields (minute hour day-of-month month day-of-week), got \(fields.count)")
        }
        kind = .fields(
            minute: try CronField(fields[0], .minute), hour: try CronField(fields[1], .hour),
            day: try CronField(fields[2], .dayOfMonth), month: try CronField(fields[3], .month),
            weekday: try CronField(fields[4], .dayOfWeek))
    }

    public static func == (lhs: CronSchedule, rhs: CronSchedule) -> Bool {
        lhs.expression == rhs.expression && lhs.timeZoneIdentifier == rhs.timeZoneIdentifier
    }

    /// Go-style durations: `90s`, `10m`, `1h30m` (h, m, s; whole numbers).
    static func duration(_ text: String) -> Int64? {
        var total: Int64 = 0
        var number: Int64?
        for character in text {
            if let digit = character.wholeNumberValue, character.isASCII {
                number = (number ?? 0) * 10 + Int64(digit)
                guard number! < 1_000_000_000 else { return nil }
                continue
            }
            guard let value = number else { return nil }
            switch character {
            case "h": total += value * 3600
            case "m": total += value * 60
            case "s": total += value
            default: return nil
            }
            number = nil
        }
        guard number == nil, !text.isEmpty else { return nil }
        return total
    }

    // MARK: Next fire

    /// The first fire time strictly after `date`, or nil when none falls within eight years.
    public func nextFire(after date: Date) -> Date? {
        let after = Int64(date.timeIntervalSince1970.rounded(.down))
        switch kind {
        case .every(let seconds):
            return Date(timeIntervalSince1970: TimeInterval(after + seconds))
        case .fields(let minute, let hour, let day, let month, let weekday):
            let minutes = minute.values, hours = hour.values
            // Start a day early: near a transition, a late candidate of the previous local day
            // can fall after `date`.
            let startDay = Self.floorDiv(after + Int64(zone.secondsFromGMT(for: date)), 86400) - 1
            for dayNumber in startDay...(startDay + Int64(Self.horizonDays)) {
                let (y, m, d) = Self.civil(dayNumber)
                guard month.contains(m) else { continue }
                let weekdayNumber = Int(Self.floorMod(dayNumber + 4, 7))  // 1970-01-01 was a Thursday
                let dayMatches = day.restricted && weekday.restricted
                    ? day.contains(d) || weekday.contains(weekdayNumber)
                    : day.contains(d) && weekday.contains(weekdayNumber)
                guard dayMatches, d <= Self.daysIn(year: y, month: m) else { continue }
                let dayStart = dayNumber * 86400
                if let fixed = fixedOffset(from: dayStart - 2 * 86400, to: dayStart + 2 * 86400) {
                    for h in hours {
                        for mm in minutes {
                            let instant = dayStart + Int64(h * 3600 + mm * 60) - fixed
                            if instant > after { return Date(timeIntervalSince1970: TimeInterval(instant)) }
                        }
                    }
                    continue
                }
                // A transition near this day: resolve each wall time and take the earliest.
                var best: Int64?
                for h in hours {
                    for mm in minutes {
                        for instant in resolve(dayStart + Int64(h * 3600 + mm * 60), fixedHour: hour.restricted)
                        where instant > after && instant < (best ?? Int64.max) {
                            best = instant
                        }
                    }
                }
                if let best { return Date(timeIntervalSince1970: TimeInterval(best)) }
            }
            return nil
        }
    }

    /// The zone's UTC offset if it does not change between the two instants.
    private func fixedOffset(from start: Int64, to end: Int64) -> Int64? {
        let startDate = Date(timeIntervalSince1970: TimeInterval(start))
        if let transition = zone.nextDaylightSavingTimeTransition(after: startDate),
            transition.timeIntervalSince1970 <= TimeInterval(end)
        {
            return nil
        }
        return Int64(zone.secondsFromGMT(for: startDate))
    }

    /// The instants at which the wall-clock time `wall` (seconds as if UTC) fires.
    private func resolve(_ wall: Int64, fixedHour: Bool) -> [Int64] {
        let before = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(wall - 86400))))
        let later = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(wall + 86400))))
        let valid = Set([wall - before, wall - later]).filter {
            Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval($0)))) == wall - $0
        }.sorted()
        if valid.isEmpty {
            // In the gap: a fixed-hour job runs once when the gap ends.
            guard fixedHour, let end = zone.nextDaylightSavingTimeTransition(
                after: Date(timeIntervalSince1970: TimeInterval(wall - max(before, later) - 1)))
            else { return [] }
            return [Int64(end.timeIntervalSince1970)]
        }
        // A repeated wall time: once (the first) for a fixed hour, both for a `*` hour.
        return fixedHour ? [valid[0]] : valid
    }

    // MARK: Calendar arithmetic (proleptic Gregorian, days since 1970-01-01)

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }
    static func floorMod(_ a: Int64, _ b: Int64) -> Int64 { a - floorDiv(a, b) * b }

    /// Year, month, day of a day number (Howard Hinnant's `civil_from_days`).
    static func civil(_ days: Int64) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (Int(yoe + era * 400 + (m <= 2 ? 1 : 0)), Int(m), Int(d))
    }

    static func daysIn(year: Int, month: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}
