// Command kplane is a multi-call binary holding the Kubernetes control plane
// that mettaton's tests and demo run against: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kubectl, built from the
// Kubernetes Go modules at one pinned release. One binary shares compilation
// of the (large) common dependency graph across the components.
//
// Usage: kplane <etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubectl> [flags...]
// A symlink named after a component works too (busybox style).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	_ "time/tzdata" // for timeZone support in CronJob

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectl "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

const usage = "usage: kplane <etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubectl> [flags...]"

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args
	if name == "kplane" {
		if len(os.Args) < 2 {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		name = os.Args[1]
		args = os.Args[1:]
	}
	// Each component parses os.Args itself: present it as if it were its own binary.
	os.Args = args

	switch name {
	case "etcd":
		etcdmain.Main(args)
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	case "kubectl":
		logs.GlogSetter(kubectl.GetLogVerbosity(args)) // nolint:errcheck
		if err := cli.RunNoErrOutput(kubectl.NewDefaultKubectlCommand()); err != nil {
			kubectlutil.CheckErr(err)
		}
	default:
		fmt.Fprintf(os.Stderr, "kplane: unknown component %q\n%s\n", name, usage)
		os.Exit(2)
	}
}
