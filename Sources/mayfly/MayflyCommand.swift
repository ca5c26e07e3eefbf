import ArgumentParser
import MayflyCore

/// `mayfly`: the server and the operator's CLI.
@main
struct MayflyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mayfly",
        abstract: "Secrets broker: short-lived PostgreSQL credentials, an encrypted KV store, rotation and revocation.",
        discussion: """
            Clients find the server through MAYFLY_ADDR: unix:///path/to.sock or
            https://host:port (default unix://./.mayfly/mayfly.sock, the dev server's
            socket in the current directory). They authenticate with MAYFLY_TOKEN, or as
            the identity their socket or client certificate is bound to. VAULT_ADDR,
            VAULT_TOKEN, VAULT_CACERT, VAULT_CLIENT_CERT and VAULT_CLIENT_KEY are used
            when the MAYFLY_ ones are unset.

            Exit status: 0 success, 1 error, 2 sealed or unreachable, 3 work still being
            retried (revoke, incident show), 64 a command line that cannot be parsed.
            `mayfly run` exits with its program's status; see `mayfly run --help` for
            how its own failures differ.
            With --format json, errors are a JSON object on stderr.
            """,
        version: Broker.version,
        subcommands: [
            ServerCommand.self, StatusCommand.self, RunCommand.self, OperatorCommand.self, KVCommand.self, TokenCommand.self,
            LeaseCommand.self, DatabaseCommand.self, RevokeCommand.self, IncidentCommand.self, ScheduleCommand.self,
            AuditCommand.self,
            ReadCommand.self, WriteCommand.self, ListCommand.self, DeleteCommand.self,
        ])
}
