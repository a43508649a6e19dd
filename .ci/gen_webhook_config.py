#!/usr/bin/env python3
"""Writes webhook-config/ (plain manifests for kubectl) from the Helm chart.

    python3 .ci/gen_webhook_config.py           # rewrite webhook-config/*.yaml
    python3 .ci/gen_webhook_config.py --check   # exit 1 if they differ (CI)

The kubectl install is the chart rendered once with release llm-injector in
namespace llm-system and certs.mode=existing (Secret llm-injector-tls, which
the user creates), with Helm's own labels dropped, a Namespace added, and the
caBundle left as a placeholder the user replaces with `base64 -w0 ca.crt`.
So the two install paths cannot drift: CI runs --check.
Renders with helm-python-sdk, like helm_template.py.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHART = ROOT / "charts/llm-injector"
OUT = ROOT / "webhook-config"
RELEASE, NAMESPACE, SECRET = "llm-injector", "llm-system", "llm-injector-tls"

# Valid base64 (the API server decodes caBundle) of "CA_BUNDLE_PLACEHOLDER".
PLACEHOLDER = base64.b64encode(b"CA_BUNDLE_PLACEHOLDER").decode()
# What the chart is rendered with (it insists on a PEM certificate), then replaced.
RENDER_CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nrendered\n-----END CERTIFICATE-----\n").decode()
HELM_ONLY_LABELS = ("    helm.sh/chart: ", "    app.kubernetes.io/managed-by: ")

HEADER = f"""\
# Generated from charts/llm-injector by .ci/gen_webhook_config.py (release
# {RELEASE}, namespace {NAMESPACE}, certs.mode=existing): edit the chart and
# regenerate, do not edit by hand. Install: certs/README.md ("kubectl").

"""

NAMESPACE_YAML = f"""\
# The webhook's namespace. Never injected: the mutating webhook's
# namespaceSelector excludes it by name. Its pods meet the restricted Pod
# Security Standard, which the label enforces.
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
  labels:
    app.kubernetes.io/part-of: llm-injector
    pod-security.kubernetes.io/enforce: restricted
"""

CA_COMMENT = """\
      # PLACEHOLDER (base64 of "CA_BUNDLE_PLACEHOLDER"): replace it with the CA
      # that signed the Secret llm-injector-tls, e.g. after
      #   llm-injector certs --service llm-injector --namespace llm-system --out-dir tls
      # run: sed -i "s|^\\( *caBundle:\\).*|\\1 $(base64 -w0 tls/ca.crt)|" webhook-config/6*.yaml
      # Left as is, the API server cannot use it ("unable to parse bytes as PEM
      # block") and rejects annotated pods and LLMEngine/LLMModel changes.
"""

# rendered template -> output file; webhooks.yaml is split by kind below.
FILES = {
    "serviceaccount.yaml": "10-serviceaccount.yaml",
    "rbac.yaml": "20-rbac.yaml",
    "service.yaml": "30-service.yaml",
    "deployment.yaml": "40-deployment.yaml",
    "poddisruptionbudget.yaml": "50-poddisruptionbudget.yaml",
}
WEBHOOKS = {
    "MutatingWebhookConfiguration": "60-mutating-webhook.yaml",
    "ValidatingWebhookConfiguration": "61-validating-webhook.yaml",
}


def clean(doc: str) -> str:
    lines = [line for line in doc.splitlines() if not line.startswith(HELM_ONLY_LABELS)]
    text = "\n".join(lines).strip("\n") + "\n"
    if RENDER_CA in text:
        text = text.replace(f"      caBundle: {RENDER_CA}\n",
                            CA_COMMENT + f"      caBundle: {PLACEHOLDER}\n")
        assert RENDER_CA not in text, "caBundle at an unexpected place"
    return text


def split(text: str) -> list[str]:
    docs, cur = [], []
    for line in text.splitlines():
        if line.rstrip() == "---":
            docs.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    docs.append("\n".join(cur))
    return [d for d in docs if any(l.strip() and not l.lstrip().startswith("#") for l in d.splitlines())]


def generate() -> dict[str, str]:
    sys.path.insert(0, str(Path(os.environ.get("HELM_PYTHON_SDK", HERE / ".tools/helm-python-sdk"))))
    from helm_python import Chart

    values = {"certs": {"mode": "existing", "existing": {"secretName": SECRET, "caBundle": RENDER_CA}}}
    with Chart.load(str(CHART)) as chart:
        rendered = chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    out = {"00-namespace.yaml": HEADER + NAMESPACE_YAML}
    for template, target in FILES.items():
        docs = split(rendered[f"llm-injector/templates/{template}"])
        out[target] = HEADER + "---\n".join(clean(d) for d in docs)
    for doc in split(rendered["llm-injector/templates/webhooks.yaml"]):
        kind = next(l.split(":", 1)[1].strip() for l in doc.splitlines() if l.startswith("kind:"))
        out[WEBHOOKS[kind]] = HEADER + clean(doc)
    assert set(WEBHOOKS.values()) <= set(out), "a webhook configuration is missing"
    return out


def main() -> int:
    check = "--check" in sys.argv[1:]
    files = generate()
    existing = {p.name for p in OUT.glob("*.yaml")}
    stale = sorted(name for name, text in files.items()
                   if not (OUT / name).is_file() or (OUT / name).read_text() != text)
    extra = sorted(existing - set(files))
    if check:
        for name in stale:
            print(f"webhook-config/{name} differs from the chart: run python3 .ci/gen_webhook_config.py")
        for name in extra:
            print(f"webhook-config/{name} is not generated from the chart: remove it")
        if not stale and not extra:
            print(f"webhook-config/ matches the chart ({len(files)} files)")
        return 1 if stale or extra else 0
    OUT.mkdir(exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text)
    for name in extra:
        (OUT / name).unlink()
    print(f"wrote {len(files)} files to webhook-config/" + (f", removed {extra}" if extra else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
