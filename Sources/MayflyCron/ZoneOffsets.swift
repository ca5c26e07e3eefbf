import Foundation

/// A time zone's UTC offsets over a stretch of time, for turning wall-clock times (seconds
/// since 1970-01-01 00:00 as if the wall clock were UTC) into instants (Unix seconds).
struct ZoneOffsets {
    /// `offsets[i]` (seconds east of UTC) is in force from `starts[i]` until `starts[i + 1]`;
    /// the first also before the stretch, the last also after it.
    private var starts: [Int64]
    private var offsets: [Int64]

    init(_ zone: TimeZone, from start: Int64, to end: Int64) {
        var cursor = Date(timeIntervalSince1970: TimeInterval(start))
        starts = [start]
        offsets = [Int64(zone.secondsFromGMT(for: cursor))]
        while let next = zone.nextDaylightSavingTimeTransition(after: cursor), next > cursor,
            next.timeIntervalSince1970 < TimeInterval(end)
        {
            let offset = Int64(zone.secondsFromGMT(for: next))
            if offset != offsets[offsets.count - 1] {
                starts.append(Int64(next.timeIntervalSince1970.rounded(.up)))
                offsets.append(offset)
            }
            cursor = next
        }
    }

    /// The offset when it does not change over the stretch.
    var fixed: Int64? { offsets.count == 1 ? offsets[0] : nil }

    /// The first and the last instant showing `wall`: the same one normally, two different
    /// ones in a repeated hour (fall back), nil in a skipped one (spring forward).
    func instants(_ wall: Int64) -> (first: Int64, last: Int64)? {
        var found: (first: Int64, last: Int64)?
        for index in offsets.indices {
            let instant = wall - offsets[index]
            guard index == 0 || instant >= starts[index] else { continue }
            guard index == offsets.count - 1 || instant < starts[index + 1] else { continue }
            found = (found?.first ?? instant, instant)
        }
        return found
    }

    /// The instant a skipped stretch of wall-clock time containing `wall` ends.
    func gapEnd(_ wall: Int64) -> Int64? {
        for index in offsets.indices.dropFirst() {
            let start = starts[index]
            if wall - offsets[index - 1] >= start, wall - offsets[index] < start { return start }
        }
        return nil
    }
}
