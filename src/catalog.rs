//! Where LLMModels and LLMEngines come from: the [`ModelLookup`] trait the
//! injection core asks, and [`Catalog`], its implementation over YAML files
//! (the offline CLI and `serve --catalog`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use thiserror::Error;

use crate::crd::{API_VERSION, LLMEngine, LLMModel};
pub use crate::lookup::ModelLookup;
use crate::yaml::{
    CatalogDocument, CatalogObject, MalformedYaml, ObjectRef, SourceDocument, Unusable,
    flatten_lists, read_documents, yaml_files,
};

type Key = (String, String);
/// Objects by namespace, then by name.
type ByNamespace<T> = BTreeMap<String, BTreeMap<String, Arc<T>>>;

/// LLMModels and LLMEngines held in memory, keyed by namespace and name.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    models: ByNamespace<LLMModel>,
    engines: ByNamespace<LLMEngine>,
}

fn put<T>(map: &mut ByNamespace<T>, (namespace, name): Key, object: T) {
    map.entry(namespace)
        .or_default()
        .insert(name, Arc::new(object));
}

fn get<T>(map: &ByNamespace<T>, namespace: &str, name: &str) -> Option<Arc<T>> {
    map.get(namespace)?.get(name).cloned()
}

/// Why a catalog could not be loaded.
#[derive(Debug, Error)]
pub enum CatalogError {
    #[error(transparent)]
    Yaml(#[from] Box<MalformedYaml>),
    #[error(
        "{path}: no catalog files found (expected *.yaml or *.yml holding LLMEngine and LLMModel objects)"
    )]
    Empty { path: String },
    #[error("{path}: cannot read the catalog: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{origin}: kind {kind:?} (apiVersion {api_version:?}) is not a catalog object; a catalog holds only LLMEngine and LLMModel ({API_VERSION}): remove it or move it out of the catalog"
    )]
    UnknownKind {
        origin: String,
        kind: String,
        api_version: String,
    },
    #[error("{origin}: invalid {kind}: {message}")]
    Invalid {
        origin: String,
        kind: &'static str,
        message: String,
    },
    #[error("{origin}: {kind} {namespace}/{name} is defined twice (first in {first}); keep one")]
    Duplicate {
        origin: String,
        kind: &'static str,
        namespace: String,
        name: String,
        first: String,
    },
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads a YAML file, or every `*.yaml`/`*.yml` file of a directory (sorted,
    /// not recursive). Objects without a namespace go to `default_namespace`.
    pub fn load(path: &Path, default_namespace: &str) -> Result<Self, CatalogError> {
        Self::load_all(&[path.to_owned()], default_namespace)
    }

    /// Loads several files or directories into one catalog; an object defined
    /// twice is an error.
    pub fn load_all(paths: &[PathBuf], default_namespace: &str) -> Result<Self, CatalogError> {
        let mut catalog = Catalog::new();
        let mut origins = BTreeMap::new();
        for path in paths {
            for file in catalog_files(path)? {
                let text = std::fs::read_to_string(&file).map_err(|source| CatalogError::Io {
                    path: file.display().to_string(),
                    source,
                })?;
                let documents =
                    read_documents(&file.display().to_string(), &text).map_err(Box::new)?;
                for doc in flatten_lists(&documents) {
                    catalog.add_document(&doc, default_namespace, &mut origins)?;
                }
            }
        }
        Ok(catalog)
    }

    /// Adds the LLMEngine and LLMModel objects of already-parsed documents.
    pub fn add_documents(
        &mut self,
        documents: &[SourceDocument],
        default_namespace: &str,
    ) -> Result<(), CatalogError> {
        self.add_all(documents, default_namespace, false)
    }

    /// Adds the LLMEngine and LLMModel objects among `documents` (in
    /// Lists too) and skips every other kind: the catalog objects among a
    /// command's inputs, which replace the catalog's own of the same name,
    /// as `kubectl apply` would.
    pub fn add_objects_among(
        &mut self,
        documents: &[SourceDocument],
        default_namespace: &str,
    ) -> Result<(), CatalogError> {
        self.add_all(documents, default_namespace, true)
    }

    /// Adds the documents (in Lists too), skipping other kinds than
    /// LLMEngine and LLMModel when `skip_others`, else refusing them.
    fn add_all(
        &mut self,
        documents: &[SourceDocument],
        default_namespace: &str,
        skip_others: bool,
    ) -> Result<(), CatalogError> {
        let mut origins = BTreeMap::new();
        for doc in flatten_lists(documents) {
            let other = matches!(
                CatalogDocument::read(&doc, default_namespace),
                CatalogDocument::Other { .. }
            );
            if !(skip_others && other) {
                self.add_document(&doc, default_namespace, &mut origins)?;
            }
        }
        Ok(())
    }

    fn add_document(
        &mut self,
        doc: &SourceDocument,
        default_namespace: &str,
        origins: &mut BTreeMap<ObjectRef, String>,
    ) -> Result<(), CatalogError> {
        let origin = doc.origin();
        let invalid = |object: &ObjectRef, message: String| CatalogError::Invalid {
            origin: origin.clone(),
            kind: object.kind,
            message,
        };
        let (object, decoded) = match CatalogDocument::read(doc, default_namespace) {
            CatalogDocument::Other { api_version, kind } => {
                return Err(CatalogError::UnknownKind {
                    origin,
                    kind,
                    api_version,
                });
            }
            CatalogDocument::Unusable(object, Unusable::Version(api_version)) => {
                return Err(CatalogError::UnknownKind {
                    origin,
                    kind: object.kind.to_owned(),
                    api_version,
                });
            }
            CatalogDocument::Unusable(object, Unusable::NoName) => {
                let message = "metadata.name is missing; give the object a name".to_owned();
                return Err(invalid(&object, message));
            }
            CatalogDocument::Unusable(object, Unusable::Invalid(message)) => {
                return Err(invalid(&object, message));
            }
            CatalogDocument::Object(object, decoded) => (object, decoded),
        };
        if let Some(first) = origins.get(&object) {
            return Err(CatalogError::Duplicate {
                origin,
                kind: object.kind,
                namespace: object.namespace,
                name: object.name,
                first: first.clone(),
            });
        }
        match decoded {
            CatalogObject::Engine(engine) => put(&mut self.engines, key(&object), *engine),
            CatalogObject::Model(model) => put(&mut self.models, key(&object), *model),
        }
        origins.insert(object, origin);
        Ok(())
    }

    /// Adds or replaces a model.
    pub fn insert_model(&mut self, model: LLMModel) {
        put(&mut self.models, object_key(&model.metadata), model);
    }

    /// Adds or replaces an engine.
    pub fn insert_engine(&mut self, engine: LLMEngine) {
        put(&mut self.engines, object_key(&engine.metadata), engine);
    }

    /// Every LLMModel held, with its namespace, by namespace then name.
    pub fn models(&self) -> impl Iterator<Item = (&str, &Arc<LLMModel>)> {
        self.models
            .iter()
            .flat_map(|(namespace, models)| models.values().map(move |m| (namespace.as_str(), m)))
    }

    /// How many LLMModels it holds.
    pub fn model_count(&self) -> usize {
        self.models.values().map(BTreeMap::len).sum()
    }

    /// Number of engines held.
    pub fn engine_count(&self) -> usize {
        self.engines.values().map(BTreeMap::len).sum()
    }
}

