//! YAML streams as kubectl reads them: their documents with where each came
//! from, the files of a directory, and writing a stream back with only the
//! changed documents changed. Used by the catalog, `inject` and `validate`.

use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

/// A YAML stream that does not parse.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{source_name} document {document}: malformed YAML: {message}")]
pub struct MalformedYaml {
    /// File name, or `<stdin>`.
    pub source_name: String,
    /// 1-based position of the document that does not parse.
    pub document: usize,
    /// What is wrong, and where.
    pub message: String,
}

/// One YAML document and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceDocument {
    /// File name, or `<stdin>`.
    pub source: String,
    /// 1-based position of the document in its stream.
    pub document: usize,
    /// Index within a `kind: List`, when the object came from one.
    pub item: Option<usize>,
    /// The document as JSON.
    pub value: Value,
}

impl SourceDocument {
    /// `file.yaml document 2` (or `... items[3]`), for messages.
    pub fn origin(&self) -> String {
        match self.item {
            Some(i) => format!("{} document {} items[{i}]", self.source, self.document),
            None => format!("{} document {}", self.source, self.document),
        }
    }

    /// An item of this document's `kind: List`.
    pub fn item(&self, index: usize, value: Value) -> SourceDocument {
        SourceDocument {
            source: self.source.clone(),
            document: self.document,
            item: Some(index),
            value,
        }
    }
}

/// Splits a YAML stream into its non-empty documents, as JSON values, read
/// the way kubectl reads them (see [`crate::yaml`]).
pub fn read_documents(source: &str, text: &str) -> Result<Vec<SourceDocument>, MalformedYaml> {
    Ok(SourceFile::read(source, text)?.source_documents())
}

/// A YAML stream as read, kept so that it can be written back with only the
/// injected documents changed.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// File name, or `<stdin>`.
    pub name: String,
    /// The text as read.
    pub text: String,
    /// Every document of the stream, empty ones included.
    pub documents: Vec<super::Document>,
}

impl SourceFile {
    /// Reads `text` as a YAML stream.
    pub fn read(name: &str, text: &str) -> Result<SourceFile, MalformedYaml> {
        let documents = super::load(text).map_err(|e| MalformedYaml {
            source_name: name.to_owned(),
            document: e.document,
            message: e.to_string(),
        })?;
        Ok(SourceFile {
            name: name.to_owned(),
            text: text.to_owned(),
            documents,
        })
    }

    /// The non-empty documents, as JSON values.
    pub fn source_documents(&self) -> Vec<SourceDocument> {
        self.documents
            .iter()
            .filter(|d| !d.root.value.is_null())
            .map(|d| SourceDocument {
                source: self.name.clone(),
                document: d.number,
                item: None,
                value: d.root.value.clone(),
            })
            .collect()
    }

    /// The text with the non-empty documents replaced by `values` (in the
    /// order of [`SourceFile::source_documents`]): documents whose value did
    /// not change come out byte for byte as read, changed ones keep all of
    /// the text the change does not touch.
    pub fn render(&self, values: Vec<Value>) -> String {
        let targets = self
            .documents
            .iter()
            .filter(|d| !d.root.value.is_null())
            .map(|d| d.number)
            .zip(values)
            .collect();
        super::rewrite(&self.text, &self.documents, &targets)
    }
}

/// Appends one rendered stream to another, with a `---` between them unless
/// the second starts with one.
pub fn append_stream(out: &mut String, stream: &str) {
    if !out.is_empty() {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        if !stream.starts_with("---") {
            out.push_str("---\n");
        }
    }
    out.push_str(stream);
}

/// The `*.yaml`/`*.yml` files of a directory (sorted, not recursive), or the path itself when it is a file.
pub fn yaml_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !std::fs::metadata(path)?.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let file = entry?.path();
        let yaml = file.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if yaml && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

/// The documents, with the items of every `kind: List` in place of the list.
pub fn flatten_lists(documents: &[SourceDocument]) -> Vec<SourceDocument> {
    let mut flat = Vec::with_capacity(documents.len());
    for doc in documents {
        match doc.value.get("items").and_then(Value::as_array) {
            Some(items) if doc.value.get("kind").and_then(Value::as_str) == Some("List") => {
                let items: Vec<SourceDocument> = items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| doc.item(index, item.clone()))
                    .collect();
                flat.extend(flatten_lists(&items));
            }
            _ => flat.push(doc.clone()),
        }
    }
    flat
}
