/// One of the five fields of a cron expression, parsed into the set of values it allows.
struct CronField: Sendable, Equatable {
    enum Kind: Sendable, CaseIterable {
        case minute, hour, dayOfMonth, month, dayOfWeek

        var name: String {
            switch self {
            case .minute: "minute"
            case .hour: "hour"
            case .dayOfMonth: "day-of-month"
            case .month: "month"
            case .dayOfWeek: "day-of-week"
            }
        }

        /// Values a number may take (day-of-week accepts 7 for Sunday, folded to 0).
        var range: ClosedRange<Int> {
            switch self {
            case .minute: 0...59
            case .hour: 0...23
            case .dayOfMonth: 1...31
            case .month: 1...12
            case .dayOfWeek: 0...7
            }
        }

        /// Where `*` and `a/n` end (day-of-week: Saturday, so `*` and `a/n` count Sunday once).
        var last: Int { self == .dayOfWeek ? 6 : range.upperBound }

        /// Three-letter names, index 0 meaning the first value of the range.
        var names: [String] {
            switch self {
            case .month: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
            case .dayOfWeek: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
            default: []
            }
        }
    }

    /// Bit `n` set when value `n` is allowed.
    let bits: UInt64
    /// The allowed values in ascending order.
    let values: [Int]
    /// True when the field's text starts with `*` (`*`, `*/n`): cron's test for combining
    /// day-of-month with day-of-week, and for telling wildcard jobs from fixed-time ones.
    let isStar: Bool

    func contains(_ value: Int) -> Bool { value >= 0 && value < 64 && bits & (1 << UInt64(value)) != 0 }

    init(_ text: String, _ kind: Kind) throws(CronError) {
        func fail(_ reason: String) -> CronError { CronError("\(kind.name) field \"\(text)\": \(reason)") }
        let range = kind.range

        func number(_ token: Substring) -> Int? {
            guard !token.isEmpty, token.count <= 9, token.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            return Int(token)
        }

        func value(_ token: Substring) throws(CronError) -> Int {
            if token.isEmpty { throw fail("missing value") }
            if let number = number(token) {
                guard range.contains(number) else {
                    throw fail("value \(number) out of range \(range.lowerBound)-\(range.upperBound)")
                }
                return number
            }
            let upper = token.uppercased()
            if let index = kind.names.firstIndex(of: upper) {
                return kind == .month ? index + 1 : index
            }
            let extensions = upper.contains("#") || upper.contains("?")
                || ((kind == .dayOfMonth || kind == .dayOfWeek) && (upper.contains("L") || upper.contains("W")))
            if extensions { throw fail("the L, W, # and ? extensions are not supported") }
            if kind.names.isEmpty { throw fail("\"\(token)\" is not a number") }
            throw fail("unknown name \"\(token)\"")
        }

        var bits: UInt64 = 0
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw fail("empty list item") }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw fail("more than one \"/\" in \"\(item)\"") }
            var step = 1
            if parts.count == 2 {
                guard let number = number(parts[1]) else { throw fail("step \"\(parts[1])\" is not a number") }
                guard number > 0 else { throw fail("step must be at least 1") }
                guard number <= range.upperBound else {
                    throw fail("step \(number) is larger than the range \(range.lowerBound)-\(range.upperBound)")
                }
                step = number
            }
            let base = parts[0]
            let low: Int, high: Int
            if base == "*" {
                (low, high) = (range.lowerBound, kind.last)
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
                guard low <= high else { throw fail("range \(base) runs backwards") }
            } else {
                low = try value(base)
                // `a/n` runs from a to the end of the range, every n.
                high = parts.count == 2 ? max(low, kind.last) : low
            }
            for value in stride(from: low, through: high, by: step) {
                bits |= 1 << UInt64(kind == .dayOfWeek && value == 7 ? 0 : value)
            }
        }
        self.bits = bits
        values = (0..<64).filter { bits & (1 << UInt64($0)) != 0 }
        isStar = text.hasPrefix("*")
    }
}
