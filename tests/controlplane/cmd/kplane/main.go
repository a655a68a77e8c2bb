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

	"mettaton.dev/controlplane/internal/multicall"
)

func main() {
	multicall.Main("kplane", map[string]func([]string) int{
		"etcd": func(args []string) int {
			etcdmain.Main(args)
			return 0
		},
		"kube-apiserver":          func([]string) int { return cli.Run(apiserver.NewAPIServerCommand()) },
		"kube-controller-manager": func([]string) int { return cli.Run(controllermanager.NewControllerManagerCommand()) },
		"kube-scheduler":          func([]string) int { return cli.Run(scheduler.NewSchedulerCommand()) },
		"kubectl": func(args []string) int {
			logs.GlogSetter(kubectl.GetLogVerbosity(args)) // nolint:errcheck
			if err := cli.RunNoErrOutput(kubectl.NewDefaultKubectlCommand()); err != nil {
				kubectlutil.CheckErr(err)
			}
			return 0
		},
	})
}
