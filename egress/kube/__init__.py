"""The Kubernetes side shared by the proxy and the operator: the Agent resource."""
