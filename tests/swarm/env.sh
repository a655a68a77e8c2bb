# Shared settings of the local Docker Swarm, sourced by build, up and down.
# The engine is the machine's own dockerd on /var/run/docker.sock (started by
# ./up when none answers there); the swarm and every port it opens are on
# loopback.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SWARM_SRC="$ROOT/tests/swarm"
TESTGAME_SRC="$ROOT/tests/testgame"
SWARM_DIR="${MTN_SWARM_DIR:-$ROOT/target/swarm}"
SWARM_BIN="$SWARM_DIR/bin"
SWARM_LOGS="$SWARM_DIR/logs"
SWARM_RUN="$SWARM_DIR/run"

# MTN_DOCKER_SOCK names another engine's socket, for ./build to import the
# test image into it (the reliability tests' private engines).
DOCKER_SOCK="${MTN_DOCKER_SOCK:-/var/run/docker.sock}"
export DOCKER_HOST="unix://$DOCKER_SOCK"
# The test game's image. Its registry host is on loopback, where no registry
# runs: when the engine tries to resolve or pull it, it is refused at once and
# never reaches a public registry (the image only exists locally).
TESTGAME_IMAGE="${MTN_TESTGAME_IMAGE:-127.0.0.1:5999/mettaton-testgame:1}"
# Label carried by every service a test creates, so ./down can remove leftovers.
TEST_LABEL=mettaton.dev/test=true

export GOTOOLCHAIN=local
export GOFLAGS="-mod=mod -trimpath"
