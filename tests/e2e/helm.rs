//! The Helm chart rendered for each certs.mode (by .ci/helm_template.py,
//! Helm's own library) and sent to the apiserver with
//! `kubectl apply --dry-run=server`: every object is admitted as the
//! apiserver would install it. The release gets its own name and namespace,
//! so that its webhook configurations do not meet the suite's own.

use serde_json::json;

use crate::Suite;

/// The release name and namespace of the rendered chart.
const RELEASE: &str = "e2e-chart";

/// The cert-manager kinds the certManager mode renders. cert-manager is not
/// installed here, so its two CRDs are stood in for by CRDs of the same
/// names that accept any spec: the dry run checks our objects' shape up to
/// cert-manager's own schema.
fn cert_manager_stand_ins() -> Vec<serde_json::Value> {
    [("Certificate", "certificates"), ("Issuer", "issuers")]
        .into_iter()
        .map(|(kind, plural)| {
            json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": format!("{plural}.cert-manager.io")},
                "spec": {
                    "group": "cert-manager.io", "scope": "Namespaced",
                    "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
                },
            })
        })
        .collect()
}

/// Why the chart cannot be rendered here, if it cannot.
pub fn cannot_render(suite: &Suite) -> Option<&'static str> {
    let python = suite.root.join(".ci/.venv/bin/python");
    let sdk = suite.root.join(".ci/.tools/helm-python-sdk");
    (!python.exists() || !sdk.exists()).then_some(
        "Helm's library is not unpacked: bash .ci/run installs .ci/.venv and .ci/.tools once",
    )
}

/// The chart rendered by Helm's library as release `release` (in the
/// namespace of that name) with `args` (`--set ...`), into `file`.
pub fn render_file(
    suite: &Suite,
    release: &str,
    args: &[&str],
    file: &std::path::Path,
) -> Result<(), String> {
    let out = std::process::Command::new(suite.root.join(".ci/.venv/bin/python"))
        .current_dir(&suite.root)
        .arg(".ci/helm_template.py")
        .arg("charts/llm-injector")
        .args(["--release", release, "--namespace", release])
        .args(args)
        .arg("-o")
        .arg(file)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "helm_template.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The objects of a rendered file.
pub fn rendered(file: &std::path::Path) -> Result<Vec<serde_json::Value>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(serde_yaml::Deserializer::from_str(&text)
        .filter_map(|doc| serde::Deserialize::deserialize(doc).ok())
        .filter(|doc: &serde_json::Value| doc.is_object())
        .collect())
}

pub fn dry_run(suite: &mut Suite, ca_bundle_b64: &str) {
    if let Some(why) = cannot_render(suite) {
        suite
            .report
            .skip("Helm chart renderings applied with --dry-run=server", why);
        return;
    }
    for crd in cert_manager_stand_ins() {
        suite.kubectl.with_object(&["apply", "--server-side"], &crd);
    }
    suite.kubectl.run(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/certificates.cert-manager.io",
            "crd/issuers.cert-manager.io",
        ],
        None,
    );
    suite.kubectl.with_object(
        &["apply"],
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELEASE}}),
    );
    let existing = format!("certs.existing.caBundle={ca_bundle_b64}");
    let modes: [(&str, Vec<&str>); 6] = [
        ("managed (default)", vec![]),
        ("selfSigned", vec!["--set", "certs.mode=selfSigned"]),
        ("certManager", vec!["--set", "certs.mode=certManager"]),
        (
            "existing",
            vec![
                "--set",
                "certs.mode=existing",
                "--set",
                "certs.existing.secretName=my-tls",
                "--set",
                &existing,
            ],
        ),
        (
            "managed, with a NetworkPolicy and the namespace opt-in",
            vec![
                "--set",
                "networkPolicy.enabled=true",
                "--set",
                "webhook.namespaceOptIn=true",
            ],
        ),
        (
            "managed, on the host network",
            vec![
                "--set",
                "hostNetwork=true",
                "--set",
                "server.port=9443",
                "--set",
                "server.adminPort=9080",
            ],
        ),
    ];
    for (i, (mode, args)) in modes.into_iter().enumerate() {
        let file = suite.dir.join(format!("chart-{i}.yaml"));
        let result = render_file(suite, RELEASE, &args, &file).and_then(|()| {
            // The helm-test Pod names its ServiceAccount, which the
            // apiserver looks up even in a dry run: created for real first.
            for account in rendered(&file)?
                .iter()
                .filter(|doc| doc["kind"] == "ServiceAccount")
            {
                suite.kubectl.with_object(&["apply"], account);
            }
            let out = suite.kubectl.run(
                &[
                    "apply",
                    "--dry-run=server",
                    "-f",
                    file.to_str().expect("utf-8"),
                ],
                None,
            );
            if out.success {
                Ok(out.stdout)
            } else {
                Err(out.both())
            }
        });
        suite.report.check(
            &format!(
                "the Helm chart (certs.mode {mode}) is admitted by kubectl apply --dry-run=server"
            ),
            result,
        );
    }
}
