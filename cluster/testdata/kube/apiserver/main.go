// Command kube-apiserver is the stock Kubernetes API server, built from its Go module so
// the cluster integration tests need no download site.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
