import sys, yaml
n, nenv = int(sys.argv[1]), int(sys.argv[2])
cs = []
for i in range(n):
    c = {"name": f"c{i}", "image": "busybox:1.37",
         "env": [{"name": f"VAR_{j}", "value": f"value-{i}-{j}"} for j in range(nenv)],
         "ports": [{"containerPort": 1000 + 2*i}, {"containerPort": 1001 + 2*i, "name": f"p{i}"}]}
    if i % 5 == 1: c["env"].insert(1, {"name": "OPENAI_API_KEY", "value": "k"})
    if i % 7 == 3: c["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    cs.append(c)
print(yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"big{n}x{nenv}", "namespace": "team-c",
  "annotations": {"llm.injector.dev/model": "inline-model"}}, "spec": {"containers": cs}}))
