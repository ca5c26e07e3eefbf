import ArgumentParser
import Foundation
import MayflyCore

/// `mayfly schedule …`: everything that runs unattended, its history, and running a job now.
struct ScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule", abstract: "Scheduled jobs: list them, show a job's history, run one now.",
        subcommands: [List.self, History.self, Run.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every job: expression, zone, next run and last outcome.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await runCLI {
                let (_, body) = try await options.call("LIST", "sys/mayfly/schedule")
                if options.format == .json { return Output.json(body["data"] ?? .null) }
                let info = body["data"]?["key_info"]?.objectValue ?? [:]
                var rows = [["job", "expression", "zone", "next run", "last run", "last outcome"]]
                for name in body["data"]?["keys"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
                    let job = info[name]
                    rows.append([name] + ["expression", "time_zone", "next_run", "last_run", "last_outcome"].map {
                        job?[$0]?.stringValue ?? "-"
                    })
                }
                let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
                for row in rows {
                    print(row.indices.map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                        .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
                }
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The recorded runs of a job (e.g. static-role:orders-migrator).")
        @OptionGroup var options: ClientOptions
        @Argument var job: String

        func validate() throws { guard !job.isEmpty else { throw ValidationError("give a job name (mayfly schedule list)") } }

        func run() async throws {
            try await runCLI {
                let (_, body) = try await options.call("GET", "sys/mayfly/schedule/\(job)/history")
                if options.format == .json { return Output.json(body["data"] ?? .null) }
                let runs = body["data"]?["runs"]?.arrayValue ?? []
                if runs.isEmpty { print("no recorded runs of \(job)") }
                for run in runs {
                    let fields = ["start", "trigger", "outcome"].map { run[$0]?.stringValue ?? "" }
                    let note = run["error"]?.stringValue ?? run["detail"]?.stringValue ?? ""
                    print((fields + [note]).joined(separator: "  "))
                }
            }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run a job now, whatever its schedule (audited like any request).")
        @OptionGroup var options: ClientOptions
        @Argument var job: String

        func validate() throws { guard !job.isEmpty else { throw ValidationError("give a job name (mayfly schedule list)") } }

        func run() async throws {
            try await runCLI {
                let (_, body) = try await options.call("POST", "sys/mayfly/schedule/\(job)/run")
                let run = body["data"] ?? .null
                if options.format == .json { return Output.json(run) }
                let outcome = run["outcome"]?.stringValue ?? ""
                print("\(job): \(outcome)\(run["detail"]?.stringValue.map { " — \($0)" } ?? "")\(run["error"]?.stringValue.map { " — \($0)" } ?? "")")
                if outcome != "ok" { throw ExitCode(1) }
            }
        }
    }
}
