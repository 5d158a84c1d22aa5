// Command coredns is CoreDNS with the plugins the single-node cluster's DNS uses and no
// others: the full plugin set pulls in cloud SDKs that this build does not need. The
// image hack/images.sh makes from it runs as the cluster's DNS at the Service IP the
// kubelet's clusterDNS names.
//
// There is deliberately no forward plugin: pods resolve cluster names only, and nothing
// is sent to a resolver outside the machine.
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() {
	coremain.Run()
}
