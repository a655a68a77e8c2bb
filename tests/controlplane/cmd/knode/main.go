// Command knode is a multi-call binary holding what runs on mettaton's one real
// test node: the kubelet and kube-proxy, built from the same pinned Kubernetes
// module as kplane (so both share one build cache and one version).
//
// Usage: knode <kubelet|kube-proxy> [flags...]
// A symlink named after a component works too (busybox style).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

const usage = "usage: knode <kubelet|kube-proxy> [flags...]"

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args
	if name == "knode" {
		if len(os.Args) < 2 {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		name = os.Args[1]
		args = os.Args[1:]
	}
	os.Args = args
	switch name {
	case "kubelet":
		os.Exit(cli.Run(kubelet.NewKubeletCommand(context.Background())))
	case "kube-proxy":
		os.Exit(cli.Run(proxy.NewProxyCommand()))
	default:
		fmt.Fprintf(os.Stderr, "knode: unknown component %q\n%s\n", name, usage)
		os.Exit(2)
	}
}
