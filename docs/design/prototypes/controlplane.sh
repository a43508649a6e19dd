#!/usr/bin/env bash
# Throwaway etcd + kube-apiserver 1.36.3 on 127.0.0.1 (random free ports),
# as tests/e2e/controlplane.rs starts them, minus the controller-manager.
#   controlplane.sh start DIR   -> writes DIR/kubeconfig, DIR/env, DIR/*.pid
#   controlplane.sh stop DIR    -> stops the processes it started (by pid)
set -euo pipefail
BIN=${BIN:-/root/.cache/llm-injector/controlplane-v1.36.3/bin}
cmd=$1; DIR=$2
stop() {
  for p in apiserver etcd; do
    if [ -f "$DIR/$p.pid" ]; then
      pid=$(cat "$DIR/$p.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$DIR/$p.pid"
    fi
  done
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
if [ "$cmd" = stop ]; then stop; exit 0; fi
mkdir -p "$DIR"; cd "$DIR"
trap 'echo "start failed; stopping" >&2; stop' ERR
# CA + serving cert for 127.0.0.1/localhost
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout ca.key -out ca.crt -subj /CN=proto-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout apiserver.key \
  -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > san.ext
openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
  -extfile san.ext -out apiserver.crt 2>/dev/null
# ServiceAccount token signing key pair
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out sa.key 2>/dev/null
openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
token=$(openssl rand -hex 16)
echo "$token,proto-admin,proto-admin,system:masters" > tokens.csv
api=$(free_port); etcdc=$(free_port); etcdp=$(free_port)
cat > kubeconfig <<KC
apiVersion: v1
kind: Config
clusters: [{name: p, cluster: {server: "https://127.0.0.1:$api", certificate-authority: "$DIR/ca.crt"}}]
users: [{name: p, user: {token: "$token"}}]
contexts: [{name: p, context: {cluster: p, user: p}}]
current-context: p
KC
printf 'API=https://127.0.0.1:%s\nTOKEN=%s\nKUBECONFIG=%s/kubeconfig\n' "$api" "$token" "$DIR" > env
setsid "$BIN/etcd" --data-dir="$DIR/etcd" --listen-client-urls=http://127.0.0.1:$etcdc \
  --advertise-client-urls=http://127.0.0.1:$etcdc --listen-peer-urls=http://127.0.0.1:$etcdp \
  --initial-advertise-peer-urls=http://127.0.0.1:$etcdp --initial-cluster=default=http://127.0.0.1:$etcdp \
  --unsafe-no-fsync --log-level=warn >etcd.log 2>&1 </dev/null &
echo $! > etcd.pid
setsid "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:$etcdc --secure-port=$api \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --cert-dir="$DIR/apiserver-certs" \
  --tls-cert-file="$DIR/apiserver.crt" --tls-private-key-file="$DIR/apiserver.key" \
  --token-auth-file="$DIR/tokens.csv" --authorization-mode=RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$DIR/sa.pub" --service-account-signing-key-file="$DIR/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 --v=1 >apiserver.log 2>&1 </dev/null &
echo $! > apiserver.pid
for i in $(seq 450); do
  "$BIN/kubectl" --kubeconfig=kubeconfig get --raw /readyz >/dev/null 2>&1 && { echo "ready: $api (etcd $etcdc) in $((i/5))s"; exit 0; }
  kill -0 "$(cat apiserver.pid)" || { tail -20 apiserver.log; false; }
  sleep 0.2
done
echo "apiserver not ready" >&2; false
