# An operator: manages databases, ordinary roles, KV and AppRoles, reads policies, looks up and
# revokes leases. Revoking by prefix is root-protected, hence sudo there. Without sudo elsewhere
# it cannot escalate: writing policies or token roles, custom SQL statements on roles, and
# AppRole roles with a policy the operator does not hold (or root) all need sudo (README,
# "Security model").

path "database/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

path "secret/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list"]
}

path "sys/leases/*" {
  capabilities = ["create", "read", "update", "list", "sudo"]
}

path "sys/policies/acl/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

path "auth/approle/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# Operators do not seal the server or forget leases; that is break-glass.
path "sys/leases/revoke-force/*" {
  capabilities = ["deny"]
}
