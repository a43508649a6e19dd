//! `llm-injector policies`: the admission policies that inject the models
//! of YAML files without the webhook (Kubernetes 1.36+), printed as YAML to
//! apply with kubectl or keep in Git; what `serve --injection-mode policy`
//! keeps in the cluster.

use std::path::PathBuf;

use clap::Args;

use llm_injector::Catalog;
use llm_injector::policy::{ModelState, PolicyOptions, policy_set};

#[derive(Args, Debug)]
pub struct PoliciesArgs {
    /// YAML holding LLMEngines and LLMModels (other kinds are skipped): a
    /// file, a directory of *.yaml/*.yml, or `-` for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true, value_name = "PATH")]
    files: Vec<PathBuf>,
    /// Namespace of objects that name none (as `kubectl apply -n`).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Image of the llm-router sidecar added when parallelism.data > 1.
    #[arg(long, env = "LLM_INJECTOR_ROUTER_IMAGE", default_value = llm_injector::inject::DEFAULT_ROUTER_IMAGE)]
    router_image: String,
    /// A namespace whose pods are never injected (the chart's
    /// webhook.excludeNamespaces and release namespace). Repeatable.
    #[arg(long = "exclude-namespace", value_name = "NAMESPACE")]
    exclude_namespaces: Vec<String>,
    /// Inject only in namespaces labelled llm.injector.dev/injection=enabled
    /// (the chart's webhook.namespaceOptIn); otherwise every namespace not
    /// labelled =disabled.
    #[arg(long)]
    namespace_opt_in: bool,
}

/// The YAML of every policy (a model's policies, then the cluster's); a
/// model injection refuses gets none, and a warning saying why.
pub fn run(args: &PoliciesArgs) -> Result<String, Vec<String>> {
    let (files, errors) = crate::read_input_files(&args.files)?;
    if !errors.is_empty() {
        return Err(errors);
    }
    let documents: Vec<_> = files
        .iter()
        .flat_map(llm_injector::yaml::SourceFile::source_documents)
        .collect();
    let mut catalog = Catalog::new();
    catalog
        .add_objects_among(&documents, &args.namespace)
        .map_err(|e| vec![e.to_string()])?;
    let options = PolicyOptions::namespaces(&args.exclude_namespaces, args.namespace_opt_in);
    let inject_options = llm_injector::InjectOptions {
        router_image: args.router_image.clone(),
    };
    let models = catalog
        .models()
        .map(|(namespace, model)| (namespace, &**model));
    let set = policy_set(models, &catalog, &inject_options, &options);
    for ((namespace, name), state) in &set.states {
        if let ModelState::Refused(error) = state {
            eprintln!(
                "warning: LLMModel {namespace}/{name} gets no policy, and its pods are refused: {error}"
            );
        }
    }
    Ok(set
        .objects()
        .map(|object| format!("---\n{}", llm_injector::yaml::to_yaml(object)))
        .collect())
}
