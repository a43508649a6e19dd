//! The `llm-injector` command line: a thin layer over the library.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use llm_injector::Catalog;
use llm_injector::nodes::NodeGpus;

mod certs_cli;
mod check_webhook_cli;
mod cli_common;
mod estimate_cli;
mod explain_live;
mod policies_cli;
mod probe_cli;
mod route_cli;
mod serve_cli;

/// Injection is allocation-bound; mimalloc halves its cost next to glibc malloc
/// (see `cargo bench --bench inject`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use llm_injector::manifest::{
    SourceDocument, SourceFile, append_stream, explain_documents, inject_documents, yaml_files,
};

/// Turns annotated pods into LLM-serving pods: CRDs, offline injection and
/// (in a cluster) the admission webhook.
#[derive(Parser, Debug)]
#[command(name = "llm-injector", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the LLMEngine and LLMModel CRDs as multi-document YAML.
    Crd,
    /// Inject every annotated pod and pod template of Kubernetes YAML and print
    /// the result (like `istioctl kube-inject`).
    Inject(InjectArgs),
    /// Run the admission webhook: HTTPS `/mutate`, plain-HTTP admin
    /// `/livez`, `/readyz`, `/metrics`. Every flag also reads LLM_INJECTOR_<FLAG>.
    Serve(Box<serve_cli::ServeArgs>),
    /// Write a development CA and a serving certificate for the webhook Service
    /// (for installs with plain manifests).
    Certs(certs_cli::CertsArgs),
    /// Check that the apiserver reaches the webhook: a dry-run pod asking for
    /// a model that cannot exist must be refused by it (`helm test` runs
    /// this). Exit 1 otherwise, saying why.
    CheckWebhook(check_webhook_cli::CheckWebhookArgs),
    /// GET a loopback http:// URL and exit 0 on a 2xx answer: the exec probe
    /// of the llm-router sidecar, whose image has no shell or curl.
    Probe(probe_cli::ProbeArgs),
    /// Run the data-parallel request router: one HTTP endpoint in front of
    /// several Ollama instances. Every flag also reads LLM_ROUTER_<FLAG>.
    Route(Box<route_cli::RouteArgs>),
    /// Check LLMEngines, LLMModels and the pods that ask for injection with
    /// the validating webhook's rules, offline (for CI and GitOps). Exit 1 on
    /// any error.
    Validate(ValidateArgs),
    /// Print what one engine instance of an Ollama library model needs in
    /// GPU memory (Ollama 0.12.6's own estimate) and the GPU sizes it fits.
    Estimate(estimate_cli::EstimateArgs),
    /// Remove from every injected pod and workload of Kubernetes YAML exactly
    /// what its llm.injector.dev/status annotation says injection added
    /// (like `linkerd uninject`); the rest stays as written.
    Uninject(UninjectArgs),
    /// Explain, for every pod and workload of Kubernetes YAML, whether it is
    /// injected, with which model and engine, what injection adds, or which
    /// rule stops it (like `istioctl x check-inject`); or of pods in the
    /// cluster (`explain pod/NAME`). Exit 1 when one is refused.
    Explain(ExplainArgs),
    /// Print the admission policies (Kubernetes 1.36+) that inject the
    /// LLMModels of YAML files without the webhook: per namespace a
    /// MutatingAdmissionPolicy and a warning ValidatingAdmissionPolicy with
    /// their bindings, and one ValidatingAdmissionPolicy refusing the pods
    /// the webhook would refuse.
    Policies(policies_cli::PoliciesArgs),
}

