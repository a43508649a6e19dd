#!/usr/bin/env python3
"""A recording admission webhook for the kube-apiserver trial.

Registered by the trial twice around llm-injector: as the mutating webhook
configuration `aa-trial-record` (called before `llm-injector`, as the
apiserver orders configurations by name) at path /before, and as
`zz-trial-record` (called after it) at path /after. It writes each pod it is
sent to OUT_DIR/<name>.<before|after>.json, exactly as the apiserver sent it.
/before allows the pod unchanged; /after adds the label
trial.llm.injector.dev/recorded, a change made after llm-injector, so the
apiserver calls llm-injector again (its reinvocationPolicy is IfNeeded): an
idempotent webhook answers that second call without a patch.

Usage: recorder.py ADDR PORT CERT KEY OUT_DIR
"""

import base64
import json
import os
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Recorder(BaseHTTPRequestHandler):
    out_dir = "."

    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length", "0"))
        review = json.loads(self.rfile.read(length))
        request = review["request"]
        stage = self.path.split("?", 1)[0].strip("/")
        pod = request.get("object") or {}
        name = pod.get("metadata", {}).get("name") or request.get("name") or "unnamed"
        if stage in ("before", "after"):
            path = os.path.join(self.out_dir, f"{name}.{stage}.json")
            with open(path, "w", encoding="utf-8") as out:
                json.dump(pod, out, indent=2, sort_keys=True)
        response = {"uid": request["uid"], "allowed": True}
        if stage == "after":
            if pod.get("metadata", {}).get("labels"):
                patch = [{"op": "add", "path": "/metadata/labels/trial.llm.injector.dev~1recorded",
                          "value": "true"}]
            else:
                patch = [{"op": "add", "path": "/metadata/labels",
                          "value": {"trial.llm.injector.dev/recorded": "true"}}]
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        answer = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 (http.server's name)
        sys.stderr.write("recorder: " + (format % args) + "\n")


def main():
    addr, port, cert, key, out_dir = sys.argv[1:6]
    Recorder.out_dir = out_dir
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer((addr, int(port)), Recorder)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"recorder: listening on https://{addr}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
