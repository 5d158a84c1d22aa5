package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// defaultControllers are the controllers that the operator's tests rely on: EndpointSlices
// for Services (and their mirroring for selector-less ones), namespace deletion, owner
// reference cleanup, and each namespace's default service account. Node lifecycle and
// everything that expects kubelets stay off: there are no nodes here.
const defaultControllers = "endpointslice-controller,endpointslice-mirroring-controller," +
	"namespace-controller,garbage-collector-controller,serviceaccount-controller,serviceaccount-token-controller"

// startAttempts bounds retries after a program exits during startup. Ports are picked by
// binding to port 0 and closing again, so another process can take one before the
// program binds it; a second attempt with new ports gets past that.
const startAttempts = 3

type options struct {
	dir, binDir, controllers, serviceCIDR string
	timeout                               time.Duration
	watchParent, removeDir                bool
	node                                  nodeOptions
}

// ready is written to ready.json and printed as one line on stdout once the control
// plane serves requests.
type ready struct {
	Kubeconfig string `json:"kubeconfig"`
	Server     string `json:"server"`
	Etcd       string `json:"etcd"`
	Dir        string `json:"dir"`
	PID        int    `json:"pid"`
	Node       string `json:"node,omitempty"`
	NodeIP     string `json:"nodeIP,omitempty"`
}

type controlPlane struct {
	opts  options
	procs []*process // in start order
	exits *exits     // of the programs of the current attempt
}

// exits records the first program of one startup attempt to exit. A program of an
// abandoned attempt that exits late reports to that attempt's exits, not to the next.
type exits struct {
	once  sync.Once
	first *process      // set before done is closed
	done  chan struct{} // closed when the first program exits
}

func newExits() *exits { return &exits{done: make(chan struct{})} }

type process struct {
	name     string
	bin      string
	args     []string // as started, so that a restart (control.go) starts the same
	logPath  string
	cmd      *exec.Cmd
	done     chan struct{} // closed once the process has exited and err is set
	err      error
	paused   bool        // by control.go, on the main goroutine only
	replaced atomic.Bool // stopped on purpose by a restart: its exit ends nothing
}

func (cp *controlPlane) path(parts ...string) string {
	return filepath.Join(append([]string{cp.opts.dir}, parts...)...)
}

func (cp *controlPlane) start(ctx context.Context) error {
	ctx, cancel := context.WithTimeoutCause(ctx, cp.opts.timeout,
		fmt.Errorf("the control plane was not ready within %v", cp.opts.timeout))
	defer cancel()

	bins := map[string]string{}
	names := []string{"etcd", "kube-apiserver"}
	if cp.opts.controllers != "" {
		names = append(names, "kube-controller-manager")
	}
	for _, name := range names {
		bin := filepath.Join(cp.opts.binDir, name)
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%s not found in %s (build it with hack/control-plane.sh build): %w", name, cp.opts.binDir, err)
		}
		bins[name] = bin
	}
	node, err := cp.opts.node.identity()
	if err != nil {
		return err
	}
	if node != nil {
		if err := cp.opts.node.nodeBinaries(bins); err != nil {
			return err
		}
	}

	_, serviceNet, err := net.ParseCIDR(cp.opts.serviceCIDR)
	if err != nil {
		return fmt.Errorf("--service-cluster-ip-range: %w", err)
	}
	serviceIP := nthIP(serviceNet, 1)

	// The directory holds one control plane at a time: replace what a previous run left.
	if err := os.MkdirAll(cp.opts.dir, 0o700); err != nil {
		return err
	}
	for _, name := range []string{"pki", "etcd", "logs", "kubeconfig", "controller-manager.kubeconfig", "ready.json",
		"kube-scheduler.kubeconfig", "kubelet.kubeconfig", "kube-proxy.kubeconfig", "kubelet-config.yaml", "kube-proxy-config.yaml"} {
		if err := os.RemoveAll(cp.path(name)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(cp.path("logs"), 0o700); err != nil {
		return err
	}
	keys, err := newPKI(serviceIP, node)
	if err != nil {
		return fmt.Errorf("generating certificates: %w", err)
	}
	if err := keys.write(cp.path("pki")); err != nil {
		return err
	}

	var server, etcdURL string
	for attempt := 1; ; attempt++ {
		server, etcdURL, err = cp.startServers(ctx, bins, keys)
		if err == nil {
			break
		}
		var exited *exitedEarly
		if !errors.As(err, &exited) || attempt == startAttempts || ctx.Err() != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "control-plane: %v; retrying with new ports\n", err)
		cp.stop()
		cp.procs, cp.exits = nil, newExits()
		if err := os.RemoveAll(cp.path("etcd")); err != nil {
			return err
		}
	}

	kubeconfig := cp.path("kubeconfig")
	if err := writeKubeconfig(kubeconfig, server, keys.caCert, keys.adminCert, keys.adminKey); err != nil {
		return err
	}
	client, err := newClient(keys)
	if err != nil {
		return err
	}

	if cp.opts.controllers != "" {
		cmKubeconfig := cp.path("controller-manager.kubeconfig")
		err := writeKubeconfig(cmKubeconfig, server, keys.caCert, keys.controllerManagerCert, keys.controllerManagerKey)
		if err != nil {
			return err
		}
		args := []string{
			"--kubeconfig=" + cmKubeconfig,
			"--controllers=" + cp.opts.controllers,
			"--use-service-account-credentials=true",
			"--service-account-private-key-file=" + cp.path("pki", "sa.key"),
			"--root-ca-file=" + cp.path("pki", "ca.crt"),
			"--leader-elect=false",
			"--secure-port=0",
			// Tests create objects in bursts; client-side throttling would only add waits.
			"--kube-api-qps=200",
			"--kube-api-burst=400",
		}
		if node != nil {
			// Certificate signing requests from workloads are signed by the cluster's CA,
			// as kubeadm sets it up.
			args = append(args,
				"--cluster-signing-cert-file="+cp.path("pki", "ca.crt"),
				"--cluster-signing-key-file="+cp.path("pki", "ca.key"),
				"--service-cluster-ip-range="+cp.opts.serviceCIDR)
		}
		if err := cp.spawn("kube-controller-manager", bins["kube-controller-manager"], args...); err != nil {
			return err
		}
		// The default service account of "default" appears once the controller manager
		// runs its controllers; Pods cannot be created in a namespace before it exists.
		if err := cp.poll(ctx, func() bool {
			return client.ok(server + "/api/v1/namespaces/default/serviceaccounts/default")
		}); err != nil {
			return fmt.Errorf("waiting for kube-controller-manager: %w", err)
		}
	}

	if node != nil {
		if err := cp.startNode(ctx, bins, server, keys, client); err != nil {
			return err
		}
	}

	info := ready{Kubeconfig: kubeconfig, Server: server, Etcd: etcdURL, Dir: cp.opts.dir, PID: os.Getpid()}
	if node != nil {
		info.Node, info.NodeIP = node.name, node.ip.String()
	}
	line, err := json.Marshal(info)
	if err != nil {
		return err
	}
	tmp := cp.path("ready.json.tmp")
	if err := os.WriteFile(tmp, append(line, '\n'), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, cp.path("ready.json")); err != nil {
		return err
	}
	fmt.Println(string(line))
	return nil
}

