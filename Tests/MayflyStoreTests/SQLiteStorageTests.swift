import Foundation
import MayflyMigrations
import MayflyStore
import Testing

@Suite struct SQLiteStorageTests {
    static func temporaryPath() -> String {
        NSTemporaryDirectory() + "/mayfly-store-\(UUID().uuidString)/mayfly.db"
    }

    @Test func everySQLFileIsAMigrationInOrder() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../migrations/sql").standardized.path
        let files = try FileManager.default.contentsOfDirectory(atPath: folder)
            .filter { $0.hasSuffix(".sql") }.map { String($0.dropLast(4)) }.sorted()
        #expect(!files.isEmpty)
        #expect(Migrations.all.map(\.name) == files)
        for (migration, file) in zip(Migrations.all, files) {
            let text = try String(contentsOfFile: folder + "/" + file + ".sql", encoding: .utf8)
            #expect(migration.sql == text, "embedded SQL of \(file) differs from the file")
        }
    }

    @Test func migratesAndPersistsAcrossReopen() async throws {
        let path = Self.temporaryPath()
        do {
            let storage = try SQLiteStorage(path: path)
            #expect(try await storage.appliedMigrations() == Migrations.all.map(\.name))
            try await storage.commit([.put(StoredEntry(path: "a/b", version: 1, value: [1, 2, 3]), expectedVersion: 0)])
            try await storage.setSystemValue("seal-config", [9])
        }
        let reopened = try SQLiteStorage(path: path)
        #expect(try await reopened.get("a/b") == StoredEntry(path: "a/b", version: 1, value: [1, 2, 3]))
        #expect(try await reopened.systemValue("seal-config") == [9])
        #expect(try await reopened.appliedMigrations() == Migrations.all.map(\.name))
    }

    @Test func conditionalPutRejectsWrongVersionAndCommitsNothing() async throws {
        let storage = try SQLiteStorage(path: Self.temporaryPath())
        try await storage.commit([.put(StoredEntry(path: "x", version: 1, value: [1]), expectedVersion: 0)])
        await #expect(throws: StorageError.self) {
            try await storage.commit([
                .put(StoredEntry(path: "y", version: 1, value: [2]), expectedVersion: 0),
                .put(StoredEntry(path: "x", version: 2, value: [3]), expectedVersion: 0),
            ])
        }
        #expect(try await storage.get("y") == nil, "a failed commit must leave no partial state")
        #expect(try await storage.get("x")?.value == [1])
        #expect(try await storage.version(of: "x") == 1)
    }

    @Test func listsImmediateChildrenWithFolders() async throws {
        let storage = try SQLiteStorage(path: Self.temporaryPath())
        let paths = ["kv/a", "kv/a/b", "kv/a/c/d", "kv/a-b", "kv/b", "kv/c/d/e", "other/x"]
        try await storage.commit(paths.map { .put(StoredEntry(path: $0, version: 1, value: [0]), expectedVersion: nil) })
        #expect(try await storage.listChildren(of: "kv/") == ["a", "a-b", "a/", "b", "c/"])
        #expect(try await storage.listChildren(of: "kv/a/") == ["b", "c/"])
        #expect(try await storage.listChildren(of: "kv/zzz/") == [])
        #expect(try await storage.paths(withPrefix: "kv/a", after: nil, limit: 10) == ["kv/a", "kv/a-b", "kv/a/b", "kv/a/c/d"])
        #expect(try await storage.paths(withPrefix: "kv/", after: "kv/a/b", limit: 2) == ["kv/a/c/d", "kv/b"])
    }

    @Test func deletePrefixRemovesOnlyThatSubtree() async throws {
        let storage = try SQLiteStorage(path: Self.temporaryPath())
        try await storage.commit(["t/a/1", "t/a/2", "t/ab", "t/b"].map {
            .put(StoredEntry(path: $0, version: 1, value: [0]), expectedVersion: nil)
        })
        try await storage.commit([.deletePrefix("t/a/")])
        #expect(try await storage.paths(withPrefix: "t/", after: nil, limit: 10) == ["t/ab", "t/b"])
    }
}
