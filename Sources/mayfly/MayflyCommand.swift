import ArgumentParser

/// `mayfly`: the server and the operator's CLI.
@main
struct MayflyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mayfly",
        abstract: "Secrets broker: short-lived PostgreSQL credentials, an encrypted KV store, rotation and revocation.",
        discussion: """
            Clients find the server through MAYFLY_ADDR (unix:///path/to.sock or https://host:port) and
            authenticate with MAYFLY_TOKEN; VAULT_ADDR and VAULT_TOKEN are used when those are unset.
            Exit status: 0 success, 1 error, 2 sealed or unreachable, 3 (revoke, incident show) work
            still being retried.
            """,
        subcommands: [
            ServerCommand.self, StatusCommand.self, RunCommand.self, OperatorCommand.self, KVCommand.self, TokenCommand.self,
            LeaseCommand.self, DatabaseCommand.self, RevokeCommand.self, IncidentCommand.self, ScheduleCommand.self,
            AuditCommand.self,
            ReadCommand.self, WriteCommand.self, ListCommand.self, DeleteCommand.self,
        ])
}
