//! Kubernetes YAML as kubectl reads it (YAML 1.1 through go-yaml v2), and
//! written back so that every reader reads what was meant: unchanged
//! documents byte for byte, changed ones edited in place.

mod documents;
mod edit;
mod emit;
mod load;
mod objects;
mod resolve;
mod text;

pub use documents::{
    MalformedYaml, SourceDocument, SourceFile, append_stream, flatten_lists, read_documents,
    yaml_files,
};
pub use edit::rewrite;
pub use emit::to_yaml;
pub use load::{Document, Node, Shape, YamlError, load};
pub use objects::{CatalogDocument, CatalogObject, ObjectRef, Unusable};
pub use resolve::{Plain, plain_is_string, resolve_plain};
