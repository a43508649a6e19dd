#!/usr/bin/env bash
# The webhook tried against a real kube-apiserver, as a new user would:
# CRDs and the catalog applied through the apiserver, `llm-injector serve` in
# cluster mode (reflectors on that apiserver, no --catalog), the webhooks
# registered by URL with the CA `serve` wrote, pods created with kubectl.
#
# The only kube-apiserver this machine can get is Debian bookworm's source
# package of Kubernetes 1.20.2 (the Debian, PyPI, npm and crates.io registries
# are reachable, nothing else; newer Debian "kubernetes" sources hold only
# kubectl). This script fetches it with apt-get source, builds kube-apiserver
# with the Go of its time (Debian bullseye's Go 1.15, unpacked under
# $TRIAL_DIR; built with Go 1.18 or later, 1.20's vendored reflect2 crashes
# the apiserver), about 8 minutes on 2 cores, once; then starts Debian's
# etcd and runs the trial. Needs root for apt-get (skipped when the tools are
# present). Not part of .ci/run: the build alone would take a third of CI's
# time budget.
#
# Run from the repository: trial/kube-apiserver/run.sh
# Results of the last run: trial/kube-apiserver/README.md.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$REPO/trial/kube-apiserver
TRIAL_DIR=${TRIAL_DIR:-/tmp/llm-injector-apiserver-trial}
K8S_VERSION=1.20.2
SERVER_MINOR=20
DEB_SOURCE="kubernetes=1.20.5+really1.20.2-1.1+deb12u1"
ETCD_PORT=23790
API_PORT=16443
WEBHOOK_ADDR=127.0.0.1:18443
ADMIN_ADDR=127.0.0.1:18080
RECORDER_PORT=18444
RUN=$TRIAL_DIR/run
mkdir -p "$TRIAL_DIR"
rm -rf "$RUN" && mkdir -p "$RUN/records"

say() { printf '\n== %s\n' "$*"; }
# shellcheck source=../common.sh
source "$REPO/trial/common.sh"

