// Command control-plane runs a throwaway Kubernetes control plane for tests: etcd,
// kube-apiserver and kube-controller-manager on loopback, on free ports, with a fresh PKI
// and an admin kubeconfig. It stays in the foreground and stops everything it started when
// it gets SIGINT, SIGTERM or SIGHUP, when one of its programs dies, or (with
// --watch-parent) when the process that started it goes away.
//
// It uses only the standard library, so it builds in seconds even where the Kubernetes
// programs come from KUBEBUILDER_ASSETS instead of from this module.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

func main() {
	// The programs get Pdeathsig, which Linux ties to the thread that forked them, not to
	// the process: keep the main goroutine, which starts them, on one thread for good.
	runtime.LockOSThread()
	if len(os.Args) >= 2 && os.Args[1] == "ctl" {
		if err := ctl(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "control-plane: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) < 2 || os.Args[1] != "run" {
		fmt.Fprintln(os.Stderr, "usage: control-plane run --dir DIR [flags]   (control-plane run -h lists the flags)")
		fmt.Fprintln(os.Stderr, "       control-plane ctl --dir DIR restart|pause|resume NAME   (control-plane ctl -h lists the flags)")
		os.Exit(2)
	}
	if err := run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "control-plane: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("control-plane run", flag.ContinueOnError)
	var opts options
	fs.StringVar(&opts.dir, "dir", "", "state directory: pki/, etcd/, logs/, kubeconfig, ready.json (its old contents are replaced)")
	fs.StringVar(&opts.binDir, "bin-dir", "", "directory holding etcd, kube-apiserver and kube-controller-manager (default: this program's directory)")
	fs.StringVar(&opts.controllers, "controllers", defaultControllers, "kube-controller-manager --controllers; empty runs no controller manager")
	fs.StringVar(&opts.serviceCIDR, "service-cluster-ip-range", "10.96.0.0/12", "kube-apiserver --service-cluster-ip-range")
	fs.DurationVar(&opts.timeout, "timeout", 2*time.Minute, "how long startup may take")
	fs.BoolVar(&opts.watchParent, "watch-parent", false, "stop when the parent process exits")
	fs.BoolVar(&opts.removeDir, "remove-dir", false, "remove --dir entirely on exit")
	fs.StringVar(&opts.node.ip, "node-ip", "", "also run a node (kube-scheduler, containerd, kubelet, kube-proxy) with this address, which must not be loopback; the API server serves there")
	fs.StringVar(&opts.node.name, "node-name", "switchyard-node", "the node's name")
	fs.StringVar(&opts.node.clusterCIDR, "cluster-cidr", "", "the pods' address range (kube-proxy --cluster-cidr)")
	fs.StringVar(&opts.node.clusterDNS, "cluster-dns", "", "the cluster DNS Service IP the kubelet gives pods")
	fs.StringVar(&opts.node.clusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
	fs.StringVar(&opts.node.containerdConfig, "containerd-config", "", "containerd's config file")
	fs.StringVar(&opts.node.containerdSocket, "containerd-socket", "", "the socket that config makes containerd serve")
	fs.StringVar(&opts.node.binDir, "node-bin-dir", "", "directory holding kubelet, kube-proxy, kube-scheduler and cri-reset (default: --bin-dir)")
	fs.StringVar(&opts.node.podLogsDir, "pod-logs-dir", "", "where the kubelet keeps container logs (default: DIR/pod-logs)")
	fs.StringVar(&opts.node.loadBalancerPool, "load-balancer-pool", "", "addresses (a CIDR the node routes to itself) for Services of type LoadBalancer; empty: they stay pending")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if opts.dir == "" {
		return errors.New("--dir is required")
	}
	dir, err := filepath.Abs(opts.dir)
	if err != nil {
		return err
	}
	opts.dir = dir
	if opts.node.enabled() {
		if opts.node.clusterCIDR == "" || opts.node.clusterDNS == "" || opts.node.containerdConfig == "" || opts.node.containerdSocket == "" {
			return errors.New("--node-ip needs --cluster-cidr, --cluster-dns, --containerd-config and --containerd-socket")
		}
		controllersSet := false
		fs.Visit(func(f *flag.Flag) { controllersSet = controllersSet || f.Name == "controllers" })
		if !controllersSet {
			opts.controllers = nodeControllers
		}
		if opts.node.podLogsDir == "" {
			opts.node.podLogsDir = filepath.Join(dir, "pod-logs")
		}
	}
	if opts.binDir == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		opts.binDir = filepath.Dir(self)
	}
	if opts.node.binDir == "" {
		opts.node.binDir = opts.binDir
	}

	// Signals and the parent watch cancel the same context that bounds startup, so a
	// stop request during a slow start is honoured at once.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-signals
		cancel(stopRequest(fmt.Sprintf("got %v", sig)))
	}()
	if opts.watchParent {
		go watchParent(ctx, cancel)
	}

	cp := &controlPlane{opts: opts, exits: newExits()}
	err = cp.start(ctx)
	if err == nil {
		err = cp.wait(ctx)
	}
	cp.stop()
	if opts.removeDir {
		if rmErr := os.RemoveAll(opts.dir); rmErr != nil {
			fmt.Fprintf(os.Stderr, "control-plane: %v\n", rmErr)
		}
	}
	var stop stopRequest
	if err != nil && errors.As(context.Cause(ctx), &stop) {
		// A stop request is how a run normally ends; what it interrupted is no failure.
		fmt.Fprintf(os.Stderr, "control-plane: stopped (%s)\n", stop)
		return nil
	}
	return err
}

// stopRequest is the cancellation cause for a signal or a vanished parent, which end a
// run normally, as opposed to a program that failed.
type stopRequest string

func (s stopRequest) Error() string { return string(s) }

// watchParent cancels ctx once this process is re-parented, which is how Linux tells a
// child that its parent died (even by SIGKILL, when no cleanup handler of the parent ran).
func watchParent(ctx context.Context, cancel context.CancelCauseFunc) {
	parent := os.Getppid()
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if os.Getppid() != parent {
				cancel(stopRequest(fmt.Sprintf("parent process %d exited", parent)))
				return
			}
		}
	}
}
