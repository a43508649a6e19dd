#!/usr/bin/env python3
"""Compares what a real kube-apiserver made of an injected pod with what
`llm-injector inject` prints for the same pod.

For each NAME given, OUT_DIR holds NAME.before.json (the pod as the apiserver
sent it to the webhooks, before llm-injector) and NAME.after.json (the pod
after llm-injector's patch, as the apiserver decoded and defaulted it).
`llm-injector inject` is run on NAME.before.json and its output compared with
NAME.after.json field by field. Every difference is put in one of three
classes:

- dropped: the field is in inject's pod but not in the apiserver's, and it is
  one the apiserver's API version does not have (listed in UNKNOWN_TO_SERVER
  for the version under trial);
- defaulted: the field is only in the apiserver's pod (the apiserver fills
  defaults into the containers a webhook adds, as into the user's own);
- wrong: anything else (a value that differs, or a field that vanished
  without reason). The trial fails if there is one.

Usage: compare.py LLM_INJECTOR CATALOG OUT_DIR SERVER_MINOR NAME...
"""

import json
import re
import subprocess
import sys

import yaml

# Pod fields newer than the apiserver under trial, by the minor version that
# added them: the apiserver decodes a patched pod into its own types, which
# drops them without an error.
FIELDS_ADDED_IN = [
    (28, r"^spec\.initContainers\[\d+\]\.restartPolicy$"),
    (26, r"^spec\.resourceClaims(\[\d+\].*)?$"),
    (26, r"^spec\.(initContainers|containers)\[\d+\]\.resources\.claims(\[\d+\].*)?$"),
]


class JsonLikeLoader(yaml.SafeLoader):
    """YAML as the apiserver reads it: timestamps stay strings."""


JsonLikeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def flatten(value, path=""):
    """Maps every leaf of a JSON value to its path (a.b[0].c)."""
    leaves = {}
    if isinstance(value, dict):
        if not value and path:
            leaves[path] = value
        for key, item in value.items():
            leaves.update(flatten(item, f"{path}.{key}" if path else key))
    elif isinstance(value, list):
        if not value and path:
            leaves[path] = value
        for index, item in enumerate(value):
            leaves.update(flatten(item, f"{path}[{index}]"))
    else:
        leaves[path] = value
    return leaves


def unknown_to_server(path, server_minor):
    return any(
        minor > server_minor and re.match(pattern, path)
        for minor, pattern in FIELDS_ADDED_IN
    )


def compare(injector, catalog, out_dir, server_minor, name):
    before = f"{out_dir}/{name}.before.json"
    with open(f"{out_dir}/{name}.after.json", encoding="utf-8") as f:
        served = json.load(f)
    namespace = served["metadata"]["namespace"]
    printed = subprocess.run(
        [injector, "inject", "-f", before, "--catalog", catalog, "-n", namespace],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    expected = yaml.load(printed, Loader=JsonLikeLoader)
    want, got = flatten(expected), flatten(served)
    dropped, defaulted, wrong = [], [], []
    for path in sorted(set(want) | set(got)):
        if path in want and path in got:
            if want[path] != got[path]:
                wrong.append(f"{path}: inject prints {want[path]!r}, apiserver has {got[path]!r}")
        elif path in want:
            if unknown_to_server(path, server_minor):
                dropped.append(path)
            else:
                wrong.append(f"{path}: inject prints {want[path]!r}, apiserver dropped it")
        else:
            defaulted.append(f"{path} = {got[path]!r}")
    return dropped, defaulted, wrong


def main():
    injector, catalog, out_dir, server_minor, *names = sys.argv[1:]
    failures = 0
    for name in names:
        dropped, defaulted, wrong = compare(injector, catalog, out_dir, int(server_minor), name)
        verdict = "SAME" if not wrong else "DIFFERENT"
        print(f"{name}: {verdict} ({len(dropped)} dropped by the apiserver's older API, "
              f"{len(defaulted)} defaulted, {len(wrong)} wrong)")
        for line in dropped:
            print(f"    dropped   {line}")
        for line in defaulted:
            print(f"    defaulted {line}")
        for line in wrong:
            print(f"    WRONG     {line}")
        failures += bool(wrong)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
