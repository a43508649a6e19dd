//! The one reader of LLMEngine and LLMModel documents, for the catalog and
//! for `validate`: which documents are catalog objects, in which namespace,
//! and why one cannot be used. Each caller words the problem for its users.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::SourceDocument;
use crate::crd::{API_VERSION, GROUP, LLMEngine, LLMModel};

/// Which LLMEngine or LLMModel a document names, for messages and for
/// finding one defined twice.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    /// `LLMEngine` or `LLMModel`.
    pub kind: &'static str,
    /// Its namespace, or the default one when it names none.
    pub namespace: String,
    /// Its name; empty when it has none.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            "<unnamed>"
        } else {
            &self.name
        };
        write!(f, "{} {}/{name}", self.kind, self.namespace)
    }
}

/// Why an LLMEngine or LLMModel document cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// Another version of the llm.injector.dev group than the one served.
    Version(String),
    /// No `metadata.name`.
    NoName,
    /// It does not decode; serde's message.
    Invalid(String),
}

/// An LLMEngine or LLMModel, its namespace set.
#[derive(Debug, Clone)]
pub enum CatalogObject {
    Engine(Box<LLMEngine>),
    Model(Box<LLMModel>),
}

/// What a document holds.
#[derive(Debug, Clone)]
pub enum CatalogDocument {
    /// An LLMEngine or LLMModel.
    Object(ObjectRef, CatalogObject),
    /// An LLMEngine or LLMModel that cannot be used.
    Unusable(ObjectRef, Unusable),
    /// Anything else, with the `apiVersion` and `kind` it gives (empty when
    /// absent or not strings).
    Other { api_version: String, kind: String },
}

impl CatalogDocument {
    /// Reads `doc`; objects that name no namespace are in `default_namespace`.
    pub fn read(doc: &SourceDocument, default_namespace: &str) -> Self {
        let text = |pointer: &str| {
            doc.value
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let (api_version, kind) = (text("/apiVersion"), text("/kind"));
        let kind = match kind {
            "LLMEngine" => "LLMEngine",
            "LLMModel" => "LLMModel",
            _ => return Self::other(api_version, kind),
        };
        if api_version.split('/').next() != Some(GROUP) {
            return Self::other(api_version, kind);
        }
        let object = ObjectRef {
            kind,
            namespace: Some(text("/metadata/namespace"))
                .filter(|ns| !ns.is_empty())
                .unwrap_or(default_namespace)
                .to_owned(),
            name: text("/metadata/name").to_owned(),
        };
        if api_version != API_VERSION {
            return CatalogDocument::Unusable(object, Unusable::Version(api_version.to_owned()));
        }
        if object.name.is_empty() {
            return CatalogDocument::Unusable(object, Unusable::NoName);
        }
        let decoded = if kind == "LLMEngine" {
            decode(doc, &object).map(CatalogObject::Engine)
        } else {
            decode(doc, &object).map(CatalogObject::Model)
        };
        match decoded {
            Ok(decoded) => CatalogDocument::Object(object, decoded),
            Err(message) => CatalogDocument::Unusable(object, Unusable::Invalid(message)),
        }
    }

    fn other(api_version: &str, kind: &str) -> Self {
        CatalogDocument::Other {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        }
    }
}

/// The document as `T`, in the namespace `object` names.
fn decode<T>(doc: &SourceDocument, object: &ObjectRef) -> Result<Box<T>, String>
where
    T: DeserializeOwned + kube::Resource,
{
    let mut decoded: Box<T> =
        serde_json::from_value(doc.value.clone()).map_err(|e| e.to_string())?;
    decoded.meta_mut().namespace = Some(object.namespace.clone());
    Ok(decoded)
}
