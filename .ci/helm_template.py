#!/usr/bin/env python3
"""`helm template` for CI, with the real Helm library and no helm binary.

    python3 .ci/helm_template.py CHART [--set k=v]... [--values FILE]...
        [--release NAME] [--namespace NS] [--include-crds] [--kube-version V] [-o FILE]

Renders the chart offline (no cluster: `lookup` returns nothing, as under
`helm template`) through helm-python-sdk, the PyPI wheel that ships Helm v4 as
libhelm_c.so; .ci/run unpacks it into .ci/.tools/. The values are validated
against values.schema.json first, as on `helm install`. Prints the manifests as
one multi-document YAML stream (NOTES.txt and empty documents left out), or the
schema/template error with its text and exits 1.

helm-sdkpy (used by helm_lint.py) has no render function, and its lint results
lose their message texts; this library has both, so CI uses it to render the
chart for kubernetes-validate and to show why a chart fails. The two libraries
each embed a Go runtime, so they are never loaded into the same process.
--set/--values follow helm_lint.py (the same code).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from helm_lint import add_value_args, overrides

HERE = Path(__file__).resolve().parent
DEFAULT_SDK = HERE / ".tools/helm-python-sdk"


def documents(text: str, path: str) -> list[str]:
    """The non-empty YAML documents of one rendered template."""
    import yaml

    docs, current = [], []
    for line in text.splitlines():
        if line.rstrip() == "---":
            docs.append("\n".join(current))
            current = []
        else:
            current.append(line)
    docs.append("\n".join(current))
    try:
        return [d.strip("\n") + "\n" for d in docs if yaml.safe_load(d) is not None]
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML after rendering: {e}") from e


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_value_args(parser)
    parser.add_argument("--release", default="llm-injector", help="release name (default llm-injector)")
    parser.add_argument("--namespace", "-n", default="llm-system", help="release namespace (default llm-system)")
    parser.add_argument("--include-crds", action="store_true", help="also print the chart's crds/")
    parser.add_argument("--kube-version", help="the cluster's Kubernetes version (.Capabilities.KubeVersion)")
    parser.add_argument("--output", "-o", help="write here instead of stdout")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(os.environ.get("HELM_PYTHON_SDK", DEFAULT_SDK))))
    try:
        from helm_python import Chart, HelmError, helm_sdk_version
    except ImportError as e:
        print(f"helm_template: cannot import helm_python ({e}); .ci/run unpacks the "
              f"helm-python-sdk wheel into {DEFAULT_SDK} (or set HELM_PYTHON_SDK)", file=sys.stderr)
        return 2
    try:
        user_values = overrides(args)
    except (ValueError, OSError) as e:
        print(f"helm_template: {e}", file=sys.stderr)
        return 2

    out: list[str] = []
    try:
        with Chart.load(args.chart) as chart:
            if args.include_crds:
                for crd in sorted(chart.crds, key=lambda c: c["filename"]):
                    out += [f"# Source: {crd['filename']}\n{d}" for d in documents(crd["data"], crd["filename"])]
            if args.kube_version:
                # Chart.render has no parameter for it; the library's render
                # options do (helm_render's "kube_version").
                import json
                from helm_python import _native
                rendered = json.loads(_native.call_string(
                    "helm_render", chart._raw(), json.dumps(user_values),
                    json.dumps({"name": args.release, "namespace": args.namespace,
                                "is_install": True, "kube_version": args.kube_version})))
            else:
                rendered = chart.render(values=user_values, name=args.release,
                                        namespace=args.namespace, is_install=True)
        for path in sorted(rendered):
            if not path.endswith("NOTES.txt"):
                out += [f"# Source: {path}\n{d}" for d in documents(rendered[path], path)]
    except (HelmError, ValueError) as e:
        print(f"helm template {args.chart} (Helm {helm_sdk_version()}): {e}", file=sys.stderr)
        return 1
    if not out:
        print(f"helm_template: {args.chart} rendered no manifest", file=sys.stderr)
        return 1
    text = "---\n" + "---\n".join(out)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
