// Command coredns is CoreDNS with the plugins the conformance suite's own DNS server uses
// (its base manifests run one in gateway-conformance-infra, for the UDPRoute tests, with
// a Corefile naming errors, log, forward and whoami). hack/conformance.sh builds it into
// the image the manifests name, registry.k8s.io/coredns/coredns:v1.12.2, since nothing can
// be pulled here; the cluster's own DNS (hack/coredns) has neither forward nor whoami.
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/whoami"
)

func main() {
	coremain.Run()
}
