#if canImport(Glibc)
import Glibc
#endif

/// Gives freed heap memory back to the operating system after work that touched a lot of it
/// (a reconcile paging through a million lease rows): glibc keeps freed pages in its arenas
/// otherwise, and the server's idle RSS would stay at its peak.
enum MemoryTrim {
    static func release() {
        #if canImport(Glibc)
        _ = malloc_trim(0)
        #endif
    }
}
