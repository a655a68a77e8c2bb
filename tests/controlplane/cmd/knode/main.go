// Command knode is a multi-call binary holding what runs on mettaton's one real
// test node: the kubelet and kube-proxy, built from the same pinned Kubernetes
// module as kplane (so both share one build cache and one version).
//
// Usage: knode <kubelet|kube-proxy> [flags...]
// A symlink named after a component works too (busybox style).
package main

import (
	"context"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"

	"mettaton.dev/controlplane/internal/multicall"
)

func main() {
	multicall.Main("knode", map[string]func([]string) int{
		"kubelet":    func([]string) int { return cli.Run(kubelet.NewKubeletCommand(context.Background())) },
		"kube-proxy": func([]string) int { return cli.Run(proxy.NewProxyCommand()) },
	})
}
