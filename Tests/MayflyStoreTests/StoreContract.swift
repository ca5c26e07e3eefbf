import MayflyStore
import Testing

/// What every store must do the same way, run by each store's suite against a fresh store.
enum StoreContract {
    /// A conditional put conflicts on another version, and a failed commit leaves nothing.
    static func conditionalPuts(_ storage: any Storage) async throws {
        try await storage.commit([.put(StoredEntry(path: "x", version: 1, value: [1]), expectedVersion: 0)])
        await #expect(throws: StorageError.self) {
            try await storage.commit([
                .put(StoredEntry(path: "y", version: 1, value: [2]), expectedVersion: 0),
                .put(StoredEntry(path: "x", version: 2, value: [3]), expectedVersion: 0),
            ])
        }
        #expect(try await storage.get("y") == nil, "a failed commit must leave no partial state")
        #expect(try await storage.get("x")?.value == [1])
        await #expect(throws: StorageError.self) {
            try await storage.commit([.put(StoredEntry(path: "x", version: 3, value: [4]), expectedVersion: 2)])
        }
        try await storage.commit([.put(StoredEntry(path: "x", version: 2, value: [5]), expectedVersion: 1)])
        #expect(try await storage.get("x") == StoredEntry(path: "x", version: 2, value: [5]))
        #expect(try await storage.version(of: "x") == 2)
        #expect(try await storage.version(of: "nothing") == 0)
    }

    /// Children and paths come sorted bytewise, folders once; a prefix delete takes its subtree only.
    static func listings(_ storage: any Storage) async throws {
        let paths = ["kv/a", "kv/a/b", "kv/a/c/d", "kv/a-b", "kv/b", "kv/c/d/e", "other/x", "t/a/1", "t/a/2", "t/ab", "t/b"]
        try await storage.commit(paths.map { .put(StoredEntry(path: $0, version: 1, value: [0]), expectedVersion: nil) })
        #expect(try await storage.listChildren(of: "kv/") == ["a", "a-b", "a/", "b", "c/"])
        #expect(try await storage.listChildren(of: "kv/a/") == ["b", "c/"])
        #expect(try await storage.listChildren(of: "kv/zzz/") == [])
        #expect(try await storage.paths(withPrefix: "kv/a", after: nil, limit: 10) == ["kv/a", "kv/a-b", "kv/a/b", "kv/a/c/d"])
        #expect(try await storage.paths(withPrefix: "kv/", after: "kv/a/b", limit: 2) == ["kv/a/c/d", "kv/b"])
        try await storage.commit([.deletePrefix("t/a/"), .delete(path: "kv/b")])
        #expect(try await storage.paths(withPrefix: "t/", after: nil, limit: 10) == ["t/ab", "t/b"])
        #expect(try await storage.get("kv/b") == nil)
    }
}
