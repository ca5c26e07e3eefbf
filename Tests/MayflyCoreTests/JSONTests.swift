import Foundation
@testable import MayflyCore
import Testing

/// The hand-written JSON reader and writer of the hot path (issue 13) against Foundation's
/// JSONDecoder and JSONEncoder, which they replace: the same values in, the same bytes out.
@Suite struct JSONTests {
    static func foundationDecode(_ text: String) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    static func foundationEncode(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! encoder.encode(value), as: UTF8.self)
    }

    @Test(arguments: [
        #"{}"#, #"[]"#, #"null"#, #"true"#, #"false"#, #"0"#, #"-12"#, #"9223372036854775807"#, #"-9223372036854775808"#,
        #"1.5"#, #"-0.25e3"#, #"1e2"#, #"1.0"#, #"2.5E-3"#, #"18446744073709551616"#,
        #" { "a" : [ 1 , 2 , { "b" : null } ] , "c" : "x" } "#,
        #"{"s":"\"\\\/\b\f\n\r\t\u0041\u00e9\u4e2d\ud83d\ude00"}"#, #"{"dup":1,"dup":2}"#,
        #"["é😀","plain"]"#, #"{"data":{"password":"pw","n":3,"list":["a",1,true,null,{"x":[]}]}}"#,
    ])
    func readsWhatFoundationReads(_ text: String) throws {
        let ours = try JSONValue.parse(Array(text.utf8))
        #expect(ours == Self.foundationDecode(text), "\(text)")
    }

    @Test(arguments: [
        "", " ", "{", "}", "[1,]", "[1 2]", #"{"a":}"#, #"{"a" 1}"#, #"{a:1}"#, "01", "-", "1.", ".5", "1e", "+1",
        #""\x""#, #""\u12""#, #""\ud800""#, #""\udc00x""#, "\"a\u{01}b\"", "nul", "truex", "[1]x", "NaN", "Infinity",
        "{\"a\":1}}", "\"unterminated",
    ])
    func refusesWhatIsNotJSON(_ text: String) {
        #expect(throws: JSONParseError.self, "\(text)") { _ = try JSONValue.parse(Array(text.utf8)) }
    }

    @Test func refusesInvalidUTF8AndDeepNesting() {
        #expect(throws: JSONParseError.self) { _ = try JSONValue.parse([0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: JSONParseError.self) { _ = try JSONValue.parse([0x22, 0xFF, 0x22]) }
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: JSONParseError.self) { _ = try JSONValue.parse(Array(deep.utf8)) }
        let fine = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect((try? JSONValue.parse(Array(fine.utf8))) != nil)
    }

    @Test func writesWhatFoundationWrote() {
        let values: [JSONValue] = [
            ["b": 1, "a": 2, "B": 3, "ä": 4, "aa": 5], .double(1.0), .double(0.8), .double(1e-5), .double(1e16),
            .double(123456789.125), .double(-0.0), .double(1e300), .string("a\u{1b}\u{8}\u{c}\n\r\t\"\\/é😀\u{7f}\u{0}"),
            ["data": ["k": .array([.int(-1), .null, .bool(true), .strings(["x", "y"])])], "lease_duration": 0],
        ]
        for value in values {
            #expect(String(decoding: value.encoded(), as: UTF8.self) == Self.foundationEncode(value), "\(value)")
        }
    }

    /// Random values survive a write and a read unchanged.
    @Test func randomValuesRoundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        func random(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 3 ? 5 : 7), using: &generator) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &generator))
            case 2: return .int(Int64.random(in: .min ... .max, using: &generator))
            case 3: return .double(Double.random(in: -1e6...1e6, using: &generator))
            case 4:
                let scalars = (0..<Int.random(in: 0...12, using: &generator)).compactMap { _ in
                    Unicode.Scalar(UInt32.random(in: 0...0x2FFFF, using: &generator))
                }
                return .string(String(String.UnicodeScalarView(scalars)))
            case 5: return .array((0..<Int.random(in: 0...4, using: &generator)).map { _ in random(depth + 1) })
            default:
                var members: [String: JSONValue] = [:]
                for index in 0..<Int.random(in: 0...4, using: &generator) { members["k\(index)"] = random(depth + 1) }
                return .object(members)
            }
        }
        for _ in 0..<500 {
            let value = random(0)
            let back = try JSONValue.parse(value.encoded())
            // A whole double comes back as an integer, as Foundation read it too.
            if case .double(let number) = value, number.rounded() == number { continue }
            #expect(back == value || Self.foundationDecode(String(decoding: value.encoded(), as: UTF8.self)) == back, "\(value)")
        }
    }

    /// The stored records the hot path decodes without JSONDecoder read back exactly what
    /// JSONEncoder wrote (every field, optionals present and absent).
    @Test func storedRecordsDecodeAsFoundationDecodedThem() throws {
        let entries = [
            TokenEntry(idHash: "ab", accessor: "acc", policies: ["default", "p"], meta: ["app": "x"], displayName: "token-x",
                       creationTime: 1_700_000_000, creationTTL: 3600, expireTime: 1_700_003_600, explicitMaxTTL: 7200,
                       renewable: true, numUses: 3, path: "auth/token/create", parentHash: "cd", lastRenewal: 1_700_000_100,
                       identity: "unix:uid:1000"),
            TokenEntry(idHash: "ef", accessor: "acc2", policies: ["root"], meta: nil, displayName: "root", creationTime: 1,
                       creationTTL: 0, expireTime: nil, explicitMaxTTL: 0, renewable: false, numUses: 0, path: "auth/token/root",
                       parentHash: nil, lastRenewal: nil, identity: nil),
        ]
        for entry in entries {
            let stored = [UInt8](try JSONEncoder().encode(entry))
            #expect(try TokenEntry.decode(stored) == entry)
        }
        let metadata = KVMetadata(
            createdTime: "2026-12-07T08:00:00.000000000Z", updatedTime: "2026-12-07T08:01:00.000000000Z", currentVersion: 3,
            oldestVersion: 1, maxVersions: 10, casRequired: true, deleteVersionAfter: 60, customMetadata: ["owner": "ops"],
            versions: [1: .init(createdTime: "a", deletionTime: "", destroyed: true), 3: .init(createdTime: "c", deletionTime: "d", destroyed: false)])
        let stored = [UInt8](try JSONEncoder().encode(metadata))
        #expect(try KVMetadata.decode(stored) == metadata)
        #expect(try KVMetadata.decode(stored) == JSONDecoder().decode(KVMetadata.self, from: Data(stored)))
    }
}

/// RFC 3339 timestamps as Vault prints them (written by hand since issue 13).
@Suite struct TimestampTests {
    @Test func formatsLikeVault() {
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000000000Z")
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: 1_733_562_000.5)) == "2024-12-07T09:00:00.500000000Z")
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: 253_402_300_799)) == "9999-12-31T23:59:59.000000000Z")
        let now = Date()
        #expect(Timestamp.parse(Timestamp.rfc3339(now)).map { abs($0 - now.timeIntervalSince1970) < 0.001 } == true)
    }

    /// `VALID UNTIL`'s literal: zero-padded fields, UTC, whatever the year's width.
    @Test func formatsAPostgreSQLTimestamp() {
        #expect(Timestamp.postgres(0) == "1970-01-01 00:00:00+0000")
        #expect(Timestamp.postgres(1_733_562_005) == "2024-12-07 09:00:05+0000")
        #expect(Timestamp.postgres(253_402_300_799) == "9999-12-31 23:59:59+0000")
        #expect(Timestamp.postgres(253_402_300_800) == "10000-01-01 00:00:00+0000")
        #expect(Timestamp.postgres(-62_135_596_800) == "0001-01-01 00:00:00+0000")
    }
}
