//! Settings of injection that come from how the injector is deployed, not
//! from an LLMEngine or LLMModel.

/// The image of this build of llm-injector, which also runs the request
/// router (`llm-injector route`) in pods with data parallelism.
pub const DEFAULT_ROUTER_IMAGE: &str = concat!(
    "ghcr.io/llm-injector/llm-injector:",
    env!("CARGO_PKG_VERSION")
);

/// Deployment-level settings of injection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectOptions {
    /// Image of the `llm-router` sidecar; its entrypoint must be `llm-injector`.
    pub router_image: String,
}

impl Default for InjectOptions {
    fn default() -> Self {
        InjectOptions {
            router_image: DEFAULT_ROUTER_IMAGE.to_owned(),
        }
    }
}
