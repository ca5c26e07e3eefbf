/// A compiled path pattern and Vault's priority order between patterns (`isLowerPriority(than:)`
/// spells the rules out).
struct PathPattern: Sendable, Equatable {
    let text: String
    let isGlob: Bool
    /// Segments of the pattern without the trailing `*`.
    let segments: [Substring]
    /// Index of the first `+` or `*` in the pattern, or nil for an exact pattern.
    let firstWildcard: Int?
    let plusCount: Int

    init(_ text: String) {
        self.text = text
        isGlob = text.hasSuffix("*")
        let body = isGlob ? text.dropLast() : Substring(text)
        segments = body.split(separator: "/", omittingEmptySubsequences: false)
        var first: Int?
        var offset = 0
        for segment in segments {
            if segment == "+" {
                first = first ?? offset
            }
            offset += segment.count + 1
        }
        if isGlob { first = min(first ?? Int.max, text.count - 1) }
        firstWildcard = first
        plusCount = segments.filter { $0 == "+" }.count
    }

    var isExact: Bool { firstWildcard == nil }

    /// Whether `path` matches: `+` is exactly one non-empty segment, a trailing `*` any rest.
    func matches(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        func same(_ pattern: Substring, _ part: Substring) -> Bool { pattern == "+" ? !part.isEmpty : pattern == part }
        if !isGlob {
            guard parts.count == segments.count else { return false }
            return zip(segments, parts).allSatisfy(same)
        }
        guard parts.count >= segments.count else { return false }
        for index in 0..<(segments.count - 1) where !same(segments[index], parts[index]) { return false }
        let last = segments[segments.count - 1]
        let rest = parts[(segments.count - 1)...].joined(separator: "/")
        if last == "+" { return !(parts[segments.count - 1]).isEmpty }
        return rest.hasPrefix(last)
    }

    /// True when `self` has lower priority than `other` (Vault's rules, in order): the later
    /// first wildcard wins; not ending in `*` wins; fewer `+` wins; longer wins; then the
    /// lexicographically larger wins.
    func isLowerPriority(than other: PathPattern) -> Bool {
        let mine = firstWildcard ?? Int.max, theirs = other.firstWildcard ?? Int.max
        if mine != theirs { return mine < theirs }
        if isGlob != other.isGlob { return isGlob }
        if plusCount != other.plusCount { return plusCount > other.plusCount }
        if text.count != other.text.count { return text.count < other.text.count }
        return text < other.text
    }
}
