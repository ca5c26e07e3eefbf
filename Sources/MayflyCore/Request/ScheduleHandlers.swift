import Foundation
import MayflyCron

/// `sys/mayfly/schedule`: the scheduled jobs (`mayfly schedule list`), a job's history, and
/// running a job now. Needs `sudo`, like every `sys/mayfly/` path.
enum ScheduleHandlers {
    static func handle(_ broker: Broker, _ request: LogicalRequest) async throws -> LogicalResponse {
        let rest = request.path.dropFirst("sys/mayfly/schedule".count).trimmingPrefix("/")
        let parts = rest.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let scheduler = broker.scheduler
        switch (parts.count, request.operation) {
        case (0, .list), (0, .read):
            var keys: [String] = []
            var info: [String: JSONValue] = [:]
            for job in await scheduler.jobs() {
                let status = try await scheduler.status(job)
                keys.append(job.name)
                info[job.name] = [
                    "expression": .string(job.schedule.expression), "time_zone": .string(job.schedule.timeZoneIdentifier),
                    "next_run": status.next.map { .string(IncidentHandlers.time($0)) } ?? .null,
                    "last_run": status.lastRan.map { .string(IncidentHandlers.time($0)) } ?? .null,
                    "last_outcome": status.state?.lastOutcome.map { .string($0) } ?? .null,
                    "last_error": status.state?.lastError.map { .string($0) } ?? .null,
                ]
            }
            return .envelope(Envelope(data: ["keys": .strings(keys), "key_info": .object(info)]))
        case (2, .read) where parts[1] == "history", (1, .read):
            guard await scheduler.jobs().contains(where: { $0.name == parts[0] }) else {
                throw APIError(status: 404, ["no scheduled job \"\(APIError.clip(parts[0]))\""])
            }
            let runs = try await scheduler.history(parts[0])
            return .envelope(Envelope(data: ["job": .string(parts[0]), "runs": .array(runs.map(describe))]))
        case (2, .update) where parts[1] == "run":
            let run = try await scheduler.runNow(parts[0])
            return .envelope(Envelope(data: describe(run)))
        default:
            throw APIError(status: 404, ["no handler for route \"\(APIError.clip(request.path))\". route entry not found."])
        }
    }

    static func describe(_ run: JobRun) -> JSONValue {
        [
            "job": .string(run.job), "trigger": .string(run.trigger), "outcome": .string(run.outcome),
            "start": .string(Timestamp.rfc3339(Date(timeIntervalSince1970: run.start))),
            "end": .string(Timestamp.rfc3339(Date(timeIntervalSince1970: run.end))),
            "error": run.error.map { .string($0) } ?? .null, "detail": run.detail.map { .string($0) } ?? .null,
        ]
    }
}
