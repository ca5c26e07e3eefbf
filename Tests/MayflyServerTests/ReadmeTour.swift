import Foundation

/// The README's tour as a list of shell commands, read from README.md itself, and the rules
/// that make its lines runnable by a test (`DevModeTests.theReadmeTourRunsAsWritten`):
///
/// - Every line of every ```` ```sh ```` block in the sections `sections` is a command, in
///   document order. A line ending in `\` continues on the next; blank and comment-only lines
///   are not commands.
/// - `<name>` stands for a value printed earlier: the `name` row of the latest command output
///   that had one (the CLI's `Key  Value` tables, e.g. `<lease_id>`, `<connection_url>`), or a
///   `Name: value` line of the dev banner (`<unseal_key>`, `<root_token>`).
/// - `export NAME=…` lines are what the dev banner prints for you to paste: the banner's own
///   `export NAME=` line is run instead.
/// - A command whose comment contains `(not run by the tour test` is listed as skipped, with
///   that comment as the reason — for lines that need another user or a terminal.
///
/// Commands run in bash, in the dev server's directory, with stdin empty and `PGPASSWORD` set to
/// the latest `password` printed (what a person types at psql's prompt).
struct ReadmeTour {
    /// The README sections whose `sh` blocks are the tour.
    static let sections = ["A short tour", "Rotate on a schedule", "Leak response"]

    /// Marks a line the test does not run; the rest of its comment says why.
    static let skipMarker = "(not run by the tour test"

    /// One command: its first line number in the file, its text (continuations joined), and
    /// why it is skipped, if it is.
    struct Command: Equatable, CustomStringConvertible {
        let line: Int
        let text: String
        let skipReason: String?

        /// `NAME` of an `export NAME=…` line.
        var exportedName: String? {
            guard text.hasPrefix("export "), let equals = text.firstIndex(of: "=") else { return nil }
            return String(text[text.index(text.startIndex, offsetBy: 7)..<equals])
        }

        /// The `<name>` placeholders in the command.
        var placeholders: [String] { ReadmeTour.placeholders(in: text) }

        var description: String { "README.md:\(line): \(text)" }
    }

    /// README.md at the root of this package.
    static var readmePath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md").path
    }

    /// The tour's commands in `markdown` (README.md when nil). Throws when a section is missing.
    static func commands(markdown: String? = nil, sections: [String] = sections) throws -> [Command] {
        let text = try markdown ?? String(contentsOfFile: readmePath, encoding: .utf8)
        let lines = text.components(separatedBy: "\n")
        var result: [Command] = []
        var found: Set<String> = []
        var section: String?
        var inBlock = false, inTourBlock = false
        var pending: (line: Int, text: String)?
        for (index, raw) in lines.enumerated() {
            let trimmed = raw.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("```") {
                if inBlock {
                    inBlock = false
                    inTourBlock = false
                } else {
                    inBlock = true
                    inTourBlock = section.map(sections.contains) == true && trimmed == "```sh"
                }
                continue
            }
            if !inBlock, raw.hasPrefix("#") {
                let title = raw.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces)
                section = raw.hasPrefix("## ") || raw.hasPrefix("# ") ? title : section
                if sections.contains(title) { found.insert(title) }
                continue
            }
            guard inTourBlock else { continue }
            if pending == nil && (trimmed.isEmpty || trimmed.hasPrefix("#")) { continue }
            let joined = (pending.map { $0.text + " " } ?? "") + trimmed
            let start = pending?.line ?? index + 1
            if joined.hasSuffix("\\") {
                pending = (start, String(joined.dropLast()).trimmingCharacters(in: .whitespaces))
                continue
            }
            pending = nil
            let (command, comment) = splitComment(joined)
            let reason = comment.flatMap { $0.range(of: skipMarker) != nil ? $0 : nil }
            result.append(Command(line: start, text: command, skipReason: reason))
        }
        if let missing = sections.first(where: { !found.contains($0) }) {
            throw ReadmeTourError(message: "README.md has no section \"\(missing)\"")
        }
        return result
    }

    /// Splits a shell line at its comment: a `#` outside quotes that starts a word.
    static func splitComment(_ line: String) -> (command: String, comment: String?) {
        var quote: Character?
        var previous: Character = " "
        for index in line.indices {
            let character = line[index]
            if let open = quote {
                if character == open { quote = nil }
            } else if character == "'" || character == "\"" {
                quote = character
            } else if character == "#", previous.isWhitespace {
                return (String(line[..<index]).trimmingCharacters(in: .whitespaces),
                        String(line[line.index(after: index)...]).trimmingCharacters(in: .whitespaces))
            }
            previous = character
        }
        return (line.trimmingCharacters(in: .whitespaces), nil)
    }

    /// The `<name>` placeholders (lower case letters, digits and `_`) in `text`.
    static func placeholders(in text: String) -> [String] {
        var names: [String] = []
        var rest = text[...]
        while let open = rest.firstIndex(of: "<") {
            let after = rest[rest.index(after: open)...]
            let name = after.prefix { $0.isLowercase || $0.isNumber || $0 == "_" }
            if !name.isEmpty, after.dropFirst(name.count).first == ">" { names.append(String(name)) }
            rest = after
        }
        return names
    }

    /// `text` with every placeholder replaced from `values`; throws naming one it lacks.
    static func substitute(_ text: String, values: [String: String]) throws -> String {
        var result = text
        for name in placeholders(in: text) {
            guard let value = values[name] else {
                throw ReadmeTourError(message: "no earlier output printed \"\(name)\" for <\(name)>")
            }
            result = result.replacingOccurrences(of: "<\(name)>", with: value)
        }
        return result
    }

    /// The `Key    Value` rows of the CLI's tables in `output`, keys lower-cased with `_` for spaces.
    static func tableValues(in output: String) -> [String: String] {
        var values: [String: String] = [:]
        for line in output.split(separator: "\n") {
            guard let gap = line.range(of: "    "), gap.lowerBound > line.startIndex else { continue }
            let key = line[..<gap.lowerBound].trimmingCharacters(in: .whitespaces)
            let value = line[gap.upperBound...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, !value.isEmpty, !key.hasPrefix("-"), key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == " " })
            else { continue }
            values[normalized(key)] = value
        }
        return values
    }

    /// The `Name: value` lines (`Unseal Key: …`, `Root Token: …`) and `export NAME=…` lines of
    /// the dev banner.
    static func bannerValues(in banner: String) -> (values: [String: String], exports: [String: String]) {
        var values: [String: String] = [:], exports: [String: String] = [:]
        for raw in banner.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("export "), let equals = line.firstIndex(of: "=") {
                exports[String(line[line.index(line.startIndex, offsetBy: 7)..<equals])] = line
            } else if let colon = line.range(of: ": "), !line[colon.upperBound...].contains(" "),
                line[..<colon.lowerBound].allSatisfy({ $0.isLetter || $0 == " " })
            {
                values[normalized(String(line[..<colon.lowerBound]))] = String(line[colon.upperBound...])
            }
        }
        return (values, exports)
    }

    private static func normalized(_ key: String) -> String {
        key.lowercased().replacingOccurrences(of: " ", with: "_")
    }
}

struct ReadmeTourError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
