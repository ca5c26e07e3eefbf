# An application: its own PostgreSQL credentials and its own KV subtree, nothing else.
# Bind it to the app's Unix user:   bind "unix:user:orders" { policies = ["orders-app"] }

path "database/creds/orders-ro" {
  capabilities = ["read"]
}

path "secret/data/orders/*" {
  capabilities = ["read"]
}

path "secret/metadata/orders/*" {
  capabilities = ["read", "list"]
}
