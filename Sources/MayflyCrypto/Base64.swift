import CSodium

/// Base64 through libsodium (constant-time with respect to the data).
public enum Base64 {
    /// Standard alphabet with padding.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        encode(bytes, variant: sodium_base64_VARIANT_ORIGINAL)
    }

    /// URL-safe alphabet without padding.
    public static func encodeURLSafeNoPadding(_ bytes: some Collection<UInt8>) -> String {
        encode(bytes, variant: sodium_base64_VARIANT_URLSAFE_NO_PADDING)
    }

    private static func encode(_ bytes: some Collection<UInt8>, variant: Int32) -> String {
        Sodium.ensureInitialized()
        let input = Array(bytes)
        var output = [CChar](repeating: 0, count: sodium_base64_encoded_len(input.count, variant))
        _ = sodium_bin2base64(&output, output.count, input, input.count, variant)
        return String(decoding: output.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Decodes standard base64, with or without padding; nil when malformed.
    public static func decode(_ text: String) -> [UInt8]? {
        Sodium.ensureInitialized()
        let variant = text.hasSuffix("=") ? sodium_base64_VARIANT_ORIGINAL : sodium_base64_VARIANT_ORIGINAL_NO_PADDING
        let input = Array(text.utf8)
        var output = [UInt8](repeating: 0, count: input.count * 3 / 4 + 3)
        var length = 0
        // With no end pointer, libsodium fails unless the whole input is valid base64.
        let result = input.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) {
                sodium_base642bin(&output, output.count, $0.baseAddress, input.count, nil, &length, nil, variant)
            }
        }
        guard result == 0, !input.isEmpty else { return nil }
        return Array(output.prefix(length))
    }
}
