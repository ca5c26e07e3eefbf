/// A Go-style duration such as `90s`, `10m` or `1h30m`: whole numbers, each followed by
/// `h`, `m` or `s`, in any order (`1h30m` and `30m1h` are both 90 minutes).
public struct CronDuration: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The length in seconds.
    public let seconds: Int64

    /// Longest accepted duration (about 31,700 years), so that arithmetic cannot overflow.
    static let maximum: Int64 = 1_000_000_000_000

    public init(seconds: Int64) {
        self.seconds = seconds
    }

    /// Parses `text`; throws when it is empty or not numbers with `h`, `m` and `s`.
    public init(_ text: String) throws(CronError) {
        func fail() -> CronError {
            CronError("duration \"\(text)\": use whole numbers with h, m or s, like 90s, 10m, 1h30m")
        }
        var total: Int64 = 0
        var number: Int64?
        for character in text.unicodeScalars {
            if let digit = Int64(String(character)), character.isASCII {
                number = (number ?? 0) * 10 + digit
                guard number! <= Self.maximum else { throw CronError("duration \"\(text)\" is too long") }
                continue
            }
            guard let value = number else { throw fail() }
            switch character {
            case "h": total += value * 3600
            case "m": total += value * 60
            case "s": total += value
            default: throw fail()
            }
            guard total <= Self.maximum else { throw CronError("duration \"\(text)\" is too long") }
            number = nil
        }
        guard number == nil, !text.isEmpty else { throw fail() }
        seconds = total
    }

    /// The shortest form, e.g. `1h30m` for 5400 seconds and `0s` for zero.
    public var description: String {
        guard seconds != 0 else { return "0s" }
        let size = seconds.magnitude
        let (h, m, s) = (size / 3600, size / 60 % 60, size % 60)
        return (seconds < 0 ? "-" : "") + (h > 0 ? "\(h)h" : "") + (m > 0 ? "\(m)m" : "") + (s > 0 ? "\(s)s" : "")
    }
}
