# Break-glass: for the incident, kept in a sealed envelope. Revokes every credential of a
# role or of everything, forgets leases whose database is gone, runs `mayfly revoke`
# (leak response) and seals the server.

path "sys/leases/revoke-prefix/*" {
  capabilities = ["update", "sudo"]
}

path "sys/leases/revoke-force/*" {
  capabilities = ["update", "sudo"]
}

path "sys/seal" {
  capabilities = ["update", "sudo"]
}

# The leak response: `mayfly revoke` and the incident reports.
path "sys/mayfly/*" {
  capabilities = ["create", "read", "update", "list", "sudo"]
}
