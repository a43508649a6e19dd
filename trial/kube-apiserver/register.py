#!/usr/bin/env python3
"""Prints the webhook configurations for the kube-apiserver trial.

llm-injector's own two configurations come from webhook-config/ unchanged
except for `clientConfig`: a URL instead of the in-cluster Service, and the
CA that `llm-injector serve` wrote. Two recording webhooks (recorder.py) are
added around the mutating one: `aa-trial-record` before it and
`zz-trial-record` after it (the apiserver calls configurations in name
order), with the same rules.

Usage: register.py WEBHOOK_CONFIG_DIR WEBHOOK_URL CA_FILE RECORDER_URL RECORDER_CERT
"""

import base64
import copy
import glob
import sys

import yaml


def bundle(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def main():
    config_dir, webhook_url, ca_file, recorder_url, recorder_cert = sys.argv[1:6]
    webhook_ca, recorder_ca = bundle(ca_file), bundle(recorder_cert)
    documents = []
    for path in sorted(glob.glob(f"{config_dir}/6*-webhook.yaml")):
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
        for webhook in config["webhooks"]:
            route = webhook["clientConfig"]["service"]["path"]
            webhook["clientConfig"] = {"url": webhook_url + route, "caBundle": webhook_ca}
        documents.append(config)
        if config["kind"] != "MutatingWebhookConfiguration":
            continue
        for name, stage in (("aa-trial-record", "before"), ("zz-trial-record", "after")):
            recorder = copy.deepcopy(config)
            recorder["metadata"] = {"name": name}
            hook = recorder["webhooks"][0]
            hook["name"] = f"record-{stage}.trial.llm.injector.dev"
            hook["clientConfig"] = {"url": f"{recorder_url}/{stage}", "caBundle": recorder_ca}
            hook["reinvocationPolicy"] = "Never"
            hook.pop("matchConditions", None)
            documents.append(recorder)
    print(yaml.safe_dump_all(documents, sort_keys=False), end="")


if __name__ == "__main__":
    main()
