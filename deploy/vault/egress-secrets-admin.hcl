# People or pipelines that provision agent credentials (`egress secrets put/rotate/delete`
# with --vault-addr). Write-side only for the proxy-only tree; give it to humans through
# your usual auth method (OIDC, userpass), never to a workload.
path "kv/data/proxy-secrets/*" {
  capabilities = ["create", "update", "read", "delete"]
}
path "kv/metadata/proxy-secrets/*" {
  capabilities = ["list", "read", "delete"]
}
