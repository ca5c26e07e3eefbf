public import Foundation

/// RFC 3339 timestamps with nanoseconds, as Vault prints them (`2024-03-04T13:48:47.123456789Z`).
public enum Timestamp {
    /// `date` formatted in UTC with nine fractional digits.
    public static func rfc3339(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970
        let whole = floor(seconds)
        let nanos = Int(((seconds - whole) * 1e9).rounded())
        var time = time_t(whole)
        var parts = tm()
        gmtime_r(&time, &parts)
        let nanoText = String(min(nanos, 999_999_999))
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%@Z",
            Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
            Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec),
            String(repeating: "0", count: 9 - nanoText.count) + nanoText)
    }

    /// `2026-01-02 15:04:05+0000`: the `VALID UNTIL` and `{{expiration}}` format.
    public static func postgres(_ unixSeconds: Int64) -> String {
        var time = time_t(unixSeconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d+0000", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }
}
