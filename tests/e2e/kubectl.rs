//! kubectl, as users run it: the suite talks to the apiserver through the
//! kubectl built from the same k8s.io/kubernetes as the apiserver.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What one kubectl run printed.
#[derive(Debug)]
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// stdout if kubectl exited 0.
    pub fn ok(self) -> Option<String> {
        self.success.then_some(self.stdout)
    }

    /// stdout and stderr, for messages.
    pub fn both(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
            .trim_end()
            .to_string()
    }

    /// stdout parsed as JSON (`-o json`), or an error with everything kubectl
    /// said. `kubectl create -o json` prints one JSON object per created
    /// object, one after the other: several become a `kind: List`.
    pub fn json(self) -> Result<serde_json::Value, String> {
        if !self.success {
            return Err(self.both());
        }
        let mut objects = serde_json::Deserializer::from_str(&self.stdout)
            .into_iter::<serde_json::Value>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("kubectl printed no JSON ({e}): {}", self.both()))?;
        match objects.len() {
            0 => Err(format!("kubectl printed nothing: {}", self.both())),
            1 => Ok(objects.remove(0)),
            _ => Ok(serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects})),
        }
    }
}

#[derive(Clone)]
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn new(bin: PathBuf, kubeconfig: PathBuf) -> Self {
        Kubectl { bin, kubeconfig }
    }

    /// `kubectl delete -f path`, waiting for the objects (and, foreground,
    /// what they own) to be gone; absent ones are fine.
    pub fn delete_file(&self, path: &str) -> Outcome {
        self.run(
            &[
                "delete",
                "-f",
                path,
                "--cascade=foreground",
                "--wait=true",
                "--timeout=60s",
                "--ignore-not-found",
            ],
            None,
        )
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Outcome {
        let mut child = Command::new(&self.bin)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            // kubectl may exit before reading everything; its output says why.
            let _ = pipe.write_all(text.as_bytes());
        }
        let out = child.wait_with_output().expect("wait for kubectl");
        Outcome {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `kubectl ARGS -f -` with `object` (any serde value) on stdin, as JSON.
    pub fn with_object(&self, args: &[&str], object: &serde_json::Value) -> Outcome {
        let mut all = args.to_vec();
        all.extend(["-f", "-"]);
        self.run(&all, Some(&object.to_string()))
    }

    /// `kubectl get --raw PATH`.
    pub fn raw(&self, path: &str) -> Result<String, String> {
        let out = self.run(&["get", "--raw", path], None);
        if out.success {
            Ok(out.stdout)
        } else {
            Err(out.both())
        }
    }
}