// exitedEarly is a program that exited during startup, which may be a port race.
type exitedEarly struct{ msg string }

func (e *exitedEarly) Error() string { return e.msg }

// startServers starts etcd and kube-apiserver on new free ports and waits until the API
// server is ready.
func (cp *controlPlane) startServers(ctx context.Context, bins map[string]string, keys *pki) (server, etcdURL string, err error) {
	ports, err := freePorts(3)
	if err != nil {
		return "", "", err
	}
	etcdURL = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	// Without a node, everything stays on loopback. With one, the API server serves on the
	// node's address instead, where pods reach it through the kubernetes Service.
	address := "127.0.0.1"
	if cp.opts.node.enabled() {
		address = cp.opts.node.ip
	}
	server = "https://" + net.JoinHostPort(address, strconv.Itoa(ports[2]))

	if err := cp.spawn("etcd", bins["etcd"],
		"--name=default",
		"--data-dir="+cp.path("etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		// The data is thrown away after the run: durability buys nothing, fsyncs cost.
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	); err != nil {
		return "", "", err
	}
	plain := &http.Client{Timeout: 2 * time.Second}
	if err := cp.poll(ctx, func() bool {
		resp, err := plain.Get(etcdURL + "/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"true"`)
	}); err != nil {
		return "", "", fmt.Errorf("waiting for etcd: %w", err)
	}

	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + address,
		"--advertise-address=" + address,
		"--secure-port=" + strconv.Itoa(ports[2]),
		"--cert-dir=" + cp.path("pki"),
		"--tls-cert-file=" + cp.path("pki", "apiserver.crt"),
		"--tls-private-key-file=" + cp.path("pki", "apiserver.key"),
		"--client-ca-file=" + cp.path("pki", "ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + cp.path("pki", "sa.pub"),
		"--service-account-signing-key-file=" + cp.path("pki", "sa.key"),
		"--service-cluster-ip-range=" + cp.opts.serviceCIDR,
		"--allow-privileged=true",
		"--profiling=false",
		// The aggregation layer, as kubeadm sets it up: aggregated API servers (APIService)
		// are reached with this client certificate and believe the user it names.
		"--requestheader-client-ca-file=" + cp.path("pki", "front-proxy-ca.crt"),
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + cp.path("pki", "front-proxy-client.crt"),
		"--proxy-client-key-file=" + cp.path("pki", "front-proxy-client.key"),
	}
	if cp.opts.node.enabled() {
		args = append(args,
			// Kubelets may touch only their own Node and the pods bound to it, as in a
			// real cluster.
			"--authorization-mode=Node,RBAC",
			"--enable-admission-plugins=NodeRestriction",
			"--kubelet-client-certificate="+cp.path("pki", "apiserver-kubelet-client.crt"),
			"--kubelet-client-key="+cp.path("pki", "apiserver-kubelet-client.key"),
			"--kubelet-certificate-authority="+cp.path("pki", "ca.crt"),
			"--kubelet-preferred-address-types=InternalIP",
			// Operators in pods reach the API server through the kubernetes Service,
			// whose endpoint is the node's address.
			"--endpoint-reconciler-type=lease",
		)
	} else {
		args = append(args,
			"--authorization-mode=RBAC",
			// The endpoints of the "kubernetes" Service would be 127.0.0.1, which Endpoints
			// validation rejects; nothing here needs them.
			"--endpoint-reconciler-type=none",
		)
	}
	if err := cp.spawn("kube-apiserver", bins["kube-apiserver"], args...); err != nil {
		return "", "", err
	}
	client, err := newClient(keys)
	if err != nil {
		return "", "", err
	}
	if err := cp.poll(ctx, func() bool { return client.ok(server + "/readyz") }); err != nil {
		return "", "", fmt.Errorf("waiting for kube-apiserver: %w", err)
	}
	return server, etcdURL, nil
}

// spawn starts a program with its output in logs/NAME.log.
func (cp *controlPlane) spawn(name, bin string, args ...string) error {
	logPath := cp.path("logs", name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// The kernel kills the program if this process dies without stopping it. The
	// programs stay in this process's group, so killing the group reaches them too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, bin: bin, args: args, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	cp.procs = append(cp.procs, p)
	exits := cp.exits
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
		if p.replaced.Load() {
			return
		}
		exits.once.Do(func() {
			exits.first = p
			close(exits.done)
		})
	}()
	return nil
}

// poll calls check until it reports true, a program exits or ctx ends.
func (cp *controlPlane) poll(ctx context.Context, check func() bool) error {
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		if check() {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-cp.exits.done:
			return &exitedEarly{msg: describeExit(cp.exits.first)}
		case <-ticker.C:
		}
	}
}

// wait blocks until ctx ends (a stop request) or a program exits (a failure), and
// meanwhile applies the restarts, pauses and resumes asked for on the control socket.
func (cp *controlPlane) wait(ctx context.Context) error {
	requests, closeControl, err := cp.serveControl()
	if err != nil {
		return err
	}
	defer closeControl()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-cp.exits.done:
			return errors.New(describeExit(cp.exits.first))
		case req := <-requests:
			cp.handleControl(ctx, req)
		}
	}
}

