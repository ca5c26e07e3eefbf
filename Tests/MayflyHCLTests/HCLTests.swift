import MayflyHCL
import Testing

/// Removes line numbers so HCL and JSON trees can be compared.
func stripped(_ members: [HCLMember]) -> [HCLMember] {
    members.map { HCLMember(key: $0.key, value: stripped($0.value), line: 0) }
}

func stripped(_ value: HCLValue) -> HCLValue {
    switch value {
    case .list(let items): .list(items.map(stripped))
    case .object(let members): .object(stripped(members))
    default: value
    }
}

@Suite struct HCLParserTests {
    static let config = """
        storage "sqlite"   { path = "/var/lib/mayfly/mayfly.db" }
        listener "unix"    { path = "/run/mayfly/mayfly.sock"  group = "mayfly-clients" }
        listener "tcp"     { address = "0.0.0.0:8200"  tls_cert_file = "a"  tls_key_file = "b" }
        seal "keyfile"     { path = "/etc/mayfly/unseal.key" }      # unattended restarts
        bind "unix:user:orders"                  { policies = ["orders-app"] }
        database "orders" {
          connection_url = "postgresql://mayfly_admin@db.internal:5432/orders?sslmode=verify-full"
          max_connections = 4                    // the broker's own pool
          owner_on_revoke = "orders_owner"
        }
        role "orders-ro" {
          database = "orders"  member_of = ["orders_reader"]
          default_ttl = "15m"  max_ttl = "2h"  connection_limit = 5
        }
        disable_mlock = true
        """

