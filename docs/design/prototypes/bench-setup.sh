#!/usr/bin/env bash
# The policies bench.py expects (KUBECONFIG set, control plane from controlplane.sh):
#   team-c: cpu-single-1mutation.yaml   team-e: cpu-single.yaml (4 mutations)
#   team-d: cpu-single-dyn.yaml (4)     fixed3: fixed3.yaml     plain: none
set -euo pipefail
P=$(cd "$(dirname "$0")" && pwd)
for ns in team-c team-d team-e fixed3 plain; do
  kubectl create ns $ns 2>/dev/null || true
  kubectl -n $ns create sa default 2>/dev/null || true   # no controller-manager
done
kubectl apply -f "$P/cpu-single-1mutation.yaml"
sed 's/team-c/team-e/g' "$P/cpu-single.yaml" | kubectl apply -f -
sed 's/team-c/team-d/g' "$P/cpu-single-dyn.yaml" | kubectl apply -f -
kubectl apply -f "$P/fixed3.yaml"
sleep 3   # policies take effect through informers (~1 s)
