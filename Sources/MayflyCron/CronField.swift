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

        /// Allowed values (day-of-week accepts 7 for Sunday, folded to 0).
        var range: ClosedRange<Int> {
            switch self {
            case .minute: 0...59
            case .hour: 0...23
            case .dayOfMonth: 1...31
            case .month: 1...12
            case .dayOfWeek: 0...7
            }
        }

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
    /// False when the field starts with `*` (cron's rule for combining day-of-month and
    /// day-of-week, and for DST handling).
    let restricted: Bool

    func contains(_ value: Int) -> Bool { bits & (1 << UInt64(value)) != 0 }

    /// Allowed values in ascending order.
    var values: [Int] { (0..<64).filter { contains($0) } }

    init(_ text: String, _ kind: Kind) throws(CronError) {
        func fail(_ reason: String) -> CronError { CronError("\(kind.name) field \"\(text)\": \(reason)") }
        if let bad = text.first(where: { "LW#?".contains($0) }) {
            throw fail("\"\(bad)\" is not supported (L, W, # and ? are not)")
        }
        var bits: UInt64 = 0
        let range = kind.range
        func value(_ token: Substring) throws(CronError) -> Int {
            if let number = Int(token) {
                guard range.contains(number) else { throw fail("value \(number) out of range \(range.lowerBound)-\(range.upperBound)") }
                return number
            }
            if let index = kind.names.firstIndex(of: token.uppercased()) {
                return kind == .month ? index + 1 : index
            }
            if token.isEmpty { throw fail("empty value") }
            if kind.names.isEmpty { throw fail("\"\(token)\" is not a number") }
            throw fail("unknown name \"\(token)\"")
        }
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
        for item in items {
            guard !item.isEmpty else { throw fail("empty list item") }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw fail("more than one \"/\"") }
            var step = 1
            if parts.count == 2 {
                guard let number = Int(parts[1]) else { throw fail("step \"\(parts[1])\" is not a number") }
                guard number > 0 else { throw fail("step must be at least 1") }
                guard number <= range.upperBound else { throw fail("step \(number) is larger than the field's range") }
                step = number
            }
            let base = parts[0]
            var low: Int, high: Int
            if base == "*" {
                low = range.lowerBound
                high = kind == .dayOfWeek ? 6 : range.upperBound
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
                guard low <= high else { throw fail("range \(base) runs backwards") }
            } else {
                low = try value(base)
                // `a/n` means from a to the end of the range, every n.
                high = parts.count == 2 ? (kind == .dayOfWeek ? 6 : range.upperBound) : low
            }
            for number in stride(from: low, through: high, by: step) {
                bits |= 1 << UInt64(kind == .dayOfWeek && number == 7 ? 0 : number)
            }
        }
        self.bits = bits
        restricted = !text.hasPrefix("*")
    }
}
