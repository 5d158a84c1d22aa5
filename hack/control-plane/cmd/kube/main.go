// Command kube is etcd, kube-apiserver, kube-controller-manager and kubectl in one
// binary, built from the Kubernetes and etcd Go modules because release binaries cannot
// be downloaded everywhere the tests run.
//
// It picks the program from the name it was started as (the build links etcd,
// kube-apiserver, kube-controller-manager and kubectl to it, so its directory looks like
// a KUBEBUILDER_ASSETS directory) or else from its first argument: `kube kubectl get ns`.
// One binary means one link and one cached file for the packages the programs share.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	_ "time/tzdata" // CronJob time zones, as in the upstream main packages

	"go.etcd.io/etcd/server/v3/etcdmain"
	_ "k8s.io/client-go/plugin/pkg/client/auth" // kubectl's client auth plugins
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"          // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // the build info metric
	kubectl "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

// programs maps each program name to its entry point. Each one reads os.Args, which main
// rewrites so that os.Args[0] is the program's name.
var programs = map[string]func(){
	"etcd": func() {
		etcdmain.Main(os.Args)
	},
	"kube-apiserver": func() {
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	},
	"kube-controller-manager": func() {
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	},
	"kubectl": func() {
		// As upstream: set the verbosity before the command is built, so that plugin and
		// kuberc handling already log at the level asked for.
		_, _ = logs.GlogSetter(kubectl.GetLogVerbosity(os.Args))
		if err := cli.RunNoErrOutput(kubectl.NewDefaultKubectlCommand()); err != nil {
			kubectlutil.CheckErr(err)
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
		fmt.Fprintf(os.Stderr, "kube: unknown program %q\n", name)
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
	fmt.Fprintf(os.Stderr, "usage: kube PROGRAM [ARGS...], or run it as PROGRAM through a link\nprograms: %v\n", names)
}