#[derive(clap::Args, Debug)]
struct ExplainArgs {
    /// Pods to read from the cluster (current kubeconfig context):
    /// `pod/NAME` or `NAME`; their namespace's LLMEngines and LLMModels are
    /// the catalog unless --catalog is given.
    #[arg(value_name = "POD", required_unless_present = "files")]
    pods: Vec<String>,
    /// Kubernetes YAML to explain: a file, a directory of *.yaml/*.yml, or `-` for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// LLMEngine and LLMModel objects: a YAML file or a directory of them.
    /// Repeatable; those among the `-f` inputs count too.
    #[arg(long, value_name = "PATH")]
    catalog: Vec<PathBuf>,
    /// Namespace of objects that name none, and of the pods read
    /// [default: `default` for files; the context's for pods].
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Image of the llm-router sidecar added when parallelism.data > 1.
    #[arg(long, env = "LLM_INJECTOR_ROUTER_IMAGE", default_value = llm_injector::inject::DEFAULT_ROUTER_IMAGE)]
    router_image: String,
}

#[derive(clap::Args, Debug)]
struct UninjectArgs {
    /// Kubernetes YAML to uninject: a file, a directory of *.yaml/*.yml, or `-` for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Namespace of objects that name none, for messages.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
}

#[derive(clap::Args, Debug)]
struct InjectArgs {
    /// Kubernetes YAML to inject: a file, a directory of *.yaml/*.yml, or `-` for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// LLMEngine and LLMModel objects: a YAML file or a directory of them.
    /// Repeatable; those among the `-f` inputs count too (and replace the
    /// catalog's of the same name).
    #[arg(long, value_name = "PATH")]
    catalog: Vec<PathBuf>,
    /// Namespace of objects that name none (as `kubectl apply -n`).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Image of the llm-router sidecar added when parallelism.data > 1.
    #[arg(long, env = "LLM_INJECTOR_ROUTER_IMAGE", default_value = llm_injector::inject::DEFAULT_ROUTER_IMAGE)]
    router_image: String,
}

#[derive(clap::Args, Debug)]
struct ValidateArgs {
    /// Kubernetes YAML to check: a file, a directory of *.yaml/*.yml, or `-` for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// LLMEngine and LLMModel objects that already exist (references resolve
    /// against these plus the objects of the files). Repeatable.
    #[arg(long, value_name = "PATH")]
    catalog: Vec<PathBuf>,
    /// Namespace of objects that name none (as `kubectl apply -n`).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// The cluster's Nodes (`kubectl get nodes -o yaml`): warn when no Node
    /// has the GPUs a model's pods ask for (count, resource, memory).
    /// Repeatable.
    #[arg(long, value_name = "FILE")]
    nodes: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => write_stdout(&llm_injector::crd::crd_manifests()),
        Command::Inject(args) => run_inject(&args),
        Command::Explain(args) => run_explain(&args),
        Command::Serve(args) => serve_cli::run(*args).map_err(|e| vec![e]),
        Command::Certs(args) => certs_cli::run(&args).map_err(|e| vec![e]),
        Command::Uninject(args) => run_uninject(&args),
        Command::CheckWebhook(args) => check_webhook_cli::run(&args).map_err(|e| vec![e]),
        Command::Probe(args) => probe_cli::run(&args).map_err(|e| vec![e]),
        Command::Route(args) => route_cli::run(*args).map_err(|e| vec![e]),
        Command::Validate(args) => run_validate(&args),
        Command::Policies(args) => policies_cli::run(&args).and_then(|yaml| write_stdout(&yaml)),
        Command::Estimate(args) => estimate_cli::run(&args)
            .map_err(|e| vec![e])
            .and_then(|table| write_stdout(&table)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(errors) => {
            for error in errors {
                eprintln!("error: {error}");
            }
            ExitCode::FAILURE
        }
    }
}

fn write_stdout(text: &str) -> Result<(), Vec<String>> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| vec![format!("cannot write to stdout: {e}")])
}

/// The inputs of `inject` and `explain`: the files, their documents, the
/// catalog (with the LLMEngines and LLMModels among the inputs: they count
/// too, and print unchanged, as with `validate`), the injector, and the
/// errors of inputs that could not be read.
struct Inputs {
    files: Vec<SourceFile>,
    documents: Vec<SourceDocument>,
    catalog: Catalog,
    injector: llm_injector::Injector,
    errors: Vec<String>,
}

