#!/usr/bin/env python3
"""Checks that certs.mode=selfSigned keeps its certificate across upgrades.

    python3 .ci/helm_lookup_test.py CHART

The chart's `lookup` of the TLS Secret only does something against a cluster,
so this starts a minimal fake API server on 127.0.0.1 (API discovery for v1
and GET of that one Secret, nothing else) and renders the chart through Helm's
cluster-aware render (helm-python-sdk Config.render: `lookup` queries the API
server, nothing is created). Checks, with release llm-injector in llm-system:
  1. no Secret yet: a CA and a serving certificate are generated, and the
     webhooks' caBundle is the Secret's ca.crt;
  2. that Secret exists: the same tls.crt/tls.key/ca.crt are rendered again
     (an upgrade keeps them), caBundle unchanged;
  3. a Secret without ca.crt (e.g. made by hand): a new pair is generated.
Prints one line per check and "N passed, N failed"; exits 1 on a failure.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RELEASE, NAMESPACE = "llm-injector", "llm-system"
SECRET_PATH = f"/api/v1/namespaces/{NAMESPACE}/secrets/{RELEASE}-tls"

# The Secret the fake API server returns (None: 404), and every path asked for.
state: dict = {"secret": None, "requests": []}


class FakeApiServer(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def send_json(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?")[0]
        state["requests"].append(path)
        if path == "/api/v1":
            self.send_json(200, {
                "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
                "resources": [{"name": "secrets", "singularName": "secret", "namespaced": True,
                               "kind": "Secret", "verbs": ["get", "list", "watch"]}],
            })
        elif path == "/api":
            self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                 "serverAddressByClientCIDRs": []})
        elif path == "/apis":
            self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        elif path == "/version":
            self.send_json(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0"})
        elif path == SECRET_PATH and state["secret"] is not None:
            self.send_json(200, state["secret"])
        else:
            self.send_json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "reason": "NotFound", "code": 404, "message": f"{path} not found"})


def render(config, chart) -> tuple[dict, str]:
    """The rendered Secret's data and the MutatingWebhookConfiguration's caBundle."""
    manifests = config.render(
        chart, values={"certs": {"mode": "selfSigned"}}, name=RELEASE, namespace=NAMESPACE, is_upgrade=True
    )
    docs = [d for d in yaml.safe_load_all(manifests[f"{chart.name}/templates/webhooks.yaml"]) if d]
    secret = next(d for d in docs if d["kind"] == "Secret")
    webhooks = [d for d in docs if d["kind"].endswith("WebhookConfiguration")]
    bundles = {w["clientConfig"]["caBundle"] for d in webhooks for w in d["webhooks"]}
    assert len(webhooks) == 2 and len(bundles) == 1, f"caBundles differ: {bundles}"
    return secret["data"], bundles.pop()


def main() -> int:
    chart_dir = sys.argv[1] if len(sys.argv) > 1 else "charts/llm-injector"
    sys.path.insert(0, str(Path(os.environ.get("HELM_PYTHON_SDK", HERE / ".tools/helm-python-sdk"))))
    from helm_python import Chart, Config

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    passed, failed = 0, 0

    def check(name: str, ok: bool, detail: str = "") -> None:
        nonlocal passed, failed
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + detail}")

    try:
        with Chart.load(chart_dir) as chart, Config(
            kube_apiserver=f"http://127.0.0.1:{server.server_address[1]}",
            namespace=NAMESPACE, qps=1000, burst_limit=1000,
        ) as config:
            first, bundle1 = render(config, chart)
            check("no Secret: the Secret has tls.crt, tls.key and ca.crt",
                  all(first.get(k) for k in ("tls.crt", "tls.key", "ca.crt")), str(first.keys()))
            check("no Secret: caBundle is the Secret's ca.crt", bundle1 == first["ca.crt"])
            check("the chart looked the Secret up in the API server", SECRET_PATH in state["requests"],
                  f"requests: {state['requests']}")

            state["secret"] = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                               "metadata": {"name": f"{RELEASE}-tls", "namespace": NAMESPACE},
                               "data": first}
            again, bundle2 = render(config, chart)
            check("existing Secret: tls.crt, tls.key and ca.crt are kept", again == first,
                  "a new certificate was generated")
            check("existing Secret: caBundle is unchanged", bundle2 == bundle1)

            state["secret"]["data"] = {"tls.crt": first["tls.crt"], "tls.key": first["tls.key"]}
            fresh, bundle3 = render(config, chart)
            check("Secret without ca.crt: a new pair is generated",
                  fresh.get("ca.crt") and fresh["tls.crt"] != first["tls.crt"] and bundle3 == fresh["ca.crt"])
            pem = base64.b64decode(fresh["ca.crt"]).decode()
            check("generated ca.crt is a PEM certificate", pem.startswith("-----BEGIN CERTIFICATE-----"))
    finally:
        server.shutdown()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
