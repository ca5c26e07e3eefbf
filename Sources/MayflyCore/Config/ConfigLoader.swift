import Foundation
import MayflyCron
import MayflyHCL
import MayflyStore

/// Reads a config file (HCL, or JSON when it starts with `{`) into `MayflyConfig`. Every
/// problem is reported with the file, the line and what is wrong; unknown keys are errors.
public enum ConfigLoader {
    /// Loads and validates `path`.
    public static func load(path: String) throws(ConfigError) -> MayflyConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, line: 0, "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, line: 0, "the file is not UTF-8 text")
        }
        return try parse(text, file: path)
    }

    /// Parses and validates config text; `file` is used in messages and to resolve nothing else.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> MayflyConfig {
        let members: [HCLMember]
        do {
            members = try HCL.parseAny(text)
        } catch {
            throw ConfigError(file: file, line: error.line, error.message)
        }
        var reader = Reader(file: file)
        return try reader.read(members)
    }

    private struct Reader {
        let file: String
        var storagePath: String?
        var config = MayflyConfig(storagePath: "")
        var sealSeen = false
        // HA: `ha_enabled`, `lock_ttl`, `node_id` (storage "postgresql"), `api_addr`, `cluster_addr`.
        var haEnabled = false
        var lockTTL = 10.0
        var nodeID: String?
        var apiAddress: String?
        var clusterAddress: (value: String, line: Int)?

        func fail(_ line: Int, _ message: String) -> ConfigError { ConfigError(file: file, line: line, message) }

        /// Blocks may arrive as an object (one block, or several labels) or, in JSON, as a
        /// list of objects; this flattens them to (label, body, line).
        /// The labelled blocks of `member` that declare a `kind` each: names checked, none
        /// declared twice (here, or among `declared`, the names of earlier stanzas).
        func declarations(_ member: HCLMember, _ kind: String, declared: [String]) throws(ConfigError)
            -> [(String, [HCLMember], Int)]
        {
            var seen = Set(declared)
            let blocks = try labelled(member)
            for (name, _, line) in blocks {
                try checkName(name, kind, line)
                guard seen.insert(name).inserted else { throw fail(line, "\(kind) \"\(name)\" is declared twice") }
            }
            return blocks
        }

        func labelled(_ member: HCLMember) throws(ConfigError) -> [(String, [HCLMember], Int)] {
            var values: [HCLValue] = [member.value]
            if case .list(let items) = member.value { values = items }
            var result: [(String, [HCLMember], Int)] = []
            for value in values {
                guard case .object(let labels) = value, !labels.isEmpty else {
                    throw fail(member.line, "\(member.key) needs a label, e.g. \(member.key) \"name\" { … }")
                }
                for label in labels {
                    guard case .object(let body) = label.value else {
                        throw fail(label.line, "\(member.key) \"\(label.key)\" must be a block { … }")
                    }
                    result.append((label.key, body, label.line))
                }
            }
            return result
        }

        /// The body of an unlabelled block such as `policies { … }`.
        func block(_ member: HCLMember) throws(ConfigError) -> [HCLMember] {
            guard case .object(let body) = member.value else { throw fail(member.line, "\(member.key) must be a block { … }") }
            return body
        }

        func string(_ member: HCLMember) throws(ConfigError) -> String {
            guard let value = member.value.stringValue else {
                throw fail(member.line, "\(member.key) must be a string, got \(member.value.typeName)")
            }
            return value
        }

        func bool(_ member: HCLMember) throws(ConfigError) -> Bool {
            guard let value = member.value.boolValue else {
                throw fail(member.line, "\(member.key) must be true or false, got \(member.value.typeName)")
            }
            return value
        }

        func duration(_ member: HCLMember) throws(ConfigError) -> Int64 {
            if let int = member.value.intValue, (0...DurationParser.maximum).contains(int) { return int }
            if let text = member.value.stringValue, let seconds = DurationParser.seconds(text) { return seconds }
            throw fail(member.line, "\(member.key) must be a duration such as \"15m\" or \"24h\" (at most 100 years)")
        }

        /// A listener timeout: a duration of at least one second and at most a day.
        func timeout(_ member: HCLMember) throws(ConfigError) -> Int64 {
            let seconds = try duration(member)
            guard (1...86_400).contains(seconds) else {
                throw fail(member.line, "\(member.key) must be between 1s and 24h")
            }
            return seconds
        }

        /// A whole number in `range`: a value of another type is "must be a number, got …", a
        /// number outside the range "must be `what`".
        func integer(_ member: HCLMember, _ range: ClosedRange<Int64>, _ what: String) throws(ConfigError) -> Int64 {
            guard let value = member.value.intValue else {
                throw fail(member.line, "\(member.key) must be a number, got \(member.value.typeName)")
            }
            guard range.contains(value) else { throw fail(member.line, "\(member.key) must be \(what)") }
            return value
        }

        /// A listener's `max_connections`: 1 to 1,000,000.
        func connectionCap(_ member: HCLMember) throws(ConfigError) -> Int {
            Int(try integer(member, 1...1_000_000, "between 1 and 1000000"))
        }

        /// An IANA time zone, checked where it is written.
        func timeZone(_ member: HCLMember) throws(ConfigError) -> String {
            let zone = try string(member)
            guard TimeZone(identifier: zone) != nil else {
                throw fail(member.line, "\(member.key) \"\(zone)\" is not a known time zone (an IANA name such as \"Europe/Berlin\")")
            }
            return zone
        }

        mutating func read(_ members: [HCLMember]) throws(ConfigError) -> MayflyConfig {
            for member in members {
                switch member.key {
                case "storage": try readStorage(member)
                case "listener": try readListeners(member)
                case "seal": try readSeal(member)
                case "log_level": try readLogLevel(member)
                case "max_request_size":
                    config.maxRequestSize = Int(try integer(member, 1...(1 << 30), "a positive number of bytes (at most 1 GiB)"))
                case "scram_iterations":
                    config.scramIterations = Int(try integer(member, 1...100_000, "between 1 and 100000"))
                case "keyring_rotation_schedule": try readKeyringRotationSchedule(member)
                case "keyring_rewrap_rate":
                    config.keyringRewrapRate = Int(try integer(member, 1...100_000, "between 1 and 100000 entries per second"))
                case "limits": try readLimits(member)
                case "scheduler": try readScheduler(member)
                case "default_lease_ttl": config.defaultLeaseTTL = try duration(member)
                case "max_lease_ttl": config.maxLeaseTTL = try duration(member)
                case "database": try readDatabases(member)
                case "role": try readRoles(member)
                case "static_role": try readStaticRoles(member)
                case "bind": try readBindings(member)
                case "audit": try readAudit(member)
                case "policies": try readPolicies(member)
                case "telemetry": try readTelemetry(member)
                case "login_rate_limit":
                    config.loginRateLimit = Int(try integer(member, 0...1_000_000, "a number of attempts per minute (0 disables)"))
                case "api_addr": apiAddress = try string(member)
                case "cluster_addr": clusterAddress = (try string(member), member.line)
                case "disable_mlock", "ui", "cluster_name":
                    continue  // accepted for Vault config compatibility; no effect here
                default:
                    throw fail(member.line, "unknown setting \"\(member.key)\"")
                }
            }
            guard let storagePath else {
                throw fail(0, "missing storage stanza, e.g. storage \"sqlite\" { path = \"/var/lib/mayfly/mayfly.db\" }")
            }
            config.storagePath = storagePath
            guard !config.unixListeners.isEmpty || !config.tcpListeners.isEmpty else {
                throw fail(0, "no listener: add listener \"unix\" { path = … } or listener \"tcp\" { … }")
            }
            guard config.defaultLeaseTTL <= config.maxLeaseTTL else {
                throw fail(0, "default_lease_ttl is longer than max_lease_ttl")
            }
            if haEnabled {
                let ha = try haConfig()
                config.postgresStorage?.ha = ha
            }
            for (role, line) in zip(config.staticRoles, staticRoleLines)
            where !config.databases.contains(where: { $0.name == role.database }) {
                throw fail(line, "static_role \"\(role.name)\" names database \"\(role.database)\", which no database stanza declares")
            }
            for (role, line) in zip(config.roles, roleLines) {
                guard let database = config.databases.first(where: { $0.name == role.database }) else {
                    throw fail(line, "role \"\(role.name)\" names database \"\(role.database)\", which no database stanza declares")
                }
                // The API's checks, with this stanza's file and line.
                do {
                    try DatabaseRole(declared: role).validate(connectionBudget: database.connectionBudget)
                } catch let error as APIError {
                    throw fail(line, "role \"\(role.name)\": " + error.messages.joined(separator: "; "))
                } catch {
                    throw fail(line, "role \"\(role.name)\": \(error)")
                }
            }
            return config
        }

        /// The HA settings once the whole file is read: `cluster_addr` is required (standbys
        /// forward to it), `api_addr` defaults to the first TCP listener, `node_id` to the host
        /// name and the cluster port.
        func haConfig() throws(ConfigError) -> HAConfig {
            guard let clusterAddress else {
                throw fail(0, "ha_enabled needs cluster_addr = \"https://host:port\": where the other nodes forward requests to this one")
            }
            guard let url = URLComponents(string: clusterAddress.value), url.scheme == "https", let host = url.host,
                !host.isEmpty, let port = url.port, (1...65535).contains(port), url.path.isEmpty || url.path == "/"
            else {
                throw fail(clusterAddress.line, "cluster_addr must be https://host:port (a port of its own, not a listener's)")
            }
            guard !config.tcpListeners.contains(where: { $0.port == port && ($0.host == host || $0.host == "0.0.0.0") }) else {
                throw fail(clusterAddress.line, "cluster_addr \(clusterAddress.value) is a listener's address: the cluster port is a port of its own")
            }
            let api = apiAddress ?? config.tcpListeners.first.map { "https://\($0.host):\($0.port)" } ?? ""
            var name = nodeID
            if name == nil {
                var buffer = [CChar](repeating: 0, count: 256)
                gethostname(&buffer, buffer.count - 1)
                name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + ":\(port)"
            }
            var ha = HAConfig(nodeID: name!, clusterHost: host, clusterPort: port, apiAddress: api)
            ha.lockTTL = lockTTL
            return ha
        }

        mutating func readLogLevel(_ member: HCLMember) throws(ConfigError) {
            let level = try string(member).lowercased()
            guard ["trace", "debug", "info", "notice", "warning", "warn", "error", "critical"].contains(level) else {
                throw fail(member.line, "log_level must be one of trace, debug, info, notice, warning, error, critical")
            }
            config.logLevel = level == "warn" ? "warning" : level
        }

        mutating func readKeyringRotationSchedule(_ member: HCLMember) throws(ConfigError) {
            let schedule = try string(member)
            do {
                _ = try CronSchedule(schedule)
            } catch {
                throw fail(member.line, "keyring_rotation_schedule: \(error.description)")
            }
            config.keyringRotationSchedule = schedule
        }

        mutating func readLimits(_ member: HCLMember) throws(ConfigError) {
            for item in try block(member) {
                let value = try integer(item, 0...1_000_000, "between 0 (no limit) and 1000000")
                switch item.key {
                case "leases_per_identity": config.leasesPerIdentity = Int(value)
                case "issues_per_identity_per_minute": config.issuesPerIdentityPerMinute = Int(value)
                default: throw fail(item.line, "unknown setting \"\(item.key)\" in limits")
                }
            }
        }

        mutating func readScheduler(_ member: HCLMember) throws(ConfigError) {
            for item in try block(member) {
                switch item.key {
                case "jitter": config.schedulerJitter = try duration(item)
                case "history_retention": config.jobHistoryRetention = try duration(item)
                default: throw fail(item.line, "unknown setting \"\(item.key)\" in scheduler")
                }
            }
        }

        mutating func readAudit(_ member: HCLMember) throws(ConfigError) {
            for (kind, body, line) in try labelled(member) {
                guard kind == "file" else { throw fail(line, "unknown audit device \"\(kind)\" (only \"file\")") }
                guard config.auditPath == nil else { throw fail(line, "only one audit \"file\" device") }
                for item in body {
                    switch item.key {
                    case "path", "file_path": config.auditPath = try string(item)
                    default: throw fail(item.line, "unknown setting \"\(item.key)\" in audit \"file\"")
                    }
                }
                guard config.auditPath?.isEmpty == false else { throw fail(line, "audit \"file\" needs path = \"…\"") }
            }
        }

        mutating func readPolicies(_ member: HCLMember) throws(ConfigError) {
            for item in try block(member) {
                switch item.key {
                case "directory": config.policyDirectory = try string(item)
                default: throw fail(item.line, "unknown setting \"\(item.key)\" in policies")
                }
            }
        }

        mutating func readTelemetry(_ member: HCLMember) throws(ConfigError) {
            for item in try block(member) {
                switch item.key {
                case "unauthenticated_metrics_access": config.unauthenticatedMetrics = try bool(item)
                default: throw fail(item.line, "unknown setting \"\(item.key)\" in telemetry")
                }
            }
        }

        mutating func readStorage(_ member: HCLMember) throws(ConfigError) {
            for (label, body, line) in try labelled(member) {
                guard storagePath == nil else { throw fail(line, "storage is configured twice") }
                if label == "postgresql" {
                    try readPostgresStorage(body, line)
                    continue
                }
                guard label == "sqlite" else {
                    throw fail(line, "unsupported storage \"\(label)\" (supported: sqlite, postgresql)")
                }
                var path: String?
                for item in body {
                    switch item.key {
                    case "path": path = try string(item)
                    case "ha_enabled", "lock_ttl", "node_id":
                        throw fail(item.line, "\(item.key) needs storage \"postgresql\": a SQLite store is one node's file")
                    default: throw fail(item.line, "unknown setting \"\(item.key)\" in storage \"sqlite\"")
                    }
                }
                guard let path, !path.isEmpty else { throw fail(line, "storage \"sqlite\" needs path = \"…\"") }
                storagePath = path
            }
        }

        /// `storage "postgresql" { connection_url, password_file, schema, max_connections, tls_insecure_allow }`.
        mutating func readPostgresStorage(_ body: [HCLMember], _ line: Int) throws(ConfigError) {
            var store = PostgresStoreConfig(connectionURL: "")
            for item in body {
                switch item.key {
                case "connection_url": store.connectionURL = try string(item)
                case "password_file": store.passwordFile = try string(item)
                case "schema": store.schema = try string(item)
                case "max_connections": store.maxConnections = Int(try integer(item, 1...64, "between 1 and 64"))
                case "tls_insecure_allow": store.tlsInsecureAllow = try bool(item)
                case "ha_enabled": haEnabled = try bool(item)
                case "lock_ttl":
                    let ttl = try duration(item)
                    guard (2...300).contains(ttl) else { throw fail(item.line, "lock_ttl must be between 2s and 300s") }
                    lockTTL = Double(ttl)
                case "node_id":
                    let id = try string(item)
                    guard !id.isEmpty, id.count <= 128, !id.contains("/"), id.unicodeScalars.allSatisfy({ $0.value > 32 && $0.value < 127 }) else {
                        throw fail(item.line, "node_id must be 1-128 printable ASCII characters without spaces or \"/\"")
                    }
                    nodeID = id
                default: throw fail(item.line, "unknown setting \"\(item.key)\" in storage \"postgresql\"")
                }
            }
            guard !store.connectionURL.isEmpty else { throw fail(line, "storage \"postgresql\" needs connection_url = \"…\"") }
            do {
                try PostgresBackend.checkURL(store.connectionURL, tlsInsecureAllow: store.tlsInsecureAllow)
            } catch let error as APIError {
                throw fail(line, "storage \"postgresql\": \(error.messages.joined(separator: "; "))")
            } catch {
                throw fail(line, "storage \"postgresql\": invalid connection_url")
            }
            guard PostgresStorage.isValidSchema(store.schema) else {
                throw fail(line, "storage \"postgresql\": \(PostgresStorage.schemaRule)")
            }
            if let file = store.passwordFile, !FileManager.default.isReadableFile(atPath: file) {
                throw fail(line, "storage \"postgresql\": cannot read password_file \(file)")
            }
            storagePath = ""
            config.postgresStorage = store
        }

        mutating func readListeners(_ member: HCLMember) throws(ConfigError) {
            for (label, body, line) in try labelled(member) {
                switch label {
                case "unix":
                    var listener = UnixListenerConfig(path: "")
                    for item in body {
                        switch item.key {
                        case "path": listener.path = try string(item)
                        case "group": listener.group = try string(item)
                        case "mode":
                            guard let text = item.value.stringValue, let mode = UInt16(text, radix: 8), mode <= 0o777 else {
                                throw fail(item.line, "mode must be an octal string such as \"0660\"")
                            }
                            guard mode & 0o007 == 0 else {
                                throw fail(item.line, "mode must not give access to others (use a group instead)")
                            }
                            listener.mode = mode
                        case "http_read_header_timeout": listener.readHeaderTimeout = try timeout(item)
                        case "http_read_timeout": listener.readTimeout = try timeout(item)
                        case "http_idle_timeout": listener.idleTimeout = try timeout(item)
                        case "max_connections": listener.maxConnections = try connectionCap(item)
                        default: throw fail(item.line, "unknown setting \"\(item.key)\" in listener \"unix\"")
                        }
                    }
                    guard !listener.path.isEmpty else { throw fail(line, "listener \"unix\" needs path = \"…\"") }
                    guard listener.path.utf8.count < 108 else {
                        throw fail(line, "the socket path is longer than 107 bytes, the Unix limit")
                    }
                    config.unixListeners.append(listener)
                case "tcp":
                    var address: String?
                    var cert: String?, key: String?, clientCA: String?
                    var requireClient = false, minimum = "tls12"
                    // Collects the optional connection settings, starting from the type's defaults.
                    var limits = TCPListenerConfig(host: "", port: 0, certFile: "", keyFile: "")
                    for item in body {
                        switch item.key {
                        case "address": address = try string(item)
                        case "tls_cert_file": cert = try string(item)
                        case "tls_key_file": key = try string(item)
                        case "tls_client_ca_file": clientCA = try string(item)
                        case "tls_require_client_cert": requireClient = try bool(item)
                        case "tls_min_version":
                            minimum = try string(item)
                            guard minimum == "tls12" || minimum == "tls13" else {
                                throw fail(item.line, "tls_min_version must be \"tls12\" or \"tls13\"")
                            }
                        case "tls_disable":
                            if try bool(item) {
                                throw fail(item.line, "tls_disable is not supported: the TCP listener always uses TLS")
                            }
                        case "http_read_header_timeout": limits.readHeaderTimeout = try timeout(item)
                        case "http_read_timeout": limits.readTimeout = try timeout(item)
                        case "http_idle_timeout": limits.idleTimeout = try timeout(item)
                        case "tls_handshake_timeout": limits.tlsHandshakeTimeout = try timeout(item)
                        case "max_connections": limits.maxConnections = try connectionCap(item)
                        default: throw fail(item.line, "unknown setting \"\(item.key)\" in listener \"tcp\"")
                        }
                    }
                    guard let address else { throw fail(line, "listener \"tcp\" needs address = \"host:port\"") }
                    guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
                        (0...65535).contains(port)
                    else { throw fail(line, "address must be host:port, got \"\(address)\"") }
                    var host = String(address[..<colon])
                    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
                    guard let cert, let key else {
                        throw fail(line, "listener \"tcp\" needs tls_cert_file and tls_key_file (TLS is required)")
                    }
                    if requireClient && clientCA == nil {
                        throw fail(line, "tls_require_client_cert needs tls_client_ca_file")
                    }
                    config.tcpListeners.append(TCPListenerConfig(
                        host: host.isEmpty ? "0.0.0.0" : host, port: port, certFile: cert, keyFile: key,
                        clientCAFile: clientCA, requireClientCert: requireClient, minimumTLSVersion: minimum,
                        readHeaderTimeout: limits.readHeaderTimeout, idleTimeout: limits.idleTimeout,
                        tlsHandshakeTimeout: limits.tlsHandshakeTimeout, maxConnections: limits.maxConnections,
                        readTimeout: limits.readTimeout))
                default:
                    throw fail(line, "unsupported listener \"\(label)\" (supported: unix, tcp)")
                }
            }
        }

        var roleLines: [Int] = []
        var staticRoleLines: [Int] = []

        func strings(_ member: HCLMember) throws(ConfigError) -> [String] {
            guard let items = member.value.listValue else {
                throw fail(member.line, "\(member.key) must be a list of strings")
            }
            var result: [String] = []
            for item in items {
                guard let text = item.stringValue else { throw fail(member.line, "\(member.key) must be a list of strings") }
                result.append(text)
            }
            return result
        }

        func checkName(_ name: String, _ kind: String, _ line: Int) throws(ConfigError) {
            do {
                try Names.validate(name, kind: kind)
            } catch {
                throw fail(line, (error as? APIError)?.messages.first ?? "invalid \(kind) name")
            }
        }

        mutating func readDatabases(_ member: HCLMember) throws(ConfigError) {
            for (name, body, line) in try declarations(member, "database", declared: config.databases.map(\.name)) {
                var database = DeclaredDatabase(name: name, connectionURL: "")
                for item in body {
                    switch item.key {
                    case "connection_url": database.connectionURL = try string(item)
                    case "password_file": database.passwordFile = try string(item)
                    case "max_connections":
                        database.maxConnections = Int(try integer(item, 1...64, "between 1 and 64"))
                    case "owner_on_revoke": database.ownerOnRevoke = try string(item)
                    case "allowed_roles": database.allowedRoles = try strings(item)
                    case "tls_insecure_allow": database.tlsInsecureAllow = try bool(item)
                    case "connection_budget":
                        let share: Double? = switch item.value {
                        case .float(let value): value
                        case .int(let value): Double(value)
                        default: nil
                        }
                        guard let share, share >= 0, share <= 1 else {
                            throw fail(item.line, "connection_budget must be a share of max_connections between 0 and 1, e.g. 0.8 (0 turns it off)")
                        }
                        database.connectionBudget = share
                    case "root_rotation_schedule":
                        let schedule = try string(item)
                        do {
                            _ = try CronSchedule(schedule)
                        } catch {
                            throw fail(item.line, "root_rotation_schedule: \(error.description)")
                        }
                        database.rootRotationSchedule = schedule
                    default: throw fail(item.line, "unknown setting \"\(item.key)\" in database \"\(name)\"")
                    }
                }
                guard !database.connectionURL.isEmpty else { throw fail(line, "database \"\(name)\" needs connection_url") }
                do {
                    try PostgresBackend.checkURL(database.connectionURL, tlsInsecureAllow: database.tlsInsecureAllow)
                } catch let error as APIError {
                    throw fail(line, "database \"\(name)\": \(error.messages.joined(separator: "; "))")
                } catch {
                    throw fail(line, "database \"\(name)\": invalid connection_url")
                }
                if let file = database.passwordFile, !FileManager.default.isReadableFile(atPath: file) {
                    throw fail(line, "database \"\(name)\": cannot read password_file \(file)")
                }
                config.databases.append(database)
            }
        }

        mutating func readBindings(_ member: HCLMember) throws(ConfigError) {
            for (identity, body, line) in try labelled(member) {
                var binding = Binding(identity: identity, policies: [])
                var named = false
                for item in body {
                    switch item.key {
                    case "policies":
                        binding.policies = try strings(item)
                        named = true
                    default: throw fail(item.line, "unknown setting \"\(item.key)\" in bind \"\(identity)\"")
                    }
                }
                guard named else { throw fail(line, "bind \"\(identity)\" needs policies = [\"…\"]") }
                do {
                    _ = try BindingTable([binding])
                } catch {
                    throw fail(line, error.description)
                }
                config.bindings.append(binding)
            }
        }

        mutating func readRoles(_ member: HCLMember) throws(ConfigError) {
            for (name, body, line) in try declarations(member, "role", declared: config.roles.map(\.name)) {
                var role = DeclaredRole(name: name, database: "")
                for item in body {
                    switch item.key {
                    case "database": role.database = try string(item)
                    case "member_of": role.memberOf = try strings(item)
                    case "default_ttl": role.defaultTTL = try duration(item)
                    case "max_ttl": role.maxTTL = try duration(item)
                    case "connection_limit":
                        role.connectionLimit = Int(try integer(item, -1...10000, "between -1 and 10000"))
                    case "creation_statements": role.creationStatements = try strings(item)
                    case "revocation_statements": role.revocationStatements = try strings(item)
                    case "renew_statements": role.renewStatements = try strings(item)
                    case "coalesce": role.coalesce = try bool(item)
                    default: throw fail(item.line, "unknown setting \"\(item.key)\" in role \"\(name)\"")
                    }
                }
                guard !role.database.isEmpty else { throw fail(line, "role \"\(name)\" needs database = \"…\"") }
                role.source = "\(file):\(line)"
                config.roles.append(role)
                roleLines.append(line)
            }
        }

        mutating func readStaticRoles(_ member: HCLMember) throws(ConfigError) {
            for (name, body, line) in try declarations(member, "static_role", declared: config.staticRoles.map(\.name)) {
                var role = DeclaredStaticRole(name: name, database: "", username: "")
                var scheduleLine = line
                for item in body {
                    switch item.key {
                    case "database", "db_name": role.database = try string(item)
                    case "username": role.username = try string(item)
                    case "strategy":
                        role.strategy = try string(item)
                        guard ["single", "alternating"].contains(role.strategy) else {
                            throw fail(item.line, "strategy must be \"single\" or \"alternating\"")
                        }
                    case "member_of": role.memberOf = try strings(item)
                    case "rotation_schedule":
                        role.rotationSchedule = try string(item)
                        scheduleLine = item.line
                    case "rotation_period": role.rotationPeriod = try duration(item)
                    case "time_zone": role.timeZone = try timeZone(item)
                    case "rotation_statements": role.rotationStatements = try strings(item)
                    default: throw fail(item.line, "unknown setting \"\(item.key)\" in static_role \"\(name)\"")
                    }
                }
                guard !role.database.isEmpty else { throw fail(line, "static_role \"\(name)\" needs database = \"…\"") }
                guard !role.username.isEmpty else { throw fail(line, "static_role \"\(name)\" needs username = \"…\"") }
                switch (role.rotationSchedule, role.rotationPeriod) {
                case (nil, nil): throw fail(line, "static_role \"\(name)\" needs rotation_schedule or rotation_period")
                case (.some, .some): throw fail(line, "static_role \"\(name)\": set rotation_schedule or rotation_period, not both")
                case (let schedule?, nil):
                    do {
                        _ = try CronSchedule(schedule, timeZone: role.timeZone)
                    } catch {
                        throw fail(scheduleLine, "static_role \"\(name)\": rotation_schedule: \(error.description)")
                    }
                case (nil, let period?):
                    guard period >= 5 else { throw fail(line, "static_role \"\(name)\": rotation_period must be at least 5s") }
                }
                config.staticRoles.append(role)
                staticRoleLines.append(line)
            }
        }

        mutating func readSeal(_ member: HCLMember) throws(ConfigError) {
            for (label, body, line) in try labelled(member) {
                guard !sealSeen else { throw fail(line, "seal is configured twice") }
                sealSeen = true
                switch label {
                case "shamir":
                    if let item = body.first { throw fail(item.line, "unknown setting \"\(item.key)\" in seal \"shamir\"") }
                    config.seal = .shamir
                case "keyfile":
                    var path: String?
                    for item in body {
                        switch item.key {
                        case "path": path = try string(item)
                        default: throw fail(item.line, "unknown setting \"\(item.key)\" in seal \"keyfile\"")
                        }
                    }
                    guard let path, !path.isEmpty else { throw fail(line, "seal \"keyfile\" needs path = \"…\"") }
                    config.seal = .keyFile(path: path)
                default:
                    throw fail(line, "unsupported seal \"\(label)\" (supported: shamir, keyfile)")
                }
            }
        }
    }
}