# --- tools -------------------------------------------------------------------
need_apt=()
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v rsync >/dev/null || need_apt+=(rsync) # with jq, what Debian builds the package with
command -v jq >/dev/null || need_apt+=(jq)
command -v kubectl >/dev/null || need_apt+=(kubernetes-client)
if ((${#need_apt[@]})); then
  say "installing ${need_apt[*]} (Debian)"
  apt-get install -y "${need_apt[@]}" >/dev/null
fi
python3 -c 'import yaml' 2>/dev/null || { say "installing PyYAML"; python3 -m pip install -q pyyaml; }

# --- kube-apiserver from Debian's source package -------------------------------
APISERVER=$TRIAL_DIR/kube-apiserver-$K8S_VERSION
if [[ ! -x $APISERVER ]]; then
  say "fetching Debian's source of Kubernetes $K8S_VERSION and bullseye's Go 1.15"
  APT=$TRIAL_DIR/apt
  private_apt "$APT" "deb-src bookworm" "deb bullseye"
  mkdir -p "$APT/debs"
  (cd "$TRIAL_DIR" && apt-get "${APT_OPTS[@]}" source --download-only "$DEB_SOURCE" 2>/dev/null)
  (cd "$APT/debs" && apt-get "${APT_OPTS[@]}" download golang-1.15-go golang-1.15-src 2>/dev/null)
  for deb in "$APT"/debs/*.deb; do dpkg-deb -x "$deb" "$TRIAL_DIR/go-root"; done
  export GOROOT=$TRIAL_DIR/go-root/usr/lib/go-1.15
  export PATH=$GOROOT/bin:$PATH
  GOPATH_DIR=$TRIAL_DIR/gopath
  SRC=$GOPATH_DIR/src/k8s.io/kubernetes
  rm -rf "$SRC" && mkdir -p "$SRC"
  tar xzf "$TRIAL_DIR"/kubernetes_*really${K8S_VERSION}.orig.tar.gz -C "$SRC" --strip-components=1
  say "building kube-apiserver $K8S_VERSION with $(go version | cut -d' ' -f3) (generated files first)"
  (cd "$SRC" && make generated_files >"$TRIAL_DIR/generate.log" 2>&1)
  # The version stamps of hack/lib/version.sh (what /version and --version say).
  version_flags=""
  for pkg in component-base/version client-go/pkg/version; do
    pkg=k8s.io/kubernetes/vendor/k8s.io/$pkg
    version_flags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$SERVER_MINOR"
  done
  (cd "$SRC" && GO111MODULE=off GOPATH=$GOPATH_DIR GOCACHE=$TRIAL_DIR/gocache \
    go build -o "$APISERVER" -ldflags "$version_flags" ./cmd/kube-apiserver)
fi

# --- processes ---------------------------------------------------------------
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

say "starting etcd $(etcd --version | head -1 | awk '{print $3}') and kube-apiserver $K8S_VERSION"
etcd --data-dir "$RUN/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls http://127.0.0.1:23800 \
  >"$RUN/etcd.log" 2>&1 &
pids+=($!)
# One loopback CA signs the apiserver's and the recorder's certificates; a
# static token is the admin's credential.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=trial-ca \
  -keyout "$RUN/ca.key" -out "$RUN/loopback-ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
  -keyout "$RUN/loopback.key" -out "$RUN/loopback.csr" 2>/dev/null
openssl x509 -req -in "$RUN/loopback.csr" -CA "$RUN/loopback-ca.crt" -CAkey "$RUN/ca.key" \
  -CAcreateserial -days 1 -out "$RUN/loopback.crt" \
  -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth') 2>/dev/null
TOKEN=$(openssl rand -hex 16)
echo "$TOKEN,trial-admin,trial-admin,system:masters" >"$RUN/tokens.csv"
openssl genrsa -out "$RUN/sa.key" 2048 2>/dev/null
"$APISERVER" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --secure-port=$API_PORT --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
  --tls-cert-file="$RUN/loopback.crt" --tls-private-key-file="$RUN/loopback.key" \
  --token-auth-file="$RUN/tokens.csv" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$RUN/sa.key" --service-account-signing-key-file="$RUN/sa.key" \
  --authorization-mode=AlwaysAllow --disable-admission-plugins=ServiceAccount \
  --service-cluster-ip-range=10.96.0.0/16 >"$RUN/apiserver.log" 2>&1 &
pids+=($!)
wait_for "https://127.0.0.1:$API_PORT/readyz" --cacert "$RUN/loopback-ca.crt" -H "Authorization: Bearer $TOKEN"

cat >"$RUN/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters: [{name: trial, cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$RUN/loopback-ca.crt"}}]
users: [{name: trial, user: {token: "$TOKEN"}}]
contexts: [{name: trial, context: {cluster: trial, user: trial}}]
current-context: trial
KUBECONFIG
export KUBECONFIG=$RUN/kubeconfig
kubectl version 2>/dev/null | sed 's/^/    /' || true

say "building llm-injector (release)"
(cd "$REPO" && cargo build --release --quiet)
INJECTOR=$REPO/target/release/llm-injector

say "CRDs and the catalog, through the apiserver"
# The 1.20 API has no CEL rules (x-kubernetes-validations came in 1.25):
# kubectl would refuse them, the server drops them; the webhook still checks.
kubectl apply --validate=false -f "$REPO/crds/"
kubectl wait --for condition=established --timeout=60s crd/llmengines.llm.injector.dev crd/llmmodels.llm.injector.dev
kubectl create namespace team-a
# The GPU engines run pods with runtimeClassName nvidia/amd, as a GPU operator
# installs them; the apiserver's RuntimeClass admission refuses unknown ones.
for handler in nvidia amd; do
  printf 'apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: %s}\nhandler: %s\n' \
    "$handler" "$handler" | kubectl apply -f -
done

say "llm-injector serve in cluster mode (reflectors on the apiserver; self-signed certificate)"
"$INJECTOR" serve --addr $WEBHOOK_ADDR --admin-addr $ADMIN_ADDR --ca-file "$RUN/ca.crt" \
  --log-format json >"$RUN/serve.log" 2>&1 &
SERVE_PID=$!
pids+=($SERVE_PID)
wait_for_serve "$SERVE_PID" "$ADMIN_ADDR" "$RUN/serve.log"
echo "    /readyz: $(curl -s http://$ADMIN_ADDR/readyz)"

say "the recording webhook (before and after llm-injector)"
python3 "$HERE/recorder.py" 127.0.0.1 $RECORDER_PORT "$RUN/loopback.crt" "$RUN/loopback.key" \
  "$RUN/records" >"$RUN/recorder.log" 2>&1 &
pids+=($!)
wait_for "https://127.0.0.1:$RECORDER_PORT/" --cacert "$RUN/loopback-ca.crt" -X POST -d '{"request":{"uid":"x"}}' || true

say "webhook configurations by URL (from webhook-config/, clientConfig replaced)"
python3 "$HERE/register.py" "$REPO/webhook-config" "https://$WEBHOOK_ADDR" "$RUN/ca.crt" \
  "https://127.0.0.1:$RECORDER_PORT" "$RUN/loopback-ca.crt" >"$RUN/webhooks.yaml"
# kubectl would refuse fields the 1.20 API lacks (matchConditions): the server
# drops them, so every pod of a selected namespace reaches the webhook.
kubectl apply --validate=false -f "$RUN/webhooks.yaml"
sleep 2 # the apiserver's webhook informers

say "LLMEngines and LLMModels of examples/catalog (sent to /validate)"
kubectl apply --validate=false -f "$REPO/examples/catalog/"
for _ in $(seq 1 40); do
  sizes=$(curl -s "http://$ADMIN_ADDR/metrics" | grep '^llm_injector_catalog_objects' || true)
  grep -qE 'LLMModel.*} 5' <<<"$sizes" && break
  sleep 0.25
done
echo "$sizes" | sed 's/^/    /'

failures=0
expect() { # DESCRIPTION WANT(ok|denied) PATTERN -- command...
  local what=$1 want=$2 pattern=$3; shift 4
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  local got=ok; ((rc)) && got=denied
  if [[ $got == "$want" ]] && grep -qE "$pattern" <<<"$out"; then
    echo "  PASS  $what"
  else
    echo "  FAIL  $what (wanted $want matching /$pattern/, got $got)"
    failures=$((failures + 1))
  fi
  sed 's/^/          /' <<<"$out"
}

say "validation through the apiserver"
expect "an LLMModel naming a missing engine is accepted with a warning" ok \
  'Warning: .*spec\.engineRef\.name: LLMEngine "no-such-engine" does not exist' -- \
  kubectl apply --validate=false -f - <<'MODEL'
apiVersion: llm.injector.dev/v1alpha1
kind: LLMModel
metadata: {name: orphan, namespace: team-a}
spec:
  model: qwen3:0.6b
  engineRef: {name: no-such-engine}
MODEL
expect "an LLMModel asking a CPU engine for GPUs is refused" denied \
  'denied the request: .*LLMModel team-a/gpus-on-cpu: spec\.(devices|parallelism)' -- \
  kubectl apply --validate=false -f - <<'MODEL'
apiVersion: llm.injector.dev/v1alpha1
kind: LLMModel
metadata: {name: gpus-on-cpu, namespace: team-a}
spec:
  model: qwen3:8b
  engineRef: {name: ollama-cpu}
  parallelism: {model: 2}
  devices: ["0", "1"]
MODEL
expect "deleting an engine that models use is refused" denied 'ollama-cpu' -- \
  kubectl delete llmengine -n team-a ollama-cpu --wait=false

say "pods through the apiserver"
expect "a pod that asks for no model is stored unchanged" ok 'created' -- \
  kubectl create -f - <<'POD'
apiVersion: v1
kind: Pod
metadata: {name: plain, namespace: team-a}
spec:
  containers: [{name: app, image: ghcr.io/example/app:1.0}]
POD
expect "a pod asking for an unknown model is denied, naming it" denied 'no-such-model' -- \
  kubectl create -f - <<'POD'
apiVersion: v1
kind: Pod
metadata:
  name: unknown-model
  namespace: team-a
  annotations: {llm.injector.dev/model: no-such-model}
spec:
  containers: [{name: app, image: ghcr.io/example/app:1.0}]
POD
SIDECAR_PROBES_REFUSED='spec\.initContainers\[[0-9]+\]\.(startupProbe|readinessProbe|livenessProbe).*must not be set for init containers'
injected=()
for file in cpu gpu1 mp2 2x2 amd; do
  name=$(python3 -c 'import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))["metadata"]["name"])' \
    "$REPO/examples/workloads/$file.yaml")
  # A 1.20 apiserver refuses probes on init containers (native sidecars came
  # in 1.28), so "denied" for that reason, after the injection, is expected.
  expect "examples/workloads/$file.yaml is injected ($name)" denied "$SIDECAR_PROBES_REFUSED" -- \
    kubectl create -f "$REPO/examples/workloads/$file.yaml"
  injected+=("$name")
done
expect "a dry run is injected too (kubectl create --dry-run=server)" denied "$SIDECAR_PROBES_REFUSED" -- \
  kubectl create --dry-run=server -f - <<'POD'
apiVersion: v1
kind: Pod
metadata:
  name: dry-run
  namespace: team-a
  annotations: {llm.injector.dev/model: llama-cpu}
spec:
  containers: [{name: app, image: ghcr.io/example/app:1.0}]
POD
injected+=(dry-run)

say "the pod the apiserver made of each injection vs. llm-injector inject"
python3 "$HERE/compare.py" "$INJECTOR" "$REPO/examples/catalog" "$RUN/records" $SERVER_MINOR \
  plain "${injected[@]}" || failures=$((failures + 1))

expect "deleting a model is allowed without a call to the webhook" ok 'deleted' -- \
  kubectl delete llmmodel -n team-a orphan

say "the webhook's metrics"
metrics=$(curl -s "http://$ADMIN_ADDR/metrics")
grep -E '^llm_injector_admission_(reviews|bad_requests)_total' <<<"$metrics" | sed 's/^/    /'
# Each injected pod was patched once: the recorder's later change made the
# apiserver call llm-injector again (reinvocation), which must not patch again.
count() { grep -E "^llm_injector_admission_reviews_total\{webhook=\"mutate\",kind=\"Pod\",operation=\"CREATE\",outcome=\"$1\"\}" <<<"$metrics" | awk '{print $2}'; }
patched=$(count patched) allowed=$(count allowed)
if [[ $patched == "${#injected[@]}" && $allowed == $((${#injected[@]} + 2)) ]]; then
  echo "  PASS  reinvoked after a later webhook's change, llm-injector patched nothing more ($patched patched, $allowed allowed: plain twice, each injected pod once more)"
else
  echo "  FAIL  reinvocation: $patched patched and $allowed allowed, wanted ${#injected[@]} and $((${#injected[@]} + 2))"
  failures=$((failures + 1))
fi
grep -c '"level":"ERROR"' "$RUN/serve.log" | sed 's/^/    errors logged by serve: /' || true
if grep -q 'kind="LLMModel",operation="DELETE"' <<<"$metrics"; then
  echo "  FAIL  an LLMModel deletion was sent to the webhook"
  failures=$((failures + 1))
fi

say "failure policies while the webhook is down (serve stopped)"
kill "$SERVE_PID" && wait "$SERVE_PID" 2>/dev/null || true
expect "an LLMModel is not created unchecked (failurePolicy Fail)" denied 'failed calling webhook "validate\.llm\.injector\.dev"' -- \
  kubectl apply --validate=false -f - <<'MODEL'
apiVersion: llm.injector.dev/v1alpha1
kind: LLMModel
metadata: {name: while-down, namespace: team-a}
spec:
  model: qwen3:0.6b
  engineRef: {name: ollama-amd}
MODEL
expect "an annotated pod is refused, not started without its engine (failurePolicy Fail)" denied \
  'failed calling webhook "inject\.llm\.injector\.dev"' -- \
  kubectl create -f "$REPO/examples/workloads/amd.yaml"
expect "an LLMEngine can still be deleted (failurePolicy Ignore for deletions)" ok 'deleted' -- \
  kubectl delete llmengine -n team-a ollama-amd

say "result: $failures failure(s); logs and records in $RUN"
exit $((failures > 0))
