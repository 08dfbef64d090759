// Command etcd is the stock etcd server, built from its Go module so the cluster
// integration tests need no download site.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
