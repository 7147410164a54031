# The egress proxy: read the proxy-only secrets of any agent (it injects them on approved
# requests), list an agent's names to build its placeholder index. Nothing else: no writes,
# no kv/agents/* (what agents themselves may read), no sys/*.
path "kv/data/proxy-secrets/*" {
  capabilities = ["read"]
}
path "kv/metadata/proxy-secrets/*" {
  capabilities = ["list", "read"]
}
