#!/usr/bin/env python3
"""Renders cpu-single.yaml, the MutatingAdmissionPolicy + binding prototype.

The static parts (the init containers, the volumes, the env every user
container gets, the status fields that do not depend on the pod) are taken
from what `llm-injector inject` printed for one pod of the model; the parts
that depend on the pod (which containers get which env, which lists exist,
the status annotation's env/labels/created) are hand-written CEL below.
This stands in for the Rust generator: it shows how a Container (JSON) is
rendered as a CEL literal.

  gen.py INJECTED.yaml [--style object|dyn] > cpu-single.yaml
"""
import json, sys, yaml

MODEL, NS = "inline-model", "team-c"
STATUS, LABEL, MODEL_ANN = "llm.injector.dev/status", "llm.injector.dev/model", "llm.injector.dev/model"
# Fields of the core/v1 types used here whose schema is a map (additionalProperties),
# not a struct: rendered as CEL map literals in the "object" style.
MAP_FIELDS = {"limits", "requests", "labels", "annotations", "nodeSelector",
              "volumeAttributes", "overhead"}
STYLE = "object"


def s(text):
    # A JSON string literal is a CEL string literal (CEL knows \" \\ \n \t \r
    # \b \f \uXXXX; json.dumps never writes \/ and, with ensure_ascii=False,
    # no surrogate pairs).
    return json.dumps(text, ensure_ascii=False)


