//! `serve --catalog`: LLMEngines and LLMModels from YAML files, re-read when
//! they change (as certificates are, see `polled_files`), so models can be
//! added and removed without a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::metrics::Metrics;
use super::polled_files::{LastSeen, Polled, every};
use crate::catalog::{Catalog, CatalogError};
use crate::crd::{LLMEngine, LLMModel};
use crate::lookup::ModelLookup;
use crate::yaml::yaml_files;

/// The bytes of every catalog file, in path order: what changed means "reload".
type Fingerprint = Vec<(PathBuf, Vec<u8>)>;

/// A [`Catalog`] loaded from files and swapped whole when they change: a
/// review sees either the old catalog or the new one, never a mix of files.
#[derive(Debug)]
pub struct FileCatalog {
    paths: Vec<PathBuf>,
    default_namespace: String,
    current: ArcSwap<Catalog>,
    /// The files as last looked at (loaded or refused), to act once per change.
    last_seen: LastSeen<Fingerprint>,
}

/// What a reload attempt did.
#[derive(Debug, PartialEq, Eq)]
pub enum CatalogReload {
    Unchanged,
    /// The new files were loaded: engine and model counts.
    Reloaded {
        engines: usize,
        models: usize,
    },
    /// The new files were refused (unreadable or invalid); the previous
    /// catalog is still served.
    Refused(String),
}

fn fingerprint(paths: &[PathBuf]) -> std::io::Result<Fingerprint> {
    let mut files = Vec::new();
    for path in paths {
        for file in yaml_files(path)? {
            let bytes = std::fs::read(&file)?;
            files.push((file, bytes));
        }
    }
    Ok(files)
}

impl FileCatalog {
    /// Loads the catalog; fails if it is unreadable or invalid.
    pub fn load(paths: &[PathBuf], default_namespace: &str) -> Result<Self, CatalogError> {
        let seen = fingerprint(paths).unwrap_or_default();
        let catalog = Catalog::load_all(paths, default_namespace)?;
        Ok(FileCatalog {
            paths: paths.to_vec(),
            default_namespace: default_namespace.to_owned(),
            current: ArcSwap::from_pointee(catalog),
            last_seen: LastSeen::new(seen),
        })
    }

    /// The catalog served now.
    pub fn current(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    /// Re-reads the files; swaps in the new catalog if they changed and load.
    pub fn reload(&self) -> CatalogReload {
        // The catalog is loaded from the paths again, not from the bytes
        // compared: files that change again meanwhile differ from what was
        // kept, so the next look loads them once more.
        let polled = self.last_seen.poll(
            || fingerprint(&self.paths).map_err(|e| e.to_string()),
            |_| Catalog::load_all(&self.paths, &self.default_namespace).map_err(|e| e.to_string()),
        );
        match polled {
            Polled::Unchanged => CatalogReload::Unchanged,
            Polled::Changed(catalog) => {
                let (engines, models) = (catalog.engine_count(), catalog.model_count());
                self.current.store(Arc::new(catalog));
                CatalogReload::Reloaded { engines, models }
            }
            Polled::Refused(reason) => CatalogReload::Refused(reason),
        }
    }

    /// Re-reads the files every `interval`, forever, logging and counting
    /// reloads and refusals.
    pub async fn watch(self: Arc<Self>, interval: Duration, metrics: Arc<Metrics>) {
        every(interval, || async {
            // Reading and parsing files blocks: keep it off the review workers.
            let this = self.clone();
            let Ok(outcome) = tokio::task::spawn_blocking(move || this.reload()).await else {
                return;
            };
            match outcome {
                CatalogReload::Unchanged => {}
                CatalogReload::Reloaded { engines, models } => {
                    metrics.catalog_reload("reloaded");
                    tracing::info!(engines, models, "catalog reloaded");
                }
                CatalogReload::Refused(reason) => {
                    metrics.catalog_reload("refused");
                    tracing::error!(
                        %reason,
                        "new catalog refused; still serving the previous one"
                    );
                }
            }
        })
        .await
    }
}

impl ModelLookup for FileCatalog {
    fn model(&self, namespace: &str, name: &str) -> Option<Arc<LLMModel>> {
        self.current.load().model(namespace, name)
    }

    fn engine(&self, namespace: &str, name: &str) -> Option<Arc<LLMEngine>> {
        self.current.load().engine(namespace, name)
    }

    fn model_names(&self, namespace: &str) -> Vec<String> {
        self.current.load().model_names(namespace)
    }

    fn models_using_engine(&self, namespace: &str, engine: &str) -> Vec<Arc<LLMModel>> {
        self.current.load().models_using_engine(namespace, engine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENGINE: &str = "apiVersion: llm.injector.dev/v1alpha1
kind: LLMEngine
metadata: {name: ollama}
spec: {runtime: Ollama, accelerator: {vendor: None}}
";

    fn model(name: &str) -> String {
        format!(
            "apiVersion: llm.injector.dev/v1alpha1
kind: LLMModel
metadata: {{name: {name}}}
spec: {{model: 'llama3.2:1b', engineRef: {{name: ollama}}, parallelism: {{model: 0}}}}
"
        )
    }

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn dir(name: &str) -> Dir {
        let path = std::env::temp_dir().join(format!(
            "llm-injector-catalog-files-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("mkdir");
        Dir(path)
    }

    #[test]
    fn reloads_on_change_refuses_broken_files_and_keeps_the_old_catalog() {
        let dir = dir("reload");
        let write = |file: &str, text: &str| std::fs::write(dir.0.join(file), text).expect("write");
        write("engine.yaml", ENGINE);
        write("a.yaml", &model("a"));
        let catalog = FileCatalog::load(std::slice::from_ref(&dir.0), "default").expect("load");
        assert!(catalog.model("default", "a").is_some());
        assert_eq!(catalog.reload(), CatalogReload::Unchanged);

        // A model added.
        write("b.yaml", &model("b"));
        assert_eq!(
            catalog.reload(),
            CatalogReload::Reloaded {
                engines: 1,
                models: 2
            }
        );
        assert!(catalog.model("default", "b").is_some());
        assert_eq!(catalog.model_names("default"), ["a", "b"]);

        // A broken file: refused once, the previous catalog still served.
        write("b.yaml", "kind: LLMModel\n  bad: [indent");
        assert!(matches!(catalog.reload(), CatalogReload::Refused(m) if m.contains("b.yaml")));
        assert_eq!(catalog.reload(), CatalogReload::Unchanged);
        assert!(catalog.model("default", "b").is_some());

        // A model removed.
        std::fs::remove_file(dir.0.join("b.yaml")).expect("rm");
        assert_eq!(
            catalog.reload(),
            CatalogReload::Reloaded {
                engines: 1,
                models: 1
            }
        );
        assert!(catalog.model("default", "b").is_none());
        assert!(catalog.engine("default", "ollama").is_some());
    }

    #[test]
    fn a_missing_directory_is_refused_not_emptied() {
        let dir = dir("missing");
        std::fs::write(
            dir.0.join("all.yaml"),
            format!("{ENGINE}---\n{}", model("a")),
        )
        .expect("write");
        let catalog = FileCatalog::load(std::slice::from_ref(&dir.0), "default").expect("load");
        std::fs::remove_dir_all(&dir.0).expect("rm");
        assert!(matches!(catalog.reload(), CatalogReload::Refused(_)));
        assert!(catalog.model("default", "a").is_some());
    }
}
