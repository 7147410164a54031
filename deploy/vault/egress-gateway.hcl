# The LLM gateway: the per-agent upstream API key lives beside the proxy's secrets
# (kv/proxy-secrets/{user}/{agent}/{route}); same read-only rights, separate role and token.
path "kv/data/proxy-secrets/*" {
  capabilities = ["read"]
}
path "kv/metadata/proxy-secrets/*" {
  capabilities = ["list", "read"]
}
