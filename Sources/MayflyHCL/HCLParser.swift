/// Recursive-descent parser for the HCL subset (attributes, blocks with labels, lists,
/// objects, strings, heredocs, numbers, booleans, null, comments).
struct HCLParser {
    var s: Scanner

    init(_ text: String) { s = Scanner(text) }

    mutating func document() throws(HCLError) -> [HCLMember] {
        let members = try body(closing: false)
        skipSpace(newlines: true)
        if !s.atEnd { throw s.error("unexpected '\(s.current!)'") }
        return members
    }

    /// Skips blanks and comments; newlines too when asked. Returns true if a newline was seen.
    @discardableResult
    mutating func skipSpace(newlines: Bool) -> Bool {
        var sawNewline = false
        while let c = s.current {
            if c == " " || c == "\t" || c == "\r" {
                s.advance()
            } else if c == "\n" {
                guard newlines else { return sawNewline }
                sawNewline = true
                s.advance()
            } else if c == "#" || (c == "/" && s.peek() == "/") {
                while let d = s.current, d != "\n" { s.advance() }
            } else if c == "/" && s.peek() == "*" {
                let line = s.line, column = s.column
                s.advance(); s.advance()
                while !(s.current == "*" && s.peek() == "/") {
                    if s.atEnd {
                        // Reported by the caller through `pendingError`.
                        pendingError = HCLError(line: line, column: column, message: "unterminated /* comment")
                        return sawNewline
                    }
                    if s.current == "\n" { sawNewline = true }
                    s.advance()
                }
                s.advance(); s.advance()
            } else {
                return sawNewline
            }
        }
        return sawNewline
    }

    var pendingError: HCLError?

    mutating func space(newlines: Bool) throws(HCLError) {
        skipSpace(newlines: newlines)
        if let pendingError { throw pendingError }
    }

    static func isIdentifierStart(_ c: Unicode.Scalar) -> Bool {
        c.properties.isAlphabetic || c == "_"
    }

    static func isIdentifierPart(_ c: Unicode.Scalar) -> Bool {
        c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "_" || c == "-" || c == "."
    }

    mutating func identifier() -> String {
        var out = String.UnicodeScalarView()
        while let c = s.current, Self.isIdentifierPart(c) {
            out.append(c)
            s.advance()
        }
        return String(out)
    }

    /// Members until `}` (when `closing`) or the end of input.
    mutating func body(closing: Bool) throws(HCLError) -> [HCLMember] {
        var members: [HCLMember] = []
        while true {
            try space(newlines: true)
            while s.current == "," {
                s.advance()
                try space(newlines: true)
            }
            guard let c = s.current else {
                if closing { throw s.error("unterminated block: expected '}'") }
                return members
            }
            if c == "}" {
                guard closing else { throw s.error("unexpected '}'") }
                return members
            }
            let line = s.line
            let key: String
            if c == "\"" {
                key = try s.quotedString()
            } else if Self.isIdentifierStart(c) {
                key = identifier()
            } else {
                throw s.error("expected a key, found '\(c)'")
            }
            try space(newlines: false)
            if s.current == "=" {
                s.advance()
                try space(newlines: false)
                let value = try value()
                members.append(HCLMember(key: key, value: value, line: line))
                continue
            }
            // A block: labels then `{`.
            var labels: [(String, Int)] = []
            while let d = s.current, d != "{" {
                if d == "\"" {
                    labels.append((try s.quotedString(), s.line))
                } else if Self.isIdentifierStart(d) {
                    labels.append((identifier(), s.line))
                } else {
                    throw s.error("expected '=' or '{' after \"\(key)\"")
                }
                try space(newlines: false)
            }
            guard s.current == "{" else { throw s.error("expected '=' or '{' after \"\(key)\"") }
            s.advance()
            try s.enter()
            var inner = HCLValue.object(try body(closing: true))
            s.leave()
            s.advance()  // '}'
            for (label, _) in labels.reversed() {
                inner = .object([HCLMember(key: label, value: inner, line: line)])
            }
            members.append(HCLMember(key: key, value: inner, line: line))
        }
    }

    mutating func value() throws(HCLError) -> HCLValue {
        guard let c = s.current, c != "\n" else { throw s.error("expected a value") }
        switch c {
        case "\"":
            return .string(try s.quotedString())
        case "<" where s.peek() == "<":
            return .string(try heredoc())
        case "-", "0"..."9":
            return try s.number(strictJSON: false)
        case "[":
            s.advance()
            try s.enter()
            defer { s.leave() }
            var items: [HCLValue] = []
            while true {
                try space(newlines: true)
                if s.current == "]" {
                    s.advance()
                    return .list(items)
                }
                if s.atEnd { throw s.error("unterminated list: expected ']'") }
                items.append(try value())
                try space(newlines: true)
                if s.current == "," {
                    s.advance()
                } else if s.current != "]" {
                    throw s.atEnd ? s.error("unterminated list: expected ']'") : s.error("expected ',' or ']' in list")
                }
            }
        case "{":
            s.advance()
            try s.enter()
            let members = try body(closing: true)
            s.leave()
            s.advance()
            return .object(members)
        default:
            guard Self.isIdentifierStart(c) else { throw s.error("unexpected '\(c)' where a value was expected") }
            let column = s.column
            let word = identifier()
            switch word {
            case "true": return .bool(true)
            case "false": return .bool(false)
            case "null": return .null
            default:
                throw HCLError(line: s.line, column: column, message: "unknown value \"\(word)\"; strings need double quotes")
            }
        }
    }

    /// `<<EOF` … `EOF` or `<<-EOF` (common indentation removed).
    mutating func heredoc() throws(HCLError) -> String {
        let startLine = s.line, startColumn = s.column
        s.advance(); s.advance()
        let indented = s.current == "-"
        if indented { s.advance() }
        let marker = identifier()
        guard !marker.isEmpty else { throw s.error("heredoc needs a marker, e.g. <<EOF") }
        while s.current == " " || s.current == "\t" || s.current == "\r" { s.advance() }
        guard s.current == "\n" else { throw s.error("heredoc marker must end its line") }
        s.advance()
        var lines: [String] = []
        var current = String.UnicodeScalarView()
        while true {
            guard let c = s.current else {
                throw HCLError(line: startLine, column: startColumn, message: "unterminated heredoc: missing \(marker)")
            }
            s.advance()
            if c == "\n" {
                let text = String(current)
                if text.trimmingBlanks() == marker { break }
                lines.append(text)
                current = String.UnicodeScalarView()
            } else {
                current.append(c)
                if s.atEnd, String(current).trimmingBlanks() == marker { break }
            }
        }
        if indented {
            let indent = lines.filter { !$0.trimmingBlanks().isEmpty }
                .map { $0.prefix { $0 == " " || $0 == "\t" }.count }.min() ?? 0
            lines = lines.map { String($0.dropFirst(min(indent, $0.prefix { $0 == " " || $0 == "\t" }.count))) }
        }
        return lines.map { $0 + "\n" }.joined()
    }
}

extension String {
    func trimmingBlanks() -> String {
        var scalars = Substring(self)
        while let f = scalars.first, f == " " || f == "\t" || f == "\r" { scalars = scalars.dropFirst() }
        while let l = scalars.last, l == " " || l == "\t" || l == "\r" { scalars = scalars.dropLast() }
        return String(scalars)
    }
}
