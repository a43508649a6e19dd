#!/usr/bin/env python3
"""Rough cost of a pod create (server dry run, POST ...?dryRun=All) per
scenario, round-robin so that background load hits all alike; one kept-alive
HTTPS connection. Also the apiserver's own per-policy time
(apiserver_mutating_admission_policy_check_duration_seconds, per mutation,
summed per pod).

  bench-setup.sh; bench.py ENVFILE POD.yaml BIG.yaml [N]

ENVFILE is the `env` controlplane.sh writes. Give POD.yaml as BIG.yaml too to
get the apiserver's per-policy figures for one-container pods alone.
"""
import http.client, json, re, ssl, statistics, sys, time, yaml

env = dict(l.split("=", 1) for l in open(sys.argv[1]).read().split())
pod = yaml.safe_load(open(sys.argv[2]))
big = yaml.safe_load(open(sys.argv[3]))
N = int(sys.argv[4]) if len(sys.argv) > 4 else 100
host, port = env["API"].removeprefix("https://").split(":")
ctx = ssl.create_default_context(cafile=env["KUBECONFIG"].rsplit("/", 1)[0] + "/ca.crt")
conn = http.client.HTTPSConnection(host, int(port), context=ctx)
H = {"Authorization": "Bearer " + env["TOKEN"], "Content-Type": "application/json", "Accept": "application/json"}


def body(p, ns, annotated):
    p = json.loads(json.dumps(p))
    p["metadata"]["namespace"] = ns
    p["metadata"]["name"] = "bench"
    if not annotated:
        del p["metadata"]["annotations"]["llm.injector.dev/model"]
    return json.dumps(p)


SCENARIOS = {
    "no policy bound (ns plain)": body(pod, "plain", True),
    "policy bound, matchConditions false": body(pod, "team-c", False),
    "fixed 3-op policy (ns fixed3)": body(pod, "fixed3", True),
    "generated, 1 mutation, Object (team-c)": body(pod, "team-c", True),
    "generated, 4 mutations, Object (team-e)": body(pod, "team-e", True),
    "generated, 4 mutations, dyn maps (team-d)": body(pod, "team-d", True),
    "50 containers, no policy (plain)": body(big, "plain", True),
    "50 containers, 1 mutation (team-c)": body(big, "team-c", True),
    "50 containers, 4 mutations (team-e)": body(big, "team-e", True),
}


def post(ns, b):
    t = time.perf_counter()
    conn.request("POST", f"/api/v1/namespaces/{ns}/pods?dryRun=All", b, H)
    r = conn.getresponse(); data = r.read()
    dt = time.perf_counter() - t
    if r.status != 201:
        sys.exit(f"{ns}: {r.status} {data[:500]}")
    return dt, json.loads(data)


def metrics():
    conn.request("GET", "/metrics", headers=H)
    text = conn.getresponse().read().decode()
    out = {}
    for m in re.finditer(r'^apiserver_mutating_admission_policy_check_duration_seconds_(sum|count)\{([^}]*)\} (\S+)$', text, re.M):
        policy = re.search(r'policy="([^"]*)"', m.group(2)).group(1)
        out[(policy, m.group(1))] = out.get((policy, m.group(1)), 0) + float(m.group(3))
    return out


for name, b in SCENARIOS.items():  # warm up, and check the mutation happened
    ns = json.loads(b)["metadata"]["namespace"]
    for _ in range(10):
        _, got = post(ns, b)
    print(f"# {name}: stored status annotation: {'llm.injector.dev/status' in got['metadata'].get('annotations', {})}, "
          f"init containers: {len(got['spec'].get('initContainers', []))}")
before = metrics()
times = {n: [] for n in SCENARIOS}
for _ in range(N):
    for name, b in SCENARIOS.items():
        times[name].append(post(json.loads(b)["metadata"]["namespace"], b)[0])
after = metrics()
print(f"{'scenario':45s} {'median':>8s} {'mean':>8s} {'p90':>8s}  (ms per create, N={N})")
for name, ts in times.items():
    ts = sorted(ts)
    print(f"{name:45s} {statistics.median(ts)*1e3:8.2f} {statistics.mean(ts)*1e3:8.2f} {ts[int(len(ts)*0.9)]*1e3:8.2f}")
print("apiserver_mutating_admission_policy_check_duration_seconds, per pod (sum over its mutations):")
pods = {"fixed3": N, "llm-injector.team-c.inline-model": 2 * N, "llm-injector.team-e.inline-model": 2 * N,
        "llm-injector.team-d.inline-model": N}
for policy, n in pods.items():
    s = after.get((policy, "sum"), 0) - before.get((policy, "sum"), 0)
    c = after.get((policy, "count"), 0) - before.get((policy, "count"), 0)
    print(f"  {policy:40s} {s / n * 1e3:7.3f} ms/pod over {c:.0f} observations ({c / n:.0f} per pod)"
          + ("  [POD and BIG alike]" if n == 2 * N else ""))
