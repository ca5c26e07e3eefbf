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
                let names = body["data"]?["keys"]?.arrayValue?.compactMap(\.stringValue) ?? []
                Output.rows(["job", "expression", "zone", "next run", "last run", "last outcome"], names.map { name in
                    let job = info[name]
                    return [name, job?["expression"]?.stringValue ?? "-", job?["time_zone"]?.stringValue ?? "-",
                            Output.second(job?["next_run"]?.stringValue), Output.second(job?["last_run"]?.stringValue),
                            job?["last_outcome"]?.stringValue ?? "-"]
                })
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
                if runs.isEmpty { return print("no recorded runs of \(job)") }
                Output.rows(["start", "trigger", "outcome", "detail"], runs.map { run in
                    [Output.second(run["start"]?.stringValue), run["trigger"]?.stringValue ?? "", run["outcome"]?.stringValue ?? "",
                     run["error"]?.stringValue ?? run["detail"]?.stringValue ?? ""]
                })
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
