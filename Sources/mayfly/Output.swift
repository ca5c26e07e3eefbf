import Foundation
import MayflyJSON

/// Human and JSON output for client commands.
enum Output {
    static func json(_ value: JSONValue) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("null".utf8)
        print(String(decoding: data, as: UTF8.self))
    }

    /// `text` with terminal control characters shown as escapes (`\u{1B}`), so that stored
    /// data or a server's error cannot drive the operator's terminal.
    static func visible(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        return text.unicodeScalars.map { isControl($0) ? "\\u{\(String($0.value, radix: 16, uppercase: true))}" : String($0) }.joined()
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        (scalar.value < 0x20 && scalar != "\n" && scalar != "\t") || (0x7F...0x9F).contains(scalar.value)
    }

    static func text(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): visible(s)
        case .null: "<nil>"
        case .bool(let b): b ? "true" : "false"
        case .int(let i): String(i)
        case .double(let d): String(d)
        case .array(let a): "[" + a.map(text).joined(separator: " ") + "]"
        case .object(let o): "map[" + o.keys.sorted().map { "\($0):\(text(o[$0]!))" }.joined(separator: " ") + "]"
        }
    }

    /// A two-column key/value table.
    static func table(_ rows: [(String, JSONValue)], header: (String, String) = ("Key", "Value")) {
        let width = max(header.0.count, rows.map(\.0.count).max() ?? 0)
        func pad(_ s: String) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }
        print(pad(header.0) + "    " + header.1)
        print(pad(String(repeating: "-", count: header.0.count)) + "    " + String(repeating: "-", count: header.1.count))
        for (key, value) in rows { print(pad(key) + "    " + text(value)) }
    }

    /// A table with a header row and a dashed line under it, columns padded to fit.
    static func rows(_ header: [String], _ rows: [[String]]) {
        let all = [header, header.map { String(repeating: "-", count: $0.count) }] + rows.map { $0.map(visible) }
        let widths = header.indices.map { column in all.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0 }
        for row in all {
            print(row.indices.map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
        }
    }

    /// An RFC 3339 time cut to the second (`2026-12-07T08:00:00Z`), for tables.
    static func second(_ text: String?) -> String {
        guard let text else { return "-" }
        guard let dot = text.firstIndex(of: "."), text.hasSuffix("Z") else { return text }
        return String(text[..<dot]) + "Z"
    }

    /// Runs `work`; on a terminal, meanwhile, a line on stderr says every second how long it
    /// has taken and what `detail` reports (scripts, whose stderr is no terminal, see nothing).
    static func withProgress<T: Sendable>(_ label: String, detail: @escaping @Sendable () async -> String? = { nil },
                                          _ work: () async throws -> T) async throws -> T
    {
        guard isatty(2) == 1 else { return try await work() }
        let start = ContinuousClock.now
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if Task.isCancelled { break }
                let elapsed = (ContinuousClock.now - start).components.seconds
                let extra = await detail().map { ", \($0)" } ?? ""
                FileHandle.standardError.write(Data("\r\(label) \(elapsed)s\(extra)\u{1B}[K".utf8))
            }
        }
        do {
            let result = try await work()
            ticker.cancel()
            _ = await ticker.value
            FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
            return result
        } catch {
            ticker.cancel()
            _ = await ticker.value
            FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
            throw error
        }
    }

    /// Prints an object as a sorted key/value table.
    static func object(_ object: [String: JSONValue]) {
        table(object.keys.sorted().map { ($0, object[$0]!) })
    }

    static func warnings(_ body: JSONValue) {
        for warning in body["warnings"]?.arrayValue ?? [] {
            FileHandle.standardError.write(Data("WARNING: \(text(warning))\n".utf8))
        }
    }

    /// Prints a Vault envelope: lease fields, auth, then data.
    static func envelope(_ body: JSONValue, format: OutputFormat) {
        if format == .json {
            json(body)
            return
        }
        warnings(body)
        var rows: [(String, JSONValue)] = []
        if let lease = body["lease_id"]?.stringValue, !lease.isEmpty {
            rows.append(("lease_id", .string(lease)))
            rows.append(("lease_duration", body["lease_duration"] ?? 0))
            rows.append(("lease_renewable", body["renewable"] ?? false))
            if let seconds = body["lease_duration"]?.intValue {
                rows.append(("lease_expires", .string(Timestamp.rfc3339(Date().addingTimeInterval(TimeInterval(seconds))))))
            }
        }
        if let auth = body["auth"]?.objectValue {
            rows.append(("token", auth["client_token"] ?? ""))
            rows.append(("token_accessor", auth["accessor"] ?? ""))
            rows.append(("token_duration", auth["lease_duration"] ?? 0))
            rows.append(("token_renewable", auth["renewable"] ?? false))
            rows.append(("token_policies", auth["policies"] ?? []))
        }
        if let data = body["data"]?.objectValue {
            rows += data.keys.sorted().map { ($0, data[$0]!) }
        }
        if rows.isEmpty, body["request_id"] == nil, let bare = body.objectValue, !bare.isEmpty {
            // A bare answer (sys/seal-status, sys/health, …): its own fields.
            rows = bare.keys.sorted().map { ($0, bare[$0]!) }
        }
        if rows.isEmpty { print("Success!") } else { table(rows) }
    }

    /// A success with nothing to show: the sentence for people; with `--format json` it goes
    /// to stderr, so that stdout holds JSON or nothing.
    static func success(_ format: OutputFormat, _ message: String) {
        if format == .json {
            FileHandle.standardError.write(Data((message + "\n").utf8))
        } else {
            print(message)
        }
    }

    /// `key=value` pairs (`key=@file` reads a file, `key=-` reads stdin, either without its
    /// final newline) into a JSON object.
    static func pairs(_ items: [String]) throws -> [String: JSONValue] {
        var result: [String: JSONValue] = [:]
        for item in items {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw CLIError(message: "expected key=value, got \"\(item)\"", code: 1)
            }
            let key = String(item[..<eq])
            var value = String(item[item.index(after: eq)...])
            if value == "-" {
                value = withoutLineEnd(String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self))
            } else if value.hasPrefix("@") {
                guard let data = FileManager.default.contents(atPath: String(value.dropFirst())) else {
                    throw CLIError(message: "cannot read \(value.dropFirst())", code: 1)
                }
                value = withoutLineEnd(String(decoding: data, as: UTF8.self))
            }
            result[key] = .string(value)
        }
        return result
    }

    /// A file's final line end is not part of the value (the config's password_file reads it
    /// the same way): `echo secret > f` then key=@f gives "secret". "\r\n" is one Character.
    private static func withoutLineEnd(_ text: String) -> String {
        text.last == "\n" || text.last == "\r\n" ? String(text.dropLast()) : text
    }
}
