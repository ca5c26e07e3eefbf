import MayflyCron
import Testing

@Suite struct CronDurationTests {
    @Test(arguments: [
        ("90s", 90, "1m30s"), ("10m", 600, "10m"), ("1h30m", 5400, "1h30m"), ("30m1h", 5400, "1h30m"),
        ("1h0m0s", 3600, "1h"), ("3600s", 3600, "1h"), ("0s", 0, "0s"), ("48h", 172_800, "48h"),
        ("1h1m1s", 3661, "1h1m1s"),
    ] as [(String, Int64, String)])
    func parses(_ text: String, _ seconds: Int64, _ description: String) throws {
        let duration = try CronDuration(text)
        #expect(duration.seconds == seconds)
        #expect(duration.description == description)
        #expect(duration == CronDuration(seconds: seconds))
    }

    @Test(arguments: ["", "10", "h", "1x", "1.5h", "-1h", "1h 30m", "1H", "10ms", "99999999999999h"])
    func refuses(_ text: String) {
        #expect(throws: CronError.self) { try CronDuration(text) }
    }
}