    @Test func parsesAVaultStyleConfig() throws {
        let members = try HCL.parse(Self.config)
        #expect(members.map(\.key) == ["storage", "listener", "listener", "seal", "bind", "database", "role", "disable_mlock"])
        #expect(members.map(\.line) == [1, 2, 3, 4, 5, 6, 11, 15])
        #expect(members[1].value == .object([HCLMember(key: "unix", value: .object([
            HCLMember(key: "path", value: .string("/run/mayfly/mayfly.sock"), line: 2),
            HCLMember(key: "group", value: .string("mayfly-clients"), line: 2),
        ]), line: 2)]))
        let database = try #require(members[5].value.objectValue?.first?.value.objectValue)
        #expect(database.map(\.key) == ["connection_url", "max_connections", "owner_on_revoke"])
        #expect(database.map(\.line) == [7, 8, 9])
        #expect(database[1].value == .int(4))
        let role = try #require(members[6].value.objectValue?.first?.value.objectValue)
        #expect(role.first { $0.key == "member_of" }?.value == .list([.string("orders_reader")]))
        #expect(members[7].value == .bool(true))
    }

    @Test func policiesAndTheirJSONFormAreTheSameTree() throws {
        let hcl = try HCL.parse("""
            path "secret/data/*" { capabilities = ["read", "list"] }
            path "sys/leases/+/x" {
              capabilities = ["deny"]
            }
            """)
        let json = try HCL.parseJSON("""
            {"path": {"secret/data/*": {"capabilities": ["read", "list"]}},
             "path": {"sys/leases/+/x": {"capabilities": ["deny"]}}}
            """)
        #expect(stripped(hcl) == stripped(json))
        #expect(json.map(\.line) == [1, 2])
    }

    @Test func valuesOfEveryKind() throws {
        let members = try HCL.parse("""
            a = -12
            b = 1.5e3
            c = "tab\\tquote\\"slash\\\\ \\u00e9 \\U0001F600"
            d = null
            e = [1, "two", [3], { k = "v" },]
            f = { x = 1, y = "z"
                  w = false }
            g = "${not_interpolated}"
            /* block
               comment */ h = 1
            """)
        let values = Dictionary(uniqueKeysWithValues: members.map { ($0.key, $0.value) })
        #expect(values["a"] == .int(-12))
        #expect(values["b"] == .float(1500))
        #expect(values["c"] == .string("tab\tquote\"slash\\ é 😀"))
        #expect(values["d"] == .null)
        #expect(values["e"] == .list([.int(1), .string("two"), .list([.int(3)]), .object([HCLMember(key: "k", value: .string("v"), line: 5)])]))
        #expect(values["f"]?.objectValue?.map(\.key) == ["x", "y", "w"])
        #expect(values["g"] == .string("${not_interpolated}"))
        #expect(members.last?.line == 10)
    }

    @Test func heredocs() throws {
        let members = try HCL.parse("""
            plain = <<EOF
            line one
              line two
            EOF
            indented = <<-EOT
                a
                  b
                EOT
            after = 1
            """)
        #expect(members[0].value == .string("line one\n  line two\n"))
        #expect(members[1].value == .string("a\n  b\n"))
        #expect(members[2] == HCLMember(key: "after", value: .int(1), line: 9))
    }

    @Test(arguments: [
        ("a = \"open", 1, 5, "unterminated string"),
        ("a = 1\nb = \"x\ny\"", 2, 7, "newline in a quoted string"),
        ("a = \"bad \\q\"", 1, 10, "unknown escape"),
        ("block {\n  a = 1\n", 3, 1, "unterminated block"),
        ("a = [1, 2", 1, 10, "unterminated list"),
        ("a = [1 2]", 1, 8, "expected ',' or ']'"),
        ("a = ", 1, 5, "expected a value"),
        ("a = yes", 1, 5, "unknown value \"yes\""),
        ("\"key\" : 1", 1, 7, "expected '=' or '{'"),
        ("x y z", 1, 6, "expected '=' or '{'"),
        ("}", 1, 1, "unexpected '}'"),
        ("a = 1\n= 2", 2, 1, "expected a key"),
        ("a = <<EOF\nno end", 1, 5, "unterminated heredoc"),
        ("a = 1 /* never closed", 1, 7, "unterminated /* comment"),
        ("a = @", 1, 5, "unexpected '@'"),
        ("a = \"\\u12\"", 1, 10, "invalid \\u escape"),
    ])
    func errorsCarryLineAndColumn(text: String, line: Int, column: Int, fragment: String) {
        do {
            _ = try HCL.parse(text)
            Issue.record("expected an error for \(text)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.column == column, "\(error)")
            #expect(error.message.contains(fragment), "\(error)")
            #expect(error.description.hasPrefix("line \(line), column \(column): "))
        }
    }

    @Test func nestingIsBounded() {
        let deep = String(repeating: "a = [", count: 1) + String(repeating: "[", count: 100) + String(repeating: "]", count: 101)
        #expect(throws: HCLError.self) { _ = try HCL.parse(deep) }
        let deepJSON = String(repeating: "{\"a\":", count: 100) + "1" + String(repeating: "}", count: 100)
        #expect(throws: HCLError.self) { _ = try HCL.parseJSON(deepJSON) }
    }

    @Test func truncatedAndMutatedInputsNeverCrash() {
        var generator = SystemRandomNumberGenerator()
        let sources = [Self.config, #"{"a": [1, 2.5, "x\u00e9", {"b": null}], "c": true}"#]
        for source in sources {
            let scalars = Array(source.unicodeScalars)
            for _ in 0..<1500 {
                var mutated = scalars.prefix(Int.random(in: 0...scalars.count, using: &generator))
                if !mutated.isEmpty, Bool.random(using: &generator) {
                    let index = mutated.index(mutated.startIndex, offsetBy: Int.random(in: 0..<mutated.count, using: &generator))
                    mutated[index] = ["{", "}", "[", "\"", "=", "\n", "\\", "<", "#", "/"].randomElement(using: &generator)!
                }
                let text = String(String.UnicodeScalarView(mutated))
                _ = try? HCL.parseAny(text)
            }
        }
    }
}

@Suite struct JSONParserTests {
    @Test func strictJSONWithLines() throws {
        let members = try HCL.parseJSON("""
            {
              "a": 1,
              "b": [true, false, null, -0.5, 1e2, "\\ud83d\\ude00"],
              "a": {"nested": "x"}
            }
            """)
        #expect(members.map(\.key) == ["a", "b", "a"])
        #expect(members.map(\.line) == [2, 3, 4])
        #expect(members[1].value == .list([.bool(true), .bool(false), .null, .float(-0.5), .float(100), .string("😀")]))
    }

    @Test(arguments: [
        ("[1]", "must be an object"),
        ("{\"a\": 1,}", "expected a quoted key"),
        ("{\"a\" 1}", "expected ':'"),
        ("{\"a\": 01}", "leading zeros"),
        ("{\"a\": tru}", "invalid JSON literal"),
        ("{\"a\": 1} x", "after the JSON value"),
        ("{\"a\": [1,}", "unexpected '}'"),
        ("{\"a\": \"x", "unterminated string"),
    ])
    func rejectsMalformedJSON(text: String, fragment: String) {
        do {
            _ = try HCL.parseJSON(text)
            Issue.record("expected an error for \(text)")
        } catch {
            #expect(error.message.contains(fragment), "\(error)")
        }
    }

    @Test func parseAnyChoosesByFirstCharacter() throws {
        #expect(try HCL.parseAny("  \n{\"a\": 1}").first?.value == .int(1))
        #expect(try HCL.parseAny("a = 1").first?.value == .int(1))
    }
}
