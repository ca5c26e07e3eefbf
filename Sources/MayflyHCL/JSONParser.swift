/// Strict JSON (RFC 8259) into the HCL tree, keeping key lines and duplicate keys.
struct JSONParser {
    var s: Scanner

    init(_ text: String) { s = Scanner(text) }

    mutating func document() throws(HCLError) -> [HCLMember] {
        skipSpace()
        guard s.current == "{" else { throw s.error("JSON config must be an object") }
        guard case .object(let members) = try value() else { throw s.error("JSON config must be an object") }
        skipSpace()
        if !s.atEnd { throw s.error("unexpected '\(s.current!)' after the JSON value") }
        return members
    }

    mutating func skipSpace() {
        while let c = s.current, c == " " || c == "\t" || c == "\n" || c == "\r" { s.advance() }
    }

    mutating func expectWord(_ word: String, _ value: HCLValue) throws(HCLError) -> HCLValue {
        for expected in word.unicodeScalars {
            guard s.current == expected else { throw s.error("invalid JSON literal") }
            s.advance()
        }
        return value
    }

    mutating func value() throws(HCLError) -> HCLValue {
        skipSpace()
        guard let c = s.current else { throw s.error("unexpected end of JSON") }
        switch c {
        case "{":
            s.advance()
            try s.enter()
            defer { s.leave() }
            var members: [HCLMember] = []
            skipSpace()
            if s.current == "}" {
                s.advance()
                return .object(members)
            }
            while true {
                skipSpace()
                guard s.current == "\"" else { throw s.atEnd ? s.error("unterminated object") : s.error("expected a quoted key") }
                let line = s.line
                let key = try s.quotedString()
                skipSpace()
                guard s.current == ":" else { throw s.error("expected ':' after key \"\(key)\"") }
                s.advance()
                members.append(HCLMember(key: key, value: try value(), line: line))
                skipSpace()
                if s.current == "," {
                    s.advance()
                } else if s.current == "}" {
                    s.advance()
                    return .object(members)
                } else {
                    throw s.atEnd ? s.error("unterminated object") : s.error("expected ',' or '}' in object")
                }
            }
        case "[":
            s.advance()
            try s.enter()
            defer { s.leave() }
            var items: [HCLValue] = []
            skipSpace()
            if s.current == "]" {
                s.advance()
                return .list(items)
            }
            while true {
                items.append(try value())
                skipSpace()
                if s.current == "," {
                    s.advance()
                } else if s.current == "]" {
                    s.advance()
                    return .list(items)
                } else {
                    throw s.atEnd ? s.error("unterminated array") : s.error("expected ',' or ']' in array")
                }
            }
        case "\"": return .string(try s.quotedString())
        case "t": return try expectWord("true", .bool(true))
        case "f": return try expectWord("false", .bool(false))
        case "n": return try expectWord("null", .null)
        case "-", "0"..."9": return try s.number(strictJSON: true)
        default: throw s.error("unexpected '\(c)' in JSON")
        }
    }
}
