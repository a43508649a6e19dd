#!/usr/bin/env python3
"""Field-by-field comparison of what `llm-injector inject` printed with the pod
a real apiserver stored, with the classes of tests/e2e/compare.rs (a port of
it: same flattening by `name`/`mountPath`, same classes of what the apiserver
adds, same allowance for the status annotation's `created` list).

  compare.py PRINTED.(yaml|json) STORED.json [--strict]

PRINTED may hold several documents: the Pod is used. --strict: no class is
allowed for the status annotation (PRINTED is inject's output for the pod as
the apiserver's ServiceAccount admission left it, so it must match exactly).
Exit 0 when every difference is explained.
"""
import fnmatch, json, re, sys, yaml

SERVER_ADDITIONS = [
    ("object metadata the apiserver sets", ["metadata.uid", "metadata.resourceVersion",
        "metadata.creationTimestamp", "metadata.generation", "metadata.managedFields**", "status**"]),
    ("pod spec defaults", ["spec.dnsPolicy", "spec.restartPolicy", "spec.schedulerName",
        "spec.securityContext", "spec.terminationGracePeriodSeconds", "spec.enableServiceLinks",
        "spec.preemptionPolicy", "spec.priority"]),
    ("container defaults", ["spec.*ontainers[*].terminationMessagePath",
        "spec.*ontainers[*].terminationMessagePolicy", "spec.*ontainers[*].imagePullPolicy",
        "spec.*ontainers[*].resources", "spec.*ontainers[*].ports[*].protocol",
        "spec.*ontainers[*].*Probe.timeoutSeconds", "spec.*ontainers[*].*Probe.periodSeconds",
        "spec.*ontainers[*].*Probe.successThreshold", "spec.*ontainers[*].*Probe.failureThreshold",
        "spec.*ontainers[*].*Probe.httpGet.scheme", "spec.*ontainers[*].env[*].valueFrom.fieldRef.apiVersion"]),
    ("requests default to limits", ["spec.*ontainers[*].resources.requests**"]),
    ("volume defaults", ["spec.volumes[*].*.defaultMode"]),
    ("DefaultTolerationSeconds admission (not-ready, unreachable)", ["spec.tolerations**"]),
    ("ServiceAccount admission", ["spec.serviceAccount", "spec.serviceAccountName",
        "spec.volumes[kube-api-access-*]**", "spec.volumes[#order]",
        "spec.*ontainers[*].volumeMounts[kube-api-access-*]**", "spec.*ontainers[*].volumeMounts[#order]"]),
    ("made by a controller", ["metadata.name", "metadata.generateName", "metadata.ownerReferences**"]),
    ("the request's namespace", ["metadata.namespace"]),
]


def glob(pattern):
    rx, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            rx += ".*"; i += 2
        elif pattern[i] == "*":
            rx += r"[^.\[\]]*"; i += 1
        else:
            rx += re.escape(pattern[i]); i += 1
    return re.compile(rx + r"\Z")


CLASSES = [(c, [glob(p) for p in ps]) for c, ps in SERVER_ADDITIONS]


def class_of(path):
    return next((c for c, ps in CLASSES if any(p.match(path) for p in ps)), None)


def item_keys(items):
    for field in ("name", "mountPath"):
        keys = [i.get(field) if isinstance(i, dict) else None for i in items]
        if all(isinstance(k, str) for k in keys) and len(set(keys)) == len(keys):
            return keys
    return None


def flatten(v, path="", out=None):
    out = {} if out is None else out
    if isinstance(v, dict) and (v or not path):
        for k, x in v.items():
            flatten(x, f"{path}.{k}" if path else k, out)
    elif isinstance(v, list) and v:
        keys = item_keys(v)
        if keys:
            out[f"{path}[#order]"] = keys
            for k, x in zip(keys, v):
                flatten(x, f"{path}[{k}]", out)
        else:
            for n, x in enumerate(v):
                flatten(x, f"{path}[{n}]", out)
    else:
        out[path] = v
    return out


def made_before(path, printed, got, stored):
    if path != "metadata.annotations.llm.injector.dev/status":
        return False
    want, have = json.loads(printed), json.loads(got)
    token = any(v.get("name", "").startswith("kube-api-access-") for v in stored["spec"].get("volumes", []))
    if "created" in want:
        want["created"] = [c for c in want["created"] if not (c == "volumes" and token)]
        if not want["created"]:
            del want["created"]
    return want == have


def compare(printed, stored, strict):
    want, got = flatten(printed), flatten(stored)
    added, wrong, quantities = {}, [], 0
    for path, value in want.items():
        if path not in got:
            c = class_of(path)
            if not (c or "").startswith("made by a controller"):
                wrong.append(f"{path}: inject prints {value!r}, apiserver dropped it")
            continue
        s = got[path]
        if path.endswith("[#order]"):
            kept = [k for k in s if k in value]
            if kept != value:
                wrong.append(f"{path}: inject orders {value}, apiserver has {s}")
        elif s == value:
            pass
        elif ".resources." in path and isinstance(value, (int, float)) and s == str(value):
            quantities += 1
        elif not strict and made_before(path, value, s, stored):
            added["status records fewer lists created"] = added.get("status records fewer lists created", 0) + 1
        else:
            wrong.append(f"{path}: inject prints {value!r}, apiserver has {s!r}")
    for path, value in got.items():
        if path in want:
            continue
        c = class_of(path)
        if c:
            added[c] = added.get(c, 0) + 1
        else:
            wrong.append(f"{path}: apiserver added {value!r}, which no class explains")
    return added, quantities, wrong


def load(path):
    text = open(path).read()
    docs = [json.loads(text)] if path.endswith(".json") else list(yaml.safe_load_all(text))
    return [d for d in docs if d and d.get("kind") == "Pod"][0]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    strict = "--strict" in sys.argv
    printed, stored = load(args[0]), load(args[1])
    # What a dry-run printed pod carries of its own request, never comparable.
    for k in ("uid", "creationTimestamp", "resourceVersion", "managedFields", "generation"):
        printed.get("metadata", {}).pop(k, None)
    printed.pop("status", None)
    # The token volume's name has a random suffix per request.
    norm = lambda d: json.loads(re.sub(r'"kube-api-access-[a-z0-9]{5}"', '"kube-api-access-xxxxx"', json.dumps(d)))
    printed, stored = norm(printed), norm(stored)
    added, quantities, wrong = compare(printed, stored, strict)
    for c, n in sorted(added.items()):
        print(f"  explained: {n:3d} x {c}")
    if quantities:
        print(f"  explained: {quantities:3d} x canonical quantities")
    for w in wrong:
        print(f"  WRONG: {w}")
    print("IDENTICAL (up to the classes above)" if not wrong else f"{len(wrong)} unexplained differences")
    sys.exit(1 if wrong else 0)


main()
