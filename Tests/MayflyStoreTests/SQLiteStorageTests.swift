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
        try await StoreContract.conditionalPuts(try SQLiteStorage(path: Self.temporaryPath()))
    }

    @Test func listsImmediateChildrenAndDeletesPrefixes() async throws {
        try await StoreContract.listings(try SQLiteStorage(path: Self.temporaryPath()))
    }
}
