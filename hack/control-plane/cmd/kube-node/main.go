// Command kube-node is kubelet, kube-proxy and kube-scheduler in one binary, built from the
// same Kubernetes Go modules as cmd/kube, for the single-node cluster of hack/cluster.sh.
// It is a binary of its own so that the control-plane tests, which must run no kubelet and
// no scheduler, keep their smaller binary and its cache.
//
// Like cmd/kube, it picks the program from the name it runs as or from its first
// argument. Two more programs:
//
//   - cri-reset stops and removes every pod sandbox and container the CRI runtime holds:
//     removing a sandbox through the runtime is what runs the CNI DEL that frees its
//     address and deletes its veth, so a node can be taken down without leaving
//     interfaces, mounts or IP allocations behind.
//   - loadbalancer gives each Service of type LoadBalancer an address from a pool, as a
//     cloud's controller would; kube-proxy then sends that address to the Service's pods.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
	_ "time/tzdata" // as the upstream main packages

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // the build info metric
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

var programs = map[string]func(){
	"kubelet": func() {
		// The kubelet logs through the context's logger; a nil context panics at start.
		os.Exit(cli.Run(kubelet.NewKubeletCommand(context.Background())))
	},
	"kube-proxy": func() {
		os.Exit(cli.Run(proxy.NewProxyCommand()))
	},
	"kube-scheduler": func() {
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	},
	"loadbalancer": func() {
		if err := loadBalancer(os.Args[1:]); err != nil {
			fmt.Fprintf(os.Stderr, "loadbalancer: %v\n", err)
			os.Exit(1)
		}
	},
	"cri-reset": func() {
		if len(os.Args) != 2 {
			fmt.Fprintln(os.Stderr, "usage: cri-reset unix:///path/to/runtime.sock")
			os.Exit(2)
		}
		if err := criReset(os.Args[1]); err != nil {
			fmt.Fprintf(os.Stderr, "cri-reset: %v\n", err)
			os.Exit(1)
		}
	},
}

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if _, ok := programs[name]; !ok {
		if len(args) == 0 {
			usage()
			os.Exit(2)
		}
		name, args = args[0], args[1:]
	}
	run, ok := programs[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "kube-node: unknown program %q\n", name)
		usage()
		os.Exit(2)
	}
	os.Args = append([]string{name}, args...)
	run()
}

func usage() {
	names := make([]string, 0, len(programs))
	for name := range programs {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: kube-node PROGRAM [ARGS...], or run it as PROGRAM through a link\nprograms: %v\n", names)
}

// criReset stops and removes every pod sandbox, then every container left over. Stopping
// a sandbox kills its containers and tears its network down; the runtime keeps doing
// that correctly when the kubelet is already gone.
func criReset(endpoint string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rt, err := remote.NewRemoteRuntimeService(endpoint, 10*time.Second, nil, nil)
	if err != nil {
		return err
	}
	sandboxes, err := rt.ListPodSandbox(ctx, nil)
	if err != nil {
		return fmt.Errorf("listing pod sandboxes: %w", err)
	}
	var failed int
	for _, sb := range sandboxes {
		name := sb.GetMetadata().GetNamespace() + "/" + sb.GetMetadata().GetName()
		if err := rt.StopPodSandbox(ctx, sb.Id); err != nil {
			fmt.Fprintf(os.Stderr, "cri-reset: stopping sandbox of %s: %v\n", name, err)
			failed++
			continue
		}
		if err := rt.RemovePodSandbox(ctx, sb.Id); err != nil {
			fmt.Fprintf(os.Stderr, "cri-reset: removing sandbox of %s: %v\n", name, err)
			failed++
		}
	}
	containers, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{})
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}
	for _, c := range containers {
		if err := rt.StopContainer(ctx, c.Id, 0); err != nil {
			fmt.Fprintf(os.Stderr, "cri-reset: stopping container %s: %v\n", c.GetMetadata().GetName(), err)
		}
		if err := rt.RemoveContainer(ctx, c.Id); err != nil {
			fmt.Fprintf(os.Stderr, "cri-reset: removing container %s: %v\n", c.GetMetadata().GetName(), err)
			failed++
		}
	}
	fmt.Fprintf(os.Stderr, "cri-reset: removed %d pod sandbox(es) and %d container(s)\n", len(sandboxes)-failed, len(containers))
	if failed > 0 {
		return fmt.Errorf("%d sandbox(es) or container(s) could not be removed", failed)
	}
	return nil
}
