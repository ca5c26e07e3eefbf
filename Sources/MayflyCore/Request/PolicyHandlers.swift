import Logging

/// `sys/policies/acl/:name` and the older `sys/policy/:name` (both spellings Vault
/// clients use).
enum PolicyHandlers {
    static func handle(_ broker: Broker, _ request: LogicalRequest) async throws -> LogicalResponse {
        let store = broker.policies
        // The route table matched `sys/policy[/NAME]` or `sys/policies/acl[/NAME]` on whole
        // segments; the name is the segment after the base, exactly as the ACL saw it.
        let segments = RequestPath.segments(request.path)
        let legacy = segments.count <= 3 && segments[1] == "policy"
        let base = legacy ? 2 : 3
        let name = segments.count > base ? String(segments[base]) : ""
        if name.isEmpty {
            guard request.operation == .list || (legacy && request.operation == .read) else { throw APIError.unsupportedOperation }
            let names = store.names()
            return .envelope(Envelope(data: legacy ? ["policies": .strings(names), "keys": .strings(names)] : ["keys": .strings(names)],
                                      injectData: legacy))
        }
        try PolicyStore.validate(name: name)
        switch request.operation {
        case .read:
            guard let text = try await store.text(name) else { throw APIError.notFound }
            if legacy {
                return .envelope(Envelope(data: ["name": .string(name), "rules": .string(text)], injectData: true))
            }
            return .envelope(Envelope(data: ["name": .string(name), "policy": .string(text)]))
        case .update:
            guard let text = (request.data["policy"] ?? request.data["rules"])?.stringValue, !text.isEmpty else {
                throw APIError.badRequest("'policy' parameter not supplied or empty")
            }
            try await store.write(name: name, text: text)
            broker.logger.notice("policy written", metadata: ["policy": "\(name)"])
            return .noContent
        case .delete:
            try await store.delete(name: name)
            return .noContent
        default:
            throw APIError.unsupportedOperation
        }
    }
}
