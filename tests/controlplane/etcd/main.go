// Command etcd is etcd's own server entry point (go.etcd.io/etcd/v3's main.go
// calls the same function), built from the go.etcd.io/etcd/server/v3 that
// k8s.io/kubernetes v1.36.3 requires, so the suite needs no etcd download.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
