#!/usr/bin/env bash
# check-variant.sh POD.yaml: the reference is `llm-injector inject` run on the
# pod as the apiserver's earlier admission plugins (ServiceAccount) leave it,
# got with a server dry run of the pod without its model annotation (so no
# policy matches); then the pod is created for real with the policy in place
# and compared strictly.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pod=$1; base=${pod%.yaml}
: "${CATALOG:?CATALOG=the LLMEngine/LLMModel yaml}"
kubectl delete -f "$pod" --ignore-not-found --grace-period=0 --force >/dev/null 2>&1
python3 - "$pod" > "$base.unannotated.json" <<'PY'
import json, sys, yaml
d = yaml.safe_load(open(sys.argv[1])); d["metadata"]["annotations"]["llm.injector.dev/model-off"] = d["metadata"]["annotations"].pop("llm.injector.dev/model")
print(json.dumps(d))
PY
kubectl create -f "$base.unannotated.json" --dry-run=server -o json | python3 -c '
import json, sys
d = json.load(sys.stdin); a = d["metadata"]["annotations"]; a["llm.injector.dev/model"] = a.pop("llm.injector.dev/model-off"); print(json.dumps(d))' > "$base.admitted.json"
/work/main/target/release/llm-injector inject -f "$base.admitted.json" --catalog "$CATALOG" > "$base.cli.yaml" 2> "$base.cli.stderr"
kubectl create -f "$pod" -o json > "$base.stored.json"
python3 "$here/compare.py" "$base.cli.yaml" "$base.stored.json" --strict