def cel(v, type_path):
    """A JSON value as a CEL literal. `type_path` is the Object type name
    (Object.spec.initContainers...), only used in the object style."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        raise ValueError("floats do not occur in a pod spec")
    if isinstance(v, str):
        return s(v)
    if isinstance(v, list):
        return "[" + ", ".join(cel(x, type_path) for x in v) + "]"
    if isinstance(v, dict):
        if STYLE == "dyn":
            return "{" + ", ".join(f"{s(k)}: dyn({cel(x, None)})" for k, x in v.items()) + "}"
        return type_path + "{" + ", ".join(
            f"{k}: " + (map_lit(x) if k in MAP_FIELDS else cel(x, f"{type_path}.{k}"))
            for k, x in v.items()) + "}"
    raise TypeError(v)


def map_lit(m):
    # map<string,string> (quantities are strings in the stored form)
    return "{" + ", ".join(f"{s(k)}: {s(str(x))}" for k, x in m.items()) + "}"


def append_ops(path, field, literals):
    return (f"(has({field}) ? [] : [JSONPatch{{op: \"add\", path: \"{path}\", value: []}}]) + [\n"
            + ",\n".join(f'  JSONPatch{{op: "add", path: "{path}/-", value: {l}}}' for l in literals) + "\n]")


def main():
    global STYLE
    args = sys.argv[1:]
    single = "--single" in args
    if single:
        args.remove("--single")
    if "--style" in args:
        i = args.index("--style"); STYLE = args[i + 1]; del args[i:i + 2]
    pod = [d for d in yaml.safe_load_all(open(args[0])) if d and d.get("kind") == "Pod"][0]
    status = json.loads(pod["metadata"]["annotations"][STATUS])
    init = [c for c in pod["spec"]["initContainers"] if c["name"] in status["initContainers"]]
    vols = [v for v in pod["spec"]["volumes"] if v["name"] in status["volumes"]]
    # The env every user container gets (the standard names then clientEnv);
    # NVIDIA_VISIBLE_DEVICES=void is separate (only containers without a GPU).
    app_env = pod["spec"]["containers"][0]["env"]
    wanted = [e for e in app_env if e["name"] in status["env"][0]["names"] and e["name"] != "NVIDIA_VISIBLE_DEVICES"]
    no_gpu = {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}

    env_t = "Object.spec.containers.env"
    init_lits = [cel(c, "Object.spec.initContainers") for c in init]
    # Under a classic mesh proxy llm-pull runs as the proxy's uid: the one
    # field of an injected container that depends on the pod.
    pull = init_lits[0]
    uid = init[0]["securityContext"]["runAsUser"]
    field = f"runAsUser: {uid}" if STYLE == "object" else f'"runAsUser": dyn({uid})'
    assert pull.count(field) == 1
    init_lits[0] = pull.replace(field, field.replace(str(uid), "variables.pullUid"))
    vol_lits = [cel(v, "Object.spec.volumes") for v in vols]
    status_head = json.dumps({k: status[k] for k in
        ["model", "engine", "ollamaModel", "instances", "gpusPerInstance", "initContainers", "volumes", "endpoint"]},
        separators=(",", ":"))[:-1]  # without the closing brace
    # JSON-encoded names, for the status annotation (names are known here, so
    # their JSON form is too: no JSON encoder is needed in CEL).
    json_names = {e["name"]: json.dumps(e["name"]) for e in wanted + [no_gpu]}

    gpu_key = ('k.startsWith("nvidia.com/") || k.startsWith("amd.com/") || '
               'k.startsWith("gpu.intel.com/") || k.endsWith("/gpu")')
    variables = [
        # Object.<path>{...} is not declared in variables (only in mutations):
        # env entries here are map<string,string> literals.
        ("wanted", "[\n" + ",\n".join("  " + map_lit(e) for e in wanted) + "\n]"),
        ("noGpu", map_lit(no_gpu)),
        # For each user container (by index), the env entries put before its own.
        # The names of `wanted` and NVIDIA_VISIBLE_DEVICES, as a map: one
        # lookup per env entry of the pod (a nested exists() per wanted name
        # ran out of the per-expression cost limit at ~15000 env entries).
        ("relevant", "{" + ", ".join(f"{s(e['name'])}: true" for e in wanted + [no_gpu]) + "}"),
        # Per container, the names of `relevant` it sets itself (cel.bind is
        # not declared in admission CEL: a variable stands in for it).
        ("sets", """object.spec.containers.map(c,
  has(c.env) ? c.env.filter(e, e.name in variables.relevant).map(e, e.name) : [])"""),
        # For each user container (by index), the env entries put before its own.
        ("adds", f"""lists.range(size(object.spec.containers)).map(i,
  object.spec.containers[i].name in ["istio-proxy", "linkerd-proxy"] ? [] :
  variables.wanted.filter(w, !(w.name in variables.sets[i]))
  + ("NVIDIA_VISIBLE_DEVICES" in variables.sets[i]
     || (has(object.spec.containers[i].resources) && (
          (has(object.spec.containers[i].resources.limits) && object.spec.containers[i].resources.limits.exists(k, {gpu_key}))
       || (has(object.spec.containers[i].resources.requests) && object.spec.containers[i].resources.requests.exists(k, {gpu_key}))
       || (has(object.spec.containers[i].resources.claims) && size(object.spec.containers[i].resources.claims) > 0)))
     ? [] : [variables.noGpu]))"""),
        ("pullUid", f"""(object.spec.containers.filter(c, c.name in ["istio-proxy", "linkerd-proxy"])
  .map(p, has(p.securityContext) && has(p.securityContext.runAsUser) ? p.securityContext.runAsUser
          : (p.name == "istio-proxy" ? 1337 : 2102)) + [{uid}])[0]"""),
        ("hasModelLabel", f"has(object.metadata.labels) && {s(LABEL)} in object.metadata.labels"),
        ("jsonNames", "{" + ", ".join(f"{s(k)}: {s(v)}" for k, v in json_names.items()) + "}"),
    ]
    status_expr = f"""{s(status_head)}
+ ',"env":[' + lists.range(size(object.spec.containers))
    .filter(i, size(variables.adds[i]) > 0)
    .map(i, '{{"container":' + string(i) + ',"names":['
      + variables.adds[i].map(e, variables.jsonNames[e.name]).join(',') + ']'
      + (has(object.spec.containers[i].env) ? '' : ',"createdList":true') + '}}')
    .join(',') + ']'
