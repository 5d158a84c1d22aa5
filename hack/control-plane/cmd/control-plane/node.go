package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// nodeOptions describe the single node that --node-ip adds to the control plane: a
// kube-scheduler, containerd, a kubelet and kube-proxy, for hack/cluster.sh. The host's
// networking (the node's address, the CNI configuration, the iptables guard) is set up
// by that script before, and removed by it after.
type nodeOptions struct {
	ip               string // the node's address; the API server serves there too
	name             string
	clusterCIDR      string // the pods' range, for kube-proxy
	clusterDNS       string // the cluster DNS Service IP pods are given
	clusterDomain    string
	containerdConfig string
	containerdSocket string
	binDir           string // kubelet, kube-proxy, kube-scheduler, cri-reset and loadbalancer
	podLogsDir       string
	// Addresses for Services of type LoadBalancer; empty: they stay pending.
	loadBalancerPool string
}

func (n *nodeOptions) enabled() bool { return n.ip != "" }

// nodeControllers is what a cluster with a node runs: every controller that is on by
// default (Deployments, ReplicaSets, StatefulSets, disruption budgets, node lifecycle,
// EndpointSlices, garbage collection...), as kube-controller-manager does unless told
// otherwise.
const nodeControllers = "*"

// nodeIdentity returns the node to issue certificates for, or nil without a node.
func (n *nodeOptions) identity() (*nodeIdentity, error) {
	if !n.enabled() {
		return nil, nil
	}
	ip := net.ParseIP(n.ip)
	if ip == nil || ip.To4() == nil {
		return nil, fmt.Errorf("--node-ip %q is not an IPv4 address", n.ip)
	}
	// The kubelet refuses a loopback node address, and pods could not reach it anyway.
	if ip.IsLoopback() {
		return nil, fmt.Errorf("--node-ip %s: the node needs an address pods can reach, not loopback", n.ip)
	}
	return &nodeIdentity{name: n.name, ip: ip}, nil
}

// nodeBinaries finds the node's programs, failing with what to build or install.
func (n *nodeOptions) nodeBinaries(bins map[string]string) error {
	for _, name := range []string{"kube-scheduler", "kubelet", "kube-proxy", "cri-reset", "loadbalancer"} {
		bin := filepath.Join(n.binDir, name)
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%s not found in %s (build it with hack/control-plane.sh build node): %w", name, n.binDir, err)
		}
		bins[name] = bin
	}
	containerd, err := exec.LookPath("containerd")
	if err != nil {
		return errors.New("containerd is not installed (hack/install-node-deps.sh installs Debian's containerd, runc and CNI plugins)")
	}
	bins["containerd"] = containerd
	return nil
}

