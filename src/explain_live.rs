//! `llm-injector explain pod/NAME`: pods read from the cluster (the current
//! kubeconfig context), with the LLMEngines and LLMModels of their namespace
//! as the catalog unless `--catalog` is given, explained as files are.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use llm_injector::Catalog;
use llm_injector::crd::{LLMEngine, LLMModel};
use llm_injector::manifest::SourceFile;

/// The pod name of `pod/NAME`, `pods/NAME` or `NAME`.
fn pod_name(object: &str) -> Result<&str, String> {
    let name = match object.split_once('/') {
        Some(("pod" | "pods" | "po", name)) => name,
        Some((kind, _)) => {
            return Err(format!(
                "{object:?}: only pods are explained from the cluster (pod/NAME), not {kind}; for a workload, explain its file (-f) or one of its pods"
            ));
        }
        None => object,
    };
    if name.is_empty() || name.contains('/') {
        return Err(format!("{object:?} is not pod/NAME"));
    }
    Ok(name)
}

/// The pods named by `objects` in `namespace` (the context's when `None`)
/// as one YAML stream each, and the catalog of that namespace when
/// `with_catalog`; also the namespace used.
pub fn read(
    objects: &[String],
    namespace: Option<&str>,
    with_catalog: bool,
) -> Result<(Vec<SourceFile>, Option<Catalog>, String), Vec<String>> {
    let names: Vec<&str> = objects
        .iter()
        .map(|o| pod_name(o))
        .collect::<Result<_, _>>()
        .map_err(|e| vec![e])?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| vec![format!("cannot start the async runtime: {e}")])?;
    runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| vec![format!("cannot connect to the Kubernetes API: {e}")])?;
        let namespace = namespace
            .map(str::to_owned)
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let mut files = Vec::new();
        let mut errors = Vec::new();
        for name in names {
            match pods.get(name).await {
                Ok(mut pod) => {
                    pod.metadata.managed_fields = None;
                    let origin = format!("pod/{name} (namespace {namespace})");
                    let text = serde_yaml::to_string(&pod).map_err(|e| vec![e.to_string()])?;
                    match SourceFile::read(&origin, &text) {
                        Ok(file) => files.push(file),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    errors.push(format!("pod {namespace}/{name} not found"));
                }
                Err(e) => errors.push(format!("cannot read pod {namespace}/{name}: {e}")),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let catalog = if with_catalog {
            let mut catalog = Catalog::new();
            let list = ListParams::default();
            let engines = Api::<LLMEngine>::namespaced(client.clone(), &namespace)
                .list(&list)
                .await
                .map_err(|e| vec![format!("cannot list LLMEngines in {namespace}: {e}")])?;
            let models = Api::<LLMModel>::namespaced(client, &namespace)
                .list(&list)
                .await
                .map_err(|e| vec![format!("cannot list LLMModels in {namespace}: {e}")])?;
            engines.into_iter().for_each(|e| catalog.insert_engine(e));
            models.into_iter().for_each(|m| catalog.insert_model(m));
            Some(catalog)
        } else {
            None
        };
        Ok((files, catalog, namespace))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_named_as_kubectl_names_them() {
        for (object, expected) in [
            ("pod/chat", Ok("chat")),
            ("pods/chat", Ok("chat")),
            ("chat", Ok("chat")),
            ("deployment/chat", Err("only pods")),
            ("pod/", Err("not pod/NAME")),
            ("pod/a/b", Err("not pod/NAME")),
        ] {
            match (pod_name(object), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(got), Err(want)) => assert!(got.contains(want), "{got}"),
                (got, want) => panic!("{object}: {got:?}, want {want:?}"),
            }
        }
    }
}