fn key(object: &ObjectRef) -> Key {
    (object.namespace.clone(), object.name.clone())
}

fn object_key(meta: &ObjectMeta) -> Key {
    (
        meta.namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        meta.name.clone().unwrap_or_default(),
    )
}

fn catalog_files(path: &Path) -> Result<Vec<PathBuf>, CatalogError> {
    let io = |source| CatalogError::Io {
        path: path.display().to_string(),
        source,
    };
    let files = yaml_files(path).map_err(io)?;
    if files.is_empty() {
        return Err(CatalogError::Empty {
            path: path.display().to_string(),
        });
    }
    Ok(files)
}

impl ModelLookup for Catalog {
    fn model(&self, namespace: &str, name: &str) -> Option<Arc<LLMModel>> {
        get(&self.models, namespace, name)
    }

    fn engine(&self, namespace: &str, name: &str) -> Option<Arc<LLMEngine>> {
        get(&self.engines, namespace, name)
    }

    fn model_names(&self, namespace: &str) -> Vec<String> {
        self.models
            .get(namespace)
            .map(|models| models.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn models_using_engine(&self, namespace: &str, engine: &str) -> Vec<Arc<LLMModel>> {
        self.models
            .get(namespace)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter(|model| model.spec.engine_ref.name == engine)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::read_documents;

    fn load(text: &str) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog::new();
        let docs = read_documents("catalog.yaml", text).map_err(Box::new)?;
        catalog.add_documents(&docs, "default")?;
        Ok(catalog)
    }

    const ENGINE: &str =
        "apiVersion: llm.injector.dev/v1alpha1\nkind: LLMEngine\nmetadata: {name: e}\nspec: {}\n";
    const MODEL: &str = "apiVersion: llm.injector.dev/v1alpha1\nkind: LLMModel\nmetadata: {name: m, namespace: ns}\nspec: {model: 'qwen3:8b', engineRef: {name: e}}\n";

    #[test]
    fn loads_engines_and_models_with_default_namespace() {
        let catalog = load(&format!("{ENGINE}---\n{MODEL}")).unwrap();
        assert!(catalog.engine("default", "e").is_some());
        assert!(catalog.engine("ns", "e").is_none());
        assert!(catalog.model("ns", "m").is_some());
        assert_eq!(catalog.model_names("ns"), ["m"]);
        assert!(catalog.model_names("default").is_empty());
        assert_eq!((catalog.engine_count(), catalog.model_count()), (1, 1));
    }

    #[test]
    fn rejects_with_origin_and_fix() {
        let cases = [
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
                "catalog.yaml document 1: kind \"ConfigMap\" (apiVersion \"v1\") is not a catalog object",
            ),
            (
                "apiVersion: llm.injector.dev/v2\nkind: LLMModel\nmetadata: {name: c}\n",
                "is not a catalog object",
            ),
            (
                &format!("{ENGINE}---\n{ENGINE}"),
                "catalog.yaml document 2: LLMEngine default/e is defined twice (first in catalog.yaml document 1)",
            ),
            (
                "apiVersion: llm.injector.dev/v1alpha1\nkind: LLMEngine\nmetadata: {}\nspec: {}\n",
                "metadata.name is missing",
            ),
            (
                "apiVersion: llm.injector.dev/v1alpha1\nkind: LLMModel\nmetadata: {name: m}\nspec: {model: 3}\n",
                "catalog.yaml document 1: invalid LLMModel",
            ),
            ("a: [", "catalog.yaml document 1: malformed YAML"),
        ];
        for (text, expected) in cases {
            let error = load(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
    }

    #[test]
    fn models_using_an_engine_by_namespace() {
        let other = MODEL
            .replace("name: m,", "name: m2,")
            .replace("name: e}", "name: f}");
        let catalog = load(&format!("{ENGINE}---\n{MODEL}---\n{other}")).unwrap();
        let names = |models: Vec<Arc<LLMModel>>| -> Vec<String> {
            models
                .iter()
                .filter_map(|m| m.metadata.name.clone())
                .collect()
        };
        assert_eq!(names(catalog.models_using_engine("ns", "e")), ["m"]);
        assert_eq!(names(catalog.models_using_engine("ns", "f")), ["m2"]);
        assert!(catalog.models_using_engine("default", "e").is_empty());

        /// A lookup with only the required methods gets the same answer.
        struct Minimal<'a>(&'a Catalog);
        impl ModelLookup for Minimal<'_> {
            fn model(&self, namespace: &str, name: &str) -> Option<Arc<LLMModel>> {
                self.0.model(namespace, name)
            }
            fn engine(&self, namespace: &str, name: &str) -> Option<Arc<LLMEngine>> {
                self.0.engine(namespace, name)
            }
            fn model_names(&self, namespace: &str) -> Vec<String> {
                self.0.model_names(namespace)
            }
        }
        assert_eq!(
            names(Minimal(&catalog).models_using_engine("ns", "e")),
            ["m"]
        );
    }

    #[test]
    fn list_items_are_loaded() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: llm.injector.dev/v1alpha1\n  kind: LLMEngine\n  metadata: {name: e, namespace: x}\n  spec: {}\n";
        assert!(load(text).unwrap().engine("x", "e").is_some());
    }
}
