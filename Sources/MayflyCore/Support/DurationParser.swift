/// Parses durations the way Vault does (`parseutil.ParseDurationSecond`): an integer is
/// seconds; a string may be an integer, `Nd`, or a Go duration such as `1h30m` or `90s`.
public enum DurationParser {
    /// The longest duration accepted anywhere (100 years): every `now + duration` stays far
    /// from overflow and within PostgreSQL's timestamps.
    public static let maximum: Int64 = 100 * 365 * 86_400

    /// Seconds, or nil when the text is not a duration (negative, or over `maximum`).
    public static func seconds(_ text: String) -> Int64? {
        let text = text.trimmingWhitespace()
        if text.isEmpty { return 0 }
        if let value = Int64(text) { return (0...maximum).contains(value) ? value : nil }
        let units: [(String, Double)] = [
            ("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400),
        ]
        var rest = Substring(text)
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            guard let unit = units.first(where: { rest.hasPrefix($0.0) }) else { return nil }
            // "m" must not swallow the "m" of "ms".
            let match = units.filter { rest.hasPrefix($0.0) }.max { $0.0.count < $1.0.count } ?? unit
            rest = rest.dropFirst(match.0.count)
            total += value * match.1
        }
        guard total <= Double(maximum) else { return nil }
        return Int64(total.rounded(.down))
    }

    /// Seconds from a JSON field: integer, numeric string or duration string; null is nil.
    public static func seconds(_ value: JSONValue?, field: String) throws -> Int64? {
        guard let value, !value.isNull else { return nil }
        if let int = value.intValue {
            guard int >= 0 else { throw APIError.badRequest("\(field) must not be negative") }
            guard int <= maximum else { throw APIError.badRequest("\(field) must be at most 100 years (\(maximum) seconds)") }
            return int
        }
        if let string = value.stringValue, let seconds = seconds(string) { return seconds }
        throw APIError.badRequest(
            "\(field) must be a duration of at most 100 years (e.g. 3600, \"1h\" or \"30m\"), got \(value.typeName)")
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
