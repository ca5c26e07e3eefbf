import Foundation
import MayflyMigrations
@testable import MayflyStore
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

    static func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    /// 6 MB of commits, 64 KB each.
    static func fill(_ storage: SQLiteStorage, prefix: String) async throws {
        for index in 0..<96 {
            let value = [UInt8](repeating: UInt8(index), count: 64 << 10)
            try await storage.commit([.put(StoredEntry(path: "\(prefix)/\(index)", version: 1, value: value), expectedVersion: 0)])
        }
    }

    /// No commit checkpoints the write-ahead log (SQLite's own checkpoint, at 1,000 pages, ran
    /// inside the commit that crossed them, and every write queued behind it waited): while
    /// the checkpointer does not run, 6 MB of commits stay in the log and none reaches the
    /// database file; when it runs, beside the writes, they do, and read back after a reopen.
    @Test func commitsNeverCheckpointTheLogTheCheckpointerDoesBesideThem() async throws {
        let idle = Self.temporaryPath()
        do {
            let storage = try SQLiteStorage(path: idle, checkpointThreshold: 1 << 20, checkpointInterval: .seconds(3600))
            try await Self.fill(storage, prefix: "idle")
            #expect(Self.size(idle + "-wal") >= 6 << 20 && Self.size(idle) < 1 << 20,
                    "a commit checkpointed: log \(Self.size(idle + "-wal")) bytes, database \(Self.size(idle))")
            #expect(storage.checkpointer.checkpointCount == 0)
        }

        let busy = Self.temporaryPath()
        do {
            let storage = try SQLiteStorage(path: busy, checkpointThreshold: 256 << 10, checkpointInterval: .milliseconds(20))
            try await Self.fill(storage, prefix: "busy")
            let deadline = Date().addingTimeInterval(30)
            while Self.size(busy) < 6 << 20, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(Self.size(busy) >= 6 << 20, "the log was not checkpointed within 30 s: \(storage.checkpointer.lastError ?? "")")
            #expect(storage.checkpointer.checkpointCount > 0 && storage.checkpointer.lastError == nil)
        }
        let reopened = try SQLiteStorage(path: busy)
        for index in 0..<96 {
            #expect(try await reopened.get("busy/\(index)")?.value == [UInt8](repeating: UInt8(index), count: 64 << 10))
        }
    }
}
