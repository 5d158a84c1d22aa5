// The Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance) as a test
// binary of its own, so hack/conformance.sh can build it once from the Go module proxy
// and run it against the node of hack/cluster.sh. Everything it does is the suite's:
// the options come from its flags (see hack/conformance.sh).
package conformance_test

import (
	"testing"

	"sigs.k8s.io/gateway-api/conformance"
)

func TestConformance(t *testing.T) {
	conformance.RunConformance(t)
}