// startNode starts the scheduler, containerd, the kubelet and kube-proxy against a
// running API server, and waits until the node reports Ready.
func (cp *controlPlane) startNode(ctx context.Context, bins map[string]string, server string, keys *pki, api *client) error {
	n := cp.opts.node
	pki := func(name string) string { return cp.path("pki", name) }
	kubeconfigFor := func(stem string) (string, error) {
		path := cp.path(stem + ".kubeconfig")
		pair := keys.node[stem]
		return path, writeKubeconfig(path, server, keys.caCert, pair[0], pair[1])
	}

	schedulerKubeconfig, err := kubeconfigFor("kube-scheduler")
	if err != nil {
		return err
	}
	if err := cp.spawn("kube-scheduler", bins["kube-scheduler"],
		"--kubeconfig="+schedulerKubeconfig,
		"--authentication-kubeconfig="+schedulerKubeconfig,
		"--authorization-kubeconfig="+schedulerKubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--kube-api-qps=200",
		"--kube-api-burst=400",
	); err != nil {
		return err
	}

	if err := cp.spawn("containerd", bins["containerd"], "--config="+n.containerdConfig); err != nil {
		return err
	}
	if err := cp.poll(ctx, func() bool {
		conn, err := net.DialTimeout("unix", n.containerdSocket, time.Second)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	}); err != nil {
		return fmt.Errorf("waiting for containerd at %s: %w", n.containerdSocket, err)
	}

	kubeletKubeconfig, err := kubeconfigFor("kubelet")
	if err != nil {
		return err
	}
	kubeletConfig := cp.path("kubelet-config.yaml")
	if err := os.WriteFile(kubeletConfig, []byte(kubeletConfiguration(n, pki)), 0o600); err != nil {
		return err
	}
	rootDir := cp.path("kubelet")
	if err := os.MkdirAll(rootDir, 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(n.podLogsDir, 0o755); err != nil {
		return err
	}
	if err := cp.spawn("kubelet", bins["kubelet"],
		"--config="+kubeletConfig,
		"--kubeconfig="+kubeletKubeconfig,
		"--root-dir="+rootDir,
		"--hostname-override="+n.name,
		"--node-ip="+n.ip,
	); err != nil {
		return err
	}

	proxyKubeconfig, err := kubeconfigFor("kube-proxy")
	if err != nil {
		return err
	}
	proxyConfig := cp.path("kube-proxy-config.yaml")
	if err := os.WriteFile(proxyConfig, []byte(kubeProxyConfiguration(n, proxyKubeconfig)), 0o600); err != nil {
		return err
	}
	if err := cp.spawn("kube-proxy", bins["kube-proxy"], "--config="+proxyConfig); err != nil {
		return err
	}

	if n.loadBalancerPool != "" {
		if err := cp.spawn("loadbalancer", bins["loadbalancer"],
			"--kubeconfig="+cp.path("kubeconfig"), "--pool="+n.loadBalancerPool); err != nil {
			return err
		}
	}

	if err := cp.poll(ctx, func() bool { return api.nodeReady(server, n.name) }); err != nil {
		return fmt.Errorf("waiting for node %s to be Ready: %w", n.name, err)
	}
	return nil
}

// kubeletConfiguration is the kubelet's config file. Each setting that departs from the
// defaults is there because of this kind of machine: see docs/control-plane.md.
func kubeletConfiguration(n nodeOptions, pki func(string) string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The test machines run cgroup v1 (hybrid); Kubernetes 1.35 refuses it unless told not to.
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%[1]s
# Serve only on the node's address, with a certificate from the cluster's CA; the API
# server (logs, exec) authenticates with its client certificate, and every request is
# authorized by the API server.
address: %[2]s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
tlsCertFile: %[3]s
tlsPrivateKeyFile: %[4]s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[5]s}
authorization:
  mode: Webhook
clusterDNS: [%[6]s]
clusterDomain: %[7]s
# Pods resolve through the cluster DNS only; no host resolver is handed to them.
resolvConf: ""
podLogsDir: %[8]s
# Nothing can be pulled here: images are imported, and must never be collected.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
# A shared development machine: no evictions, no reservations enforced.
enforceNodeAllocatable: []
evictionHard: {}
localStorageCapacityIsolation: false
rotateCertificates: false
serverTLSBootstrap: false
shutdownGracePeriod: 0s
maxPods: 110
`, n.containerdSocket, n.ip, pki("kubelet-serving.crt"), pki("kubelet-serving.key"), pki("ca.crt"),
		n.clusterDNS, n.clusterDomain, n.podLogsDir)
}

// kubeProxyConfiguration is kube-proxy's config file: iptables mode, and nothing
// reachable from outside the machine.
func kubeProxyConfiguration(n nodeOptions, kubeconfig string) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: %[1]s
hostnameOverride: %[2]s
clusterCIDR: %[3]s
# NodePorts answer on the node's address only, never on the machine's real interfaces.
nodePortAddresses: [%[4]s/32]
healthzBindAddress: %[4]s:10256
metricsBindAddress: 127.0.0.1:10249
iptables:
  # Otherwise kube-proxy sets route_localnet, which changes how the whole machine
  # treats 127.0.0.0/8.
  localhostNodePorts: false
  minSyncPeriod: 0s
# Leave the machine's conntrack settings as they are.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, kubeconfig, n.name, n.clusterCIDR, n.ip)
}

// resetRuntime removes every pod sandbox through the CRI while containerd still runs:
// that runs each sandbox's CNI DEL (its veth and its address go) and stops its
// containers and their shims, which containerd does not do on its own when it stops.
func (cp *controlPlane) resetRuntime() {
	n := cp.opts.node
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(n.binDir, "cri-reset"), "unix://"+n.containerdSocket)
	out, err := cmd.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "control-plane: cri-reset: %v\n%s", err, out)
		return
	}
	fmt.Fprintf(os.Stderr, "control-plane: %s", out)
}

// nodeReady tells whether the node exists and its Ready condition is True.
func (c *client) nodeReady(server, name string) bool {
	resp, err := c.http.Get(server + "/api/v1/nodes/" + name)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var node struct {
		Status struct {
			Conditions []struct {
				Type, Status string
			} `json:"conditions"`
		} `json:"status"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&node) != nil {
		return false
	}
	for _, c := range node.Status.Conditions {
		if c.Type == "Ready" {
			return strings.EqualFold(c.Status, "True")
		}
	}
	return false
}
