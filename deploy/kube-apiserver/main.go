// Command kube-apiserver: the real Kubernetes API server, built from the published Go modules
// (k8s.io/kubernetes with its staging modules mapped to their released versions in go.mod).
// The tests run it on 127.0.0.1 over Debian's etcd to exercise the operator and the proxy's
// kill-switch watch against a real API. Nothing here changes the server's behaviour.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