+ (variables.hasModelLabel ? '' : ',"labels":[{s(LABEL)}]')
+ ((size(variables.created) > 0) ? ',"created":[' + variables.created.join(',') + ']' : '')
+ '}}'"""
    variables.append(("created", """[
  has(object.metadata.labels) ? '' : '"metadata.labels"',
  has(object.spec.initContainers) ? '' : '"initContainers"',
  has(object.spec.volumes) ? '' : '"volumes"'
].filter(x, x != '')"""))
    variables.append(("status", status_expr))

    esc_label = 'jsonpatch.escapeKey(' + s(LABEL) + ')'
    mutations = {
        # First: the status and label describe the pod as it came in (every
        # later mutation sees the pod as the earlier ones left it).
        "metadata": f"""[
  JSONPatch{{op: "add", path: "/metadata/annotations/" + jsonpatch.escapeKey({s(STATUS)}), value: variables.status}}
] + (variables.hasModelLabel ? [] :
  has(object.metadata.labels)
  ? [JSONPatch{{op: "add", path: "/metadata/labels/" + {esc_label}, value: {s(MODEL)}}}]
  : [JSONPatch{{op: "add", path: "/metadata/labels", value: {{{s(LABEL)}: {s(MODEL)}}}}}])""",
        "env": """lists.range(size(object.spec.containers))
  .filter(i, size(variables.adds[i]) > 0)
  .map(i, has(object.spec.containers[i].env)
    ? lists.range(size(variables.adds[i])).map(k, JSONPatch{op: "add",
        path: "/spec/containers/" + string(i) + "/env/" + string(k), value: variables.adds[i][k]})
    : [JSONPatch{op: "add", path: "/spec/containers/" + string(i) + "/env", value: variables.adds[i]}])
  .flatten()""",
        # A list of Object.<path>{...} literals as a JSON Patch value panics the
        # apiserver (ObjectVal.ConvertToNative gives *structpb.Struct where a
        # list element must be *structpb.Value): create a missing list empty,
        # then append each item on its own.
        "initContainers": append_ops("/spec/initContainers", "object.spec.initContainers", init_lits),
        "volumes": append_ops("/spec/volumes", "object.spec.volumes", vol_lits),
    }
    name = f"llm-injector.{NS}.{MODEL}"
    match_resources = {
        "matchPolicy": "Equivalent",
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NS}},
        "objectSelector": {},
        "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                           "resources": ["pods"], "scope": "Namespaced"}],
    }
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "llm-injector"}},
        "spec": {
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "matchConstraints": match_resources,
            "matchConditions": [
                {"name": "asks-for-this-model",
                 "expression": f"has(object.metadata.annotations) && object.metadata.annotations[?{s(MODEL_ANN)}] == optional.of({s(MODEL)})"},
                {"name": "not-injected-yet",
                 "expression": f"!has(object.metadata.annotations) || !({s(STATUS)} in object.metadata.annotations)"},
            ],
            "variables": [{"name": n, "expression": e} for n, e in variables],
            "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": e}}
                          for e in (["\n+ ".join(f"({e})" for e in mutations.values())] if single else mutations.values())],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "llm-injector"}},
        "spec": {"policyName": name, "matchResources": match_resources},
    }

    class D(yaml.SafeDumper):
        pass
    def text(dumper, data):
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)
    D.add_representer(str, text)
    print(f"# Generated by gen.py --style {STYLE}{' --single' if single else ''} from the output of `llm-injector inject` for\n"
          f"# LLMModel {MODEL} (LLMEngine inline-cpu) in namespace {NS}. Prototype for issue 19.")
    print(yaml.dump_all([policy, binding], Dumper=D, sort_keys=False, width=100000, allow_unicode=True), end="")


main()
