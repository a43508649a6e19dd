//! Validation of Kubernetes YAML documents, for `llm-injector validate`:
//! every LLMEngine and LLMModel, and every pod or pod template that asks for
//! injection. References resolve against a catalog plus the documents
//! themselves, so a directory holding engines and models validates on its own,
//! whatever the order of its files.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use serde_json::Value;

use super::{SourceDocument, flatten_lists, inject_documents};
use crate::catalog::Catalog;
use crate::crd::{API_VERSION, LLMEngine, LLMModel, crds};
use crate::inject::Injector;
use crate::lookup::ModelLookup;
use crate::nodes::NodeGpus;
use crate::validate::{Report, node_advice, validate_engine, validate_model};
use crate::yaml::{CatalogDocument, CatalogObject, ObjectRef, Unusable};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding: `<file> document <n>: <Kind> <ns>/<name>: <field>: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub text: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.text)
    }
}

/// What validating a set of documents found, in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentsReport {
    /// LLMEngines, LLMModels and pods (or pod templates) asking for injection.
    pub objects: usize,
    pub findings: Vec<Finding>,
}

impl DocumentsReport {
    /// Adds an error found outside the documents (for example malformed YAML).
    pub fn add_error(&mut self, text: String) {
        self.findings.push(Finding {
            severity: Severity::Error,
            text,
        });
    }

    /// Adds a warning that is not a rule's (advice on the cluster's nodes).
    pub fn add_warning(&mut self, text: String) {
        self.findings.push(Finding {
            severity: Severity::Warning,
            text,
        });
    }

    fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    /// `validated 7 objects: 0 errors, 1 warning`.
    pub fn summary(&self) -> String {
        format!(
            "validated {}: {}, {}",
            plural(self.objects, "object"),
            plural(self.errors(), "error"),
            plural(self.warnings(), "warning")
        )
    }

    fn add_report(&mut self, prefix: &str, report: Report) {
        for (severity, violations) in [
            (Severity::Error, report.errors),
            (Severity::Warning, report.warnings),
        ] {
            self.findings
                .extend(violations.into_iter().map(|violation| Finding {
                    severity,
                    text: format!("{prefix}: {violation}"),
                }));
        }
    }
}

impl DocumentsReport {
    /// Errors for the fields of `value` that the CRD of `kind` does not have:
    /// `kubectl apply` rejects them (strict field validation), and decoding
    /// here would silently drop them.
    fn add_unknown_fields(&mut self, prefix: &str, kind: &str, value: &Value) {
        let mut unknown = Vec::new();
        if let (Some(schema), Value::Object(fields)) = (crd_schemas().get(kind), value) {
            // Every kind has these; a CRD's schema leaves them out.
            let mut fields = fields.clone();
            for implicit in ["apiVersion", "kind", "metadata"] {
                fields.remove(implicit);
            }
            unknown_fields(schema, &Value::Object(fields), "", &mut unknown);
        }
        for field in unknown {
            self.add_error(format!(
                "{prefix}: {field}: is not a field of {kind}; kubectl apply rejects it: check its spelling and indentation (kubectl explain {} lists the fields)",
                kind.to_ascii_lowercase()
            ));
        }
    }
}

/// The openAPIV3Schema of each CRD, by kind.
fn crd_schemas() -> &'static BTreeMap<String, Value> {
    static SCHEMAS: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        crds()
            .into_iter()
            .filter_map(|(_, crd)| {
                let version = crd.spec.versions.into_iter().next()?;
                let schema = serde_json::to_value(version.schema?.open_api_v3_schema?).ok()?;
                Some((crd.spec.names.kind, schema))
            })
            .collect()
    })
}

/// The paths of the fields of `value` that `schema` does not declare.
fn unknown_fields(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::Object(map) => {
            if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
                return;
            }
            if let Some(values) = schema.get("additionalProperties") {
                for (key, item) in map {
                    unknown_fields(values, item, &format!("{path}[{key}]"), out);
                }
                return;
            }
            // Without declared properties (metadata), anything goes.
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            for (key, item) in map {
                match properties.get(key) {
                    Some(field) => unknown_fields(field, item, &join(key), out),
                    None => out.push(join(key)),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    unknown_fields(item_schema, item, &format!("{path}[{index}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A document, read once.
enum Entry {
    Engine(Box<LLMEngine>),
    Model(Box<LLMModel>),
    /// An LLMEngine or LLMModel that cannot be read; the finding says why.
    Unreadable(String),
    /// Anything else: pods and templates are checked by injecting them.
    Other,
}

/// Validates every LLMEngine, LLMModel and pod (template) asking for injection
/// in `documents`. Objects without a namespace are in `default_namespace`.
pub fn validate_documents(
    documents: &[SourceDocument],
    default_namespace: &str,
    catalog: &Catalog,
) -> DocumentsReport {
    validate_documents_on(documents, default_namespace, catalog, &[])
}

/// [`validate_documents`], and for each LLMModel whose engine is known,
/// advice (warnings) on whether any of `nodes` has the GPUs its pods ask for.
pub fn validate_documents_on(
    documents: &[SourceDocument],
    default_namespace: &str,
    catalog: &Catalog,
    nodes: &[NodeGpus],
) -> DocumentsReport {
    let documents = flatten_lists(documents);
    let mut lookup = catalog.clone();
    let mut first_seen = BTreeMap::new();
    let entries: Vec<Entry> = documents
        .iter()
        .map(|doc| read_entry(doc, default_namespace, &mut first_seen))
        .collect();
    // The documents' own objects win over the catalog's, as `kubectl apply` would.
    for entry in &entries {
        match entry {
            Entry::Engine(engine) => lookup.insert_engine(LLMEngine::clone(engine)),
            Entry::Model(model) => lookup.insert_model(LLMModel::clone(model)),
            Entry::Unreadable(_) | Entry::Other => {}
        }
    }

    // Pods are checked by injecting them; the router image does not matter.
    let injector = Injector::default();
    let mut out = DocumentsReport::default();
    for (doc, entry) in documents.iter().zip(entries) {
        let origin = doc.origin();
        match entry {
            Entry::Engine(engine) => {
                out.objects += 1;
                let prefix = format!("{origin}: LLMEngine {}", object_name(&engine.metadata));
                out.add_unknown_fields(&prefix, "LLMEngine", &doc.value);
                out.add_report(&prefix, validate_engine(&engine));
            }
            Entry::Model(model) => {
                out.objects += 1;
                let prefix = format!("{origin}: LLMModel {}", object_name(&model.metadata));
                out.add_unknown_fields(&prefix, "LLMModel", &doc.value);
                let namespace = model.metadata.namespace.as_deref().unwrap_or_default();
                out.add_report(&prefix, validate_model(&model, namespace, &lookup));
                if let Some(engine) = lookup.engine(namespace, &model.spec.engine_ref.name) {
                    for advice in node_advice(&model, &engine, nodes) {
                        out.add_warning(format!("{prefix}: {advice}"));
                    }
                }
            }
            Entry::Unreadable(text) => {
                out.objects += 1;
                out.add_error(text);
            }
            Entry::Other => {
                let injection =
                    inject_documents(vec![doc.clone()], default_namespace, &lookup, &injector);
                out.objects += injection.injected + injection.errors.len();
                for error in injection.errors {
                    out.add_error(error.to_string());
                }
                out.findings
                    .extend(injection.warnings.into_iter().map(|text| Finding {
                        severity: Severity::Warning,
                        text,
                    }));
            }
        }
    }
    out
}

fn object_name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or("<unnamed>")
    )
}

/// Reads an LLMEngine or LLMModel document, setting its namespace; notes
/// where each object was first defined, to report a second definition.
fn read_entry(
    doc: &SourceDocument,
    default_namespace: &str,
    first_seen: &mut BTreeMap<ObjectRef, String>,
) -> Entry {
    let origin = doc.origin();
    let unreadable = |object: &ObjectRef, message: String| {
        Entry::Unreadable(format!("{origin}: {object}: {message}"))
    };
    let (object, decoded) = match CatalogDocument::read(doc, default_namespace) {
        CatalogDocument::Other { .. } => return Entry::Other,
        CatalogDocument::Unusable(object, Unusable::Version(api_version)) => {
            let message = format!("apiVersion: {api_version:?} is not served; use {API_VERSION}");
            return unreadable(&object, message);
        }
        CatalogDocument::Unusable(object, Unusable::NoName) => {
            let message = "metadata.name: is missing; give the object a name".to_owned();
            return unreadable(&object, message);
        }
        CatalogDocument::Unusable(object, Unusable::Invalid(message)) => {
            return unreadable(&object, format!("cannot be read: {message}"));
        }
        CatalogDocument::Object(object, decoded) => (object, decoded),
    };
    let first = first_seen
        .entry(object.clone())
        .or_insert_with(|| origin.clone());
    if *first != origin {
        let message = format!("is defined twice (first in {first}); keep one");
        return unreadable(&object, message);
    }
    match decoded {
        CatalogObject::Engine(engine) => Entry::Engine(engine),
        CatalogObject::Model(model) => Entry::Model(model),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::read_documents;

    fn run(yaml: &str, catalog: &Catalog) -> DocumentsReport {
        let documents = read_documents("in.yaml", yaml).unwrap();
        validate_documents(&documents, "default", catalog)
    }

    const ENGINE: &str = "apiVersion: llm.injector.dev/v1alpha1\nkind: LLMEngine\nmetadata: {name: gpu}\nspec: {accelerator: {vendor: NVIDIA, maxDevicesPerInstance: 2}}\n";
    const MODEL: &str = "apiVersion: llm.injector.dev/v1alpha1\nkind: LLMModel\nmetadata: {name: m}\nspec: {model: 'qwen3:8b', engineRef: {name: gpu}, parallelism: {model: 2}}\n";
    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {llm.injector.dev/model: m}}\nspec: {containers: [{name: app, image: x}]}\n";

    #[test]
    fn order_of_documents_does_not_matter() {
        for yaml in [
            format!("{ENGINE}---\n{MODEL}---\n{POD}"),
            format!("{POD}---\n{MODEL}---\n{ENGINE}"),
        ] {
            let report = run(&yaml, &Catalog::new());
            assert_eq!(report.findings, [], "{yaml}");
            assert_eq!(
                report.summary(),
                "validated 3 objects: 0 errors, 0 warnings"
            );
        }
    }

    #[test]
    fn findings_name_origin_object_field_and_message() {
        let wide = MODEL.replace("model: 2", "model: 3");
        let report = run(&format!("{wide}---\n{ENGINE}"), &Catalog::new());
        assert_eq!(
            report.findings[0].to_string(),
            "error: in.yaml document 1: LLMModel default/m: spec.parallelism.model: 3 exceeds LLMEngine \"gpu\" accelerator.maxDevicesPerInstance 2; lower it or raise the engine's limit"
        );
        assert_eq!(report.summary(), "validated 2 objects: 1 error, 0 warnings");
    }

    #[test]
    fn document_level_problems() {
        let cases = [
            (
                MODEL.replace("v1alpha1", "v1"),
                "error: in.yaml document 1: LLMModel default/m: apiVersion: \"llm.injector.dev/v1\" is not served; use llm.injector.dev/v1alpha1",
            ),
            (
                MODEL.replace("{name: m}", "{}"),
                "error: in.yaml document 1: LLMModel default/<unnamed>: metadata.name: is missing; give the object a name",
            ),
            (
                MODEL.replace("'qwen3:8b'", "[x]"),
                "error: in.yaml document 1: LLMModel default/m: cannot be read: invalid type: sequence, expected a string",
            ),
            (
                format!("{ENGINE}---\n{ENGINE}"),
                "error: in.yaml document 2: LLMEngine default/gpu: is defined twice (first in in.yaml document 1); keep one",
            ),
            (
                POD.to_owned(),
                "error: in.yaml document 1: Pod default/p: LLMModel \"m\" (annotation llm.injector.dev/model) not found in namespace \"default\"; there are no LLMModels in namespace \"default\": create one, or fix the annotation",
            ),
            (
                format!("{MODEL}---\n{POD}"),
                "warning: in.yaml document 1: LLMModel default/m: spec.engineRef.name: LLMEngine \"gpu\" does not exist in namespace \"default\" (yet); pods asking for this model are rejected until it does: create the engine or fix engineRef",
            ),
        ];
        for (yaml, expected) in cases {
            let report = run(&yaml, &Catalog::new());
            assert_eq!(report.findings[0].to_string(), expected, "{yaml}");
        }
    }

    #[test]
    fn unknown_fields_are_errors() {
        let yaml = ENGINE.replace(
            "spec: {accelerator: {vendor: NVIDIA, maxDevicesPerInstance: 2}}",
            "spec: {acelerator: {}, accelerator: {vendor: NVIDIA, dra: {resourceClaimTemplateName: x, count: 2}}, env: [{name: A, valeu: b}], resources: {limits: {cpu: 1}}}\nstatus: {}\nextra: 1",
        );
        let report = run(&yaml, &Catalog::new());
        let mut fields: Vec<&str> = report
            .findings
            .iter()
            .filter(|f| f.text.contains("is not a field of LLMEngine"))
            .filter_map(|f| f.text.split(": ").nth(2))
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "extra",
                "spec.accelerator.dra.count",
                "spec.acelerator",
                "spec.env[0].valeu"
            ]
        );
    }

    #[test]
    fn catalog_objects_resolve_and_list_items_count() {
        let mut catalog = Catalog::new();
        let engine: LLMEngine = serde_yaml::from_str(ENGINE).unwrap();
        let mut engine = engine;
        engine.metadata.namespace = Some("default".into());
        catalog.insert_engine(engine);
        let list = format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}\n- {}",
            serde_json::to_string(&serde_yaml::from_str::<Value>(MODEL).unwrap()).unwrap(),
            serde_json::to_string(&serde_yaml::from_str::<Value>(POD).unwrap()).unwrap(),
        );
        let report = run(&list, &catalog);
        assert_eq!(report.findings, []);
        assert_eq!(report.objects, 2);
        // Other kinds are not counted.
        let report = run(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
            &catalog,
        );
        assert_eq!(
            report.summary(),
            "validated 0 objects: 0 errors, 0 warnings"
        );
    }
}
