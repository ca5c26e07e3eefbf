/// Shared cursor over Unicode scalars with line and column tracking.
struct Scanner {
    let scalars: [Unicode.Scalar]
    var index = 0
    var line = 1
    var column = 1
    var depth = 0
    static let maxDepth = 64

    init(_ text: String) { scalars = Array(text.unicodeScalars) }

    var atEnd: Bool { index >= scalars.count }
    var current: Unicode.Scalar? { index < scalars.count ? scalars[index] : nil }
    func peek(_ offset: Int = 1) -> Unicode.Scalar? {
        index + offset < scalars.count ? scalars[index + offset] : nil
    }

    mutating func advance() {
        guard let c = current else { return }
        index += 1
        if c == "\n" {
            line += 1
            column = 1
        } else {
            column += 1
        }
    }

    func error(_ message: String) -> HCLError { HCLError(line: line, column: column, message: message) }

    mutating func enter() throws(HCLError) {
        depth += 1
        if depth > Scanner.maxDepth { throw error("nesting deeper than \(Scanner.maxDepth) levels") }
    }

    mutating func leave() { depth -= 1 }

    /// Reads a double-quoted string starting at `"`, JSON-style escapes plus `\U`.
    mutating func quotedString() throws(HCLError) -> String {
        let startLine = line, startColumn = column
        advance()  // opening quote
        var out = String.UnicodeScalarView()
        while true {
            guard let c = current else {
                throw HCLError(line: startLine, column: startColumn, message: "unterminated string")
            }
            if c == "\"" {
                advance()
                return String(out)
            }
            if c == "\n" { throw error("newline in a quoted string (use a heredoc for multi-line text)") }
            if c == "\\" {
                let escapeLine = line, escapeColumn = column
                advance()
                guard let e = current else { throw HCLError(line: startLine, column: startColumn, message: "unterminated string") }
                advance()
                switch e {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "b": out.append("\u{8}")
                case "f": out.append("\u{c}")
                case "\"": out.append("\"")
                case "\\": out.append("\\")
                case "/": out.append("/")
                case "u", "U":
                    let count = e == "u" ? 4 : 8
                    var value: UInt32 = 0
                    for _ in 0..<count {
                        guard let h = current, let digit = hexValue(h) else {
                            throw error("invalid \\\(e) escape")
                        }
                        value = value * 16 + digit
                        advance()
                    }
                    if e == "u", (0xD800...0xDBFF).contains(value), current == "\\", peek() == "u" {
                        advance(); advance()
                        var low: UInt32 = 0
                        for _ in 0..<4 {
                            guard let h = current, let digit = hexValue(h) else { throw error("invalid \\u escape") }
                            low = low * 16 + digit
                            advance()
                        }
                        guard (0xDC00...0xDFFF).contains(low) else { throw error("invalid surrogate pair") }
                        value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(value) else { throw error("invalid code point in escape") }
                    out.append(scalar)
                default:
                    throw HCLError(line: escapeLine, column: escapeColumn, message: "unknown escape \\\(e)")
                }
                continue
            }
            out.append(c)
            advance()
        }
    }

    func hexValue(_ c: Unicode.Scalar) -> UInt32? {
        switch c {
        case "0"..."9": c.value - 48
        case "a"..."f": c.value - 87
        case "A"..."F": c.value - 55
        default: nil
        }
    }

    /// Reads a number (`-`? digits, optional fraction and exponent).
    mutating func number(strictJSON: Bool) throws(HCLError) -> HCLValue {
        let startColumn = column
        var text = ""
        func isDigit(_ c: Unicode.Scalar?) -> Bool { c.map { ("0"..."9").contains($0) } ?? false }
        if current == "-" { text.append("-"); advance() }
        guard isDigit(current) else { throw error("invalid number") }
        if strictJSON, current == "0", isDigit(peek()) { throw error("leading zeros are not allowed in JSON numbers") }
        while isDigit(current) { text.unicodeScalars.append(current!); advance() }
        var isFloat = false
        if current == ".", isDigit(peek()) {
            isFloat = true
            text.append("."); advance()
            while isDigit(current) { text.unicodeScalars.append(current!); advance() }
        }
        if current == "e" || current == "E" {
            isFloat = true
            text.append("e"); advance()
            if current == "+" || current == "-" { text.unicodeScalars.append(current!); advance() }
            guard isDigit(current) else { throw error("invalid exponent") }
            while isDigit(current) { text.unicodeScalars.append(current!); advance() }
        }
        if !isFloat, let int = Int64(text) { return .int(int) }
        guard let double = Double(text), double.isFinite else {
            throw HCLError(line: line, column: startColumn, message: "number out of range")
        }
        return .float(double)
    }
}