fn read_injection_inputs(args: &InjectArgs) -> Result<Inputs, Vec<String>> {
    let mut catalog =
        Catalog::load_all(&args.catalog, &args.namespace).map_err(|e| vec![e.to_string()])?;
    let (files, errors) = read_input_files(&args.files)?;
    let documents: Vec<_> = files
        .iter()
        .flat_map(SourceFile::source_documents)
        .collect();
    catalog
        .add_objects_among(&documents, &args.namespace)
        .map_err(|e| vec![e.to_string()])?;
    let injector = llm_injector::Injector::new(llm_injector::InjectOptions {
        router_image: args.router_image.clone(),
    });
    Ok(Inputs {
        files,
        documents,
        catalog,
        injector,
        errors,
    })
}

/// Explains every input document, or pod read from the cluster; exit 1
/// when one is refused (or an input could not be read).
fn run_explain(args: &ExplainArgs) -> Result<(), Vec<String>> {
    if !args.pods.is_empty() && !args.files.is_empty() {
        return Err(vec![
            "explain either pods from the cluster or -f files, not both in one run".to_owned(),
        ]);
    }
    let inputs = if args.pods.is_empty() {
        read_injection_inputs(&InjectArgs {
            files: args.files.clone(),
            catalog: args.catalog.clone(),
            namespace: args
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
            router_image: args.router_image.clone(),
        })?
    } else {
        let (files, cluster_catalog, namespace) = explain_live::read(
            &args.pods,
            args.namespace.as_deref(),
            args.catalog.is_empty(),
        )?;
        let catalog = match cluster_catalog {
            Some(catalog) => catalog,
            None => {
                Catalog::load_all(&args.catalog, &namespace).map_err(|e| vec![e.to_string()])?
            }
        };
        Inputs {
            documents: files
                .iter()
                .flat_map(SourceFile::source_documents)
                .collect(),
            files,
            catalog,
            injector: llm_injector::Injector::new(llm_injector::InjectOptions {
                router_image: args.router_image.clone(),
            }),
            errors: Vec::new(),
        }
    };
    let namespace = args.namespace.as_deref().unwrap_or("default");
    let text = explain_documents(
        &inputs.documents,
        namespace,
        &inputs.catalog,
        &inputs.injector,
    );
    write_stdout(&text)?;
    let refused = text.lines().filter(|l| l.ends_with(": refused")).count();
    let mut errors = inputs.errors;
    if refused > 0 {
        errors.push(format!("{refused} object(s) refused (above)"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Reads every input, injects, and prints only when nothing failed.
fn run_inject(args: &InjectArgs) -> Result<(), Vec<String>> {
    let Inputs {
        files,
        documents,
        catalog,
        injector,
        mut errors,
    } = read_injection_inputs(args)?;
    let injection = inject_documents(documents, &args.namespace, &catalog, &injector);
    for warning in &injection.warnings {
        eprintln!("warning: {warning}");
    }
    errors.extend(injection.errors.iter().map(ToString::to_string));
    if !errors.is_empty() {
        return Err(errors);
    }
    write_stdout(&render_files(&files, injection.documents))
}

/// Uninjects every input document and prints the result, as written; exit
/// 1 (printing nothing) when one cannot be uninjected.
fn run_uninject(args: &UninjectArgs) -> Result<(), Vec<String>> {
    let (files, mut errors) = read_input_files(&args.files)?;
    let documents: Vec<_> = files
        .iter()
        .flat_map(SourceFile::source_documents)
        .collect();
    let uninjection = llm_injector::manifest::uninject_documents(&documents, &args.namespace);
    errors.extend(uninjection.errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    write_stdout(&render_files(&files, uninjection.documents))
}

/// `values` (one per non-empty document, in order) written back into their
/// files as written, one stream.
fn render_files(files: &[SourceFile], values: Vec<serde_json::Value>) -> String {
    let mut values = values.into_iter();
    let mut out = String::new();
    for file in files {
        let count = file
            .documents
            .iter()
            .filter(|d| !d.root.value.is_null())
            .count();
        append_stream(
            &mut out,
            &file.render(values.by_ref().take(count).collect()),
        );
    }
    out
}

/// Checks every input and prints findings on stderr and a summary on stdout;
/// fails (exit 1) when any finding is an error.
fn run_validate(args: &ValidateArgs) -> Result<(), Vec<String>> {
    let catalog =
        Catalog::load_all(&args.catalog, &args.namespace).map_err(|e| vec![e.to_string()])?;
    let (documents, unreadable) = read_input_documents(&args.files)?;
    let nodes = read_nodes(&args.nodes)?;
    let mut report = llm_injector::manifest::validate_documents_on(
        &documents,
        &args.namespace,
        &catalog,
        &nodes,
    );
    for error in unreadable {
        report.add_error(error);
    }
    for finding in &report.findings {
        eprintln!("{finding}");
    }
    write_stdout(&format!("{}\n", report.summary()))?;
    if report.errors() > 0 {
        return Err(Vec::new());
    }
    Ok(())
}

/// The GPUs of the Nodes in `paths` (`kind: Node` documents, also inside a
/// `kind: List`); anything else there is an error.
fn read_nodes(paths: &[PathBuf]) -> Result<Vec<NodeGpus>, Vec<String>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let (documents, mut errors) = read_input_documents(paths)?;
    let mut nodes = Vec::new();
    for document in llm_injector::manifest::flatten_lists(&documents) {
        if document.value.get("kind").and_then(|k| k.as_str()) != Some("Node") {
            errors.push(format!(
                "{}: --nodes takes Node objects (`kubectl get nodes -o yaml`), not this document",
                document.origin()
            ));
            continue;
        }
        match serde_json::from_value(document.value.clone()) {
            Ok(node) => nodes.push(NodeGpus::of(&node)),
            Err(e) => errors.push(format!("{}: not a Node: {e}", document.origin())),
        }
    }
    if errors.is_empty() {
        Ok(nodes)
    } else {
        Err(errors)
    }
}

/// The documents of every `-f` argument, and the errors of those that are not
/// YAML (reading goes on past them, so one run reports all).
fn read_input_documents(
    paths: &[PathBuf],
) -> Result<(Vec<SourceDocument>, Vec<String>), Vec<String>> {
    let (files, errors) = read_input_files(paths)?;
    let documents = files
        .iter()
        .flat_map(SourceFile::source_documents)
        .collect();
    Ok((documents, errors))
}

/// Every `-f` argument read as a YAML stream, and the errors of those that
/// are not YAML.
pub(crate) fn read_input_files(
    paths: &[PathBuf],
) -> Result<(Vec<SourceFile>, Vec<String>), Vec<String>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for (name, text) in read_inputs(paths)? {
        match SourceFile::read(&name, &text) {
            Ok(file) => files.push(file),
            Err(e) => errors.push(e.to_string()),
        }
    }
    Ok((files, errors))
}

/// The text of every `-f` argument, files of directories expanded, stdin read once.
fn read_inputs(paths: &[PathBuf]) -> Result<Vec<(String, String)>, Vec<String>> {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => inputs.push(("<stdin>".to_owned(), text)),
                Err(e) => errors.push(format!("<stdin>: cannot read: {e}")),
            }
            continue;
        }
        let files = match yaml_files(path) {
            Ok(files) if files.is_empty() => {
                errors.push(format!(
                    "{}: no *.yaml or *.yml files in this directory",
                    path.display()
                ));
                continue;
            }
            Ok(files) => files,
            Err(e) => {
                errors.push(format!("{}: cannot read: {e}", path.display()));
                continue;
            }
        };
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => inputs.push((file.display().to_string(), text)),
                Err(e) => errors.push(format!("{}: cannot read: {e}", file.display())),
            }
        }
    }
    if errors.is_empty() {
        Ok(inputs)
    } else {
        Err(errors)
    }
}