func describeExit(p *process) string {
	state := "exited"
	if p.err != nil {
		state = p.err.Error()
	}
	return fmt.Sprintf("%s stopped (%s); the end of %s:\n%s", p.name, state, p.logPath, tail(p.logPath, 20))
}

// stop ends the programs in reverse start order, so that nothing loses its backend while
// it still runs: SIGTERM, then SIGKILL after a grace period.
func (cp *controlPlane) stop() {
	for i := len(cp.procs) - 1; i >= 0; i-- {
		p := cp.procs[i]
		select {
		case <-p.done:
			continue
		default:
		}
		if p.name == "containerd" {
			// The kubelet is stopped by now and starts no pod again.
			cp.resetRuntime()
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		// A paused program acts on SIGTERM only once it runs again.
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	_ = os.Remove(cp.path("ready.json"))
}

// client calls the API server as the admin.
type client struct{ http *http.Client }

func newClient(keys *pki) (*client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(keys.caCert) {
		return nil, errors.New("bad CA certificate")
	}
	cert, err := tls.X509KeyPair(keys.adminCert, keys.adminKey)
	if err != nil {
		return nil, err
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}
	return &client{http: &http.Client{Transport: transport, Timeout: 5 * time.Second}}, nil
}

func (c *client) ok(url string) bool {
	resp, err := c.http.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// writeKubeconfig writes a kubeconfig with the certificates embedded as base64 data,
// the form that kubectl and @kubernetes/client-node both read.
func writeKubeconfig(path, server string, ca, cert, key []byte) error {
	b64 := base64.StdEncoding.EncodeToString
	text := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: switchyard-test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: switchyard-test-admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: switchyard-test
  context:
    cluster: switchyard-test
    user: switchyard-test-admin
    namespace: default
current-context: switchyard-test
`, server, b64(ca), b64(cert), b64(key))
	return os.WriteFile(path, []byte(text), 0o600)
}

// freePorts asks the kernel for n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// nthIP is the n-th address of a network: the first is the API server's service IP.
func nthIP(network *net.IPNet, n int64) net.IP {
	base := new(big.Int).SetBytes(network.IP)
	ip := new(big.Int).Add(base, big.NewInt(n)).Bytes()
	out := make(net.IP, len(network.IP))
	copy(out[len(out)-len(ip):], ip)
	return out
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
