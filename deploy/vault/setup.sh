#!/usr/bin/env bash
# Configure Vault (or OpenBao) for egress: KV v2 at kv/, the three policies in this folder,
# Kubernetes auth with one role per workload bound to its service account. Idempotent.
#
#   export VAULT_ADDR=https://vault.example:8200 VAULT_TOKEN=<admin token>
#   deploy/vault/setup.sh
#
# Environment (defaults in brackets):
#   VAULT_CLI            vault or bao binary [vault]
#   EGRESS_NAMESPACE     namespace of the platform (deploy/kustomize) [egress-system]
#   KUBERNETES_HOST      API server as Vault reaches it [https://kubernetes.default.svc]
#   KUBERNETES_CA_CERT   file with the API server's CA; unset inside the cluster
#   TOKEN_REVIEWER_JWT   JWT allowed to call TokenReview; unset when Vault runs in the cluster
#                        (it then uses its own service account)
#   TOKEN_TTL            lifetime of the tokens the proxy and gateway get [1h]
set -euo pipefail

cli=${VAULT_CLI:-vault}
ns=${EGRESS_NAMESPACE:-egress-system}
here=$(cd "$(dirname "$0")" && pwd)

mounts=$("$cli" secrets list -format=json)
if [[ "$mounts" != *'"kv/"'* ]]; then
  "$cli" secrets enable -path=kv -version=2 kv
fi

for policy in egress-proxy egress-gateway egress-secrets-admin; do
  "$cli" policy write "$policy" "$here/$policy.hcl"
done

auths=$("$cli" auth list -format=json)
if [[ "$auths" != *'"kubernetes/"'* ]]; then
  "$cli" auth enable kubernetes
fi

config=(kubernetes_host="${KUBERNETES_HOST:-https://kubernetes.default.svc}")
if [[ -n "${KUBERNETES_CA_CERT:-}" ]]; then
  config+=(kubernetes_ca_cert=@"$KUBERNETES_CA_CERT")
fi
if [[ -n "${TOKEN_REVIEWER_JWT:-}" ]]; then
  config+=(token_reviewer_jwt="$TOKEN_REVIEWER_JWT" disable_local_ca_jwt=true)
fi
"$cli" write auth/kubernetes/config "${config[@]}"

# role name = policy name = service account name (deploy/kustomize/proxy.yaml, gateway.yaml)
for workload in egress-proxy egress-gateway; do
  "$cli" write "auth/kubernetes/role/$workload" \
    bound_service_account_names="$workload" \
    bound_service_account_namespaces="$ns" \
    token_policies="$workload" \
    token_ttl="${TOKEN_TTL:-1h}" \
    token_max_ttl=24h
done
