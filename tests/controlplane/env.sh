# Shared settings of the local control plane, sourced by build, up and down.
# Every port binds to 127.0.0.1; override a port through the environment when
# it is taken on your machine.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PLANE_SRC="$ROOT/tests/controlplane"
PLANE_DIR="${MTN_PLANE_DIR:-$ROOT/target/controlplane}"
PLANE_BIN="${MTN_PLANE_BIN:-$PLANE_DIR/bin}"
PLANE_LOGS="$PLANE_DIR/logs"
PLANE_PKI="$PLANE_DIR/pki"
PLANE_RUN="$PLANE_DIR/run"
KUBECONFIG_OUT="$PLANE_DIR/kubeconfig"

# The one pinned Kubernetes release (keep in step with go.mod and with the
# k8s-openapi feature in Cargo.toml).
K8S_VERSION=v1.36.3
KWOK_VERSION=v0.7.0
HELM_VERSION=v3.22.0

ETCD_CLIENT_PORT="${MTN_ETCD_CLIENT_PORT:-23790}"
ETCD_PEER_PORT="${MTN_ETCD_PEER_PORT:-23800}"
APISERVER_PORT="${MTN_APISERVER_PORT:-16443}"
CONTROLLER_MANAGER_PORT="${MTN_CONTROLLER_MANAGER_PORT:-16257}"
SCHEDULER_PORT="${MTN_SCHEDULER_PORT:-16259}"
KWOK_PORT="${MTN_KWOK_PORT:-16247}"
NODE_COUNT="${MTN_NODE_COUNT:-3}"
# Client rate limits of the controller-manager and the scheduler (kwok has
# none). Their defaults (20 and 50 requests/s) made them, not the API server,
# the limit of anything creating hundreds of pods (measured: 11 of 1000
# Deployments available after 6 minutes).
CLIENT_QPS="${MTN_CLIENT_QPS:-500}"
CLIENT_BURST="${MTN_CLIENT_BURST:-1000}"
SERVICE_CIDR=10.96.0.0/16
# Kubernetes' default: 2768 node ports, so at most that many NodePort game
# servers. The benchmarks at N=1000 and more widen it (BENCHMARKS.md).
NODE_PORT_RANGE="${MTN_NODE_PORT_RANGE:-30000-32767}"
POD_CIDR=10.244.0.0/16

export GOTOOLCHAIN=local
export GOFLAGS="-mod=mod -trimpath"

# The one real node (kubelet, containerd, kube-proxy, CNI) beside the kwok nodes:
# MTN_REAL_NODE=0 leaves it out (the big benchmarks need only kwok). See README.md.
REAL_NODE="${MTN_REAL_NODE:-1}"
NODE_NAME=mettaton-node
NODE_NETNS=mtn-node
# The node lives in its own network namespace, joined to the host by a veth pair:
# the host side is the address the node (and its pods) reach the API server at,
# the node side is the node's InternalIP, where players reach NodePorts.
NODE_HOST_IP=10.213.0.1
NODE_IP=10.213.0.2
NODE_POD_CIDR=10.245.0.0/24
NODE_DIR="$PLANE_DIR/node"
# The cgroup (in every v1 hierarchy) holding the node's processes and its pods,
# so that down finds and kills all of them, whatever was left by a crash.
NODE_CGROUP=mettaton-node
# A pod runs on the real node only when it tolerates this taint.
NODE_TAINT_KEY=mettaton.dev/real-node
# The test game's image (tests/testgame), as tests/swarm names it too; the real
# node gets it under both tags, :1 and :2 (an image change with the same game).
TESTGAME_IMAGE=127.0.0.1:5999/mettaton-testgame:1
TESTGAME_IMAGE_2=127.0.0.1:5999/mettaton-testgame:2
