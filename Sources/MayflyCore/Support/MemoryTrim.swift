#if canImport(Glibc)
import Glibc
#endif

/// Gives freed heap memory back to the operating system after work that touched a lot of it
/// (a reconcile paging through a million lease rows): glibc keeps freed pages in its arenas
/// otherwise, and the server's idle RSS would stay at its peak.
enum MemoryTrim {
    /// glibc's `malloc_trim`, looked up at run time: it is a GNU extension that Swift's Glibc
    /// module (built without `_GNU_SOURCE`) does not declare. Absent elsewhere (nil).
    private static let trim: (@convention(c) (Int) -> Int32)? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(nil, "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        #else
        return nil
        #endif
    }()

    static func release() {
        _ = trim?(0)
    }
}
