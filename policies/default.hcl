# The built-in "default" policy, attached to every token unless it is created with
# no_default_policy, and to every bound identity. It lets a caller look itself up, renew
# and revoke its own token, renew and look up its own leases, and ask what it may do.
# Compiled into the binary; a default.hcl in the configured policies directory replaces it.

path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}

path "auth/token/revoke-self" {
  capabilities = ["update"]
}

path "sys/capabilities-self" {
  capabilities = ["update"]
}

path "sys/leases/renew" {
  capabilities = ["update"]
}

path "sys/leases/lookup" {
  capabilities = ["update"]
}

path "sys/renew" {
  capabilities = ["update"]
}

path "sys/internal/ui/resultant-acl" {
  capabilities = ["read"]
}
