# An operator: manages databases, roles, KV and policies, looks up and revokes leases.
# Revoking by prefix is root-protected, hence sudo.

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
