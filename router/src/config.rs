//! What `llm-injector route` is configured with, and how its values are parsed.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use hyper::Uri;
use hyper::header::HeaderName;
use hyper::http::uri::{Authority, InvalidUriParts, Parts, PathAndQuery, Scheme};

use super::inference::KeepAlive;
use super::pool::{DEFAULT_LOAD_FACTOR, Limits};

/// Ollama's default port, used when a backend names none.
pub const OLLAMA_DEFAULT_PORT: u16 = 11434;

/// The address of one Ollama instance: `host:port`, optionally written as
/// `http://host:port` or `http://host:port/` (the form of `LLM_ENDPOINTS`).
/// A missing port is Ollama's 11434.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackendAddr(Authority);

impl BackendAddr {
    /// `host:port`, as the metrics and error messages name the instance.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The authority of upstream URIs.
    pub fn authority(&self) -> &Authority {
        &self.0
    }

    /// `http://host:port{path_and_query}`, `/` when there is none.
    pub fn uri(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, InvalidUriParts> {
        let mut parts = Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.0.clone());
        parts.path_and_query = Some(
            path_and_query
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        Uri::from_parts(parts)
    }
}

impl fmt::Display for BackendAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl FromStr for BackendAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let rest = match trimmed.split_once("://") {
            Some(("http", rest)) => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "{text:?}: scheme {scheme:?} is not supported; Ollama instances are plain http://host:port"
                ));
            }
            None => trimmed,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "{text:?} is not an Ollama address such as 127.0.0.1:11434 or http://127.0.0.1:11434"
            ));
        }
        let authority: Authority = rest.parse().map_err(|e| {
            format!("{text:?} is not an Ollama address such as 127.0.0.1:11434: {e}")
        })?;
        if authority.host().is_empty() {
            return Err(format!("{text:?}: the host is missing"));
        }
        // A port is what follows the last colon outside IPv6 brackets.
        let port_text = rest
            .rfind(':')
            .map(|i| &rest[i + 1..])
            .filter(|after| !after.contains(']'));
        let authority = match (port_text, authority.port_u16()) {
            (None, _) => format!("{rest}:{OLLAMA_DEFAULT_PORT}")
                .parse()
                .map_err(|e| format!("{text:?}: {e}"))?,
            (Some(_), Some(0)) => {
                return Err(format!("{text:?}: port 0 is not a port to connect to"));
            }
            (Some(_), Some(_)) => authority,
            (Some(port), None) => return Err(format!("{text:?}: {port:?} is not a port")),
        };
        Ok(BackendAddr(authority))
    }
}

/// How inference requests are kept on the same instance, so that Ollama's
/// prompt cache (the KV cache of a slot, reused for a prompt that begins
/// the same) serves them. Bounded: an instance over its share of the load
/// takes no more keyed requests, which then go to the least busy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Affinity {
    /// The least busy instance, always.
    #[default]
    None,
    /// Requests with the same value of this header (a session or user id)
    /// go to the same instance.
    Header(HeaderName),
    /// Requests whose prompt begins with the same `bytes` bytes (system
    /// prompt, then the prompt or the messages) go to the same instance.
    Prefix { bytes: usize },
}

/// Prompt bytes of prefix affinity when none are given.
pub const DEFAULT_PREFIX_BYTES: usize = 1024;

impl FromStr for Affinity {
    type Err = String;

    /// `none`, `header:NAME` or `prefix[:BYTES]`.
    fn from_str(text: &str) -> Result<Self, String> {
        let wrong = || {
            format!(
                "{text:?} is not an affinity: use none, header:NAME (for example header:X-Session-Id) or prefix[:BYTES] (for example prefix:1024)"
            )
        };
        match text.trim().split_once(':') {
            None if text.trim() == "none" => Ok(Affinity::None),
            None if text.trim() == "prefix" => Ok(Affinity::Prefix {
                bytes: DEFAULT_PREFIX_BYTES,
            }),
            Some(("header", name)) => HeaderName::from_bytes(name.trim().as_bytes())
                .map(Affinity::Header)
                .map_err(|_| format!("{text:?}: {name:?} is not a header name")),
            Some(("prefix", bytes)) => match bytes.trim().parse::<usize>() {
                Ok(bytes) if (1..=1 << 20).contains(&bytes) => Ok(Affinity::Prefix { bytes }),
                _ => Err(format!(
                    "{text:?}: the prefix is a number of bytes from 1 to 1048576"
                )),
            },
            _ => Err(wrong()),
        }
    }
}

/// Everything `route` is configured with.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Address of the proxy (the one endpoint the user's containers call).
    pub listen: SocketAddr,
    /// Plain-HTTP address of `/livez`, `/readyz` and `/metrics`; `None` serves no admin endpoint.
    pub admin_listen: Option<SocketAddr>,
    /// The Ollama instances, in order (ties of the choice go round-robin over this order).
    pub backends: Vec<BackendAddr>,
    /// Time between two active health checks (`GET /api/version`) of each instance.
    pub health_interval: Duration,
    /// Longest wait for one health check's answer.
    pub health_timeout: Duration,
    /// Longest wait for a TCP connection to an instance.
    pub connect_timeout: Duration,
    /// Idle keep-alive connections to an instance are closed after this long.
    pub pool_idle_timeout: Duration,
    /// After the shutdown signal, the longest wait for in-flight responses.
    pub drain_timeout: Duration,
    /// Inference requests per instance at once and the queue behind them.
    pub limits: Limits,
    /// A request's `keep_alive` shorter than this is raised to it (the
    /// model's own, so a model kept loaded stays loaded).
    pub keep_alive_floor: Option<KeepAlive>,
    /// How inference requests are kept on the same instance.
    pub affinity: Affinity,
    /// Affinity's bound: an instance takes keyed requests while it serves
    /// fewer than this times the average.
    pub load_factor: f64,
    /// The `model_name` label of the vLLM-named metrics.
    pub model_name: String,
}

impl RouterConfig {
    /// Defaults for the given listen address and backends, no admin endpoint.
    pub fn new(listen: SocketAddr, backends: Vec<BackendAddr>) -> Self {
        RouterConfig {
            listen,
            admin_listen: None,
            backends,
            health_interval: Duration::from_secs(2),
            health_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            pool_idle_timeout: Duration::from_secs(90),
            drain_timeout: Duration::from_secs(25),
            limits: Limits::NONE,
            keep_alive_floor: None,
            affinity: Affinity::None,
            load_factor: DEFAULT_LOAD_FACTOR,
            model_name: String::new(),
        }
    }

    /// Everything a start-up needs that a type cannot say: at least one
    /// backend, none twice, time limits above zero.
    pub fn validate(&self) -> Result<(), String> {
        if self.backends.is_empty() {
            return Err("no Ollama instance to route to; give at least one --backend".to_owned());
        }
        for (i, backend) in self.backends.iter().enumerate() {
            if self.backends[..i].contains(backend) {
                return Err(format!("backend {backend} is given twice"));
            }
        }
        let limits = [
            ("health interval", self.health_interval),
            ("health timeout", self.health_timeout),
            ("connect timeout", self.connect_timeout),
        ];
        for (name, value) in limits {
            if value.is_zero() {
                return Err(format!("the {name} must be above zero"));
            }
        }
        if !(self.load_factor >= 1.0 && self.load_factor <= 100.0) {
            return Err(format!(
                "the affinity load factor {} is not from 1 to 100 (1.25: an instance takes keyed requests while it serves under 1.25 times the average)",
                self.load_factor
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_addresses() {
        let cases = [
            ("127.0.0.1:11434", Ok("127.0.0.1:11434")),
            ("http://127.0.0.1:11435", Ok("127.0.0.1:11435")),
            ("http://127.0.0.1:11435/", Ok("127.0.0.1:11435")),
            (" localhost:8000 ", Ok("localhost:8000")),
            ("localhost", Ok("localhost:11434")),
            ("http://localhost/", Ok("localhost:11434")),
            ("[::1]:11434", Ok("[::1]:11434")),
            ("[::1]", Ok("[::1]:11434")),
            ("", Err(())),
            ("http://", Err(())),
            ("https://127.0.0.1:11434", Err(())),
            ("127.0.0.1:11434/api", Err(())),
            ("user@127.0.0.1:11434", Err(())),
            ("127.0.0.1:", Err(())),
            ("127.0.0.1:0", Err(())),
            ("127.0.0.1:99999", Err(())),
            (":11434", Err(())),
            ("a b:1", Err(())),
        ];
        for (text, want) in cases {
            let got = text.parse::<BackendAddr>();
            match want {
                Ok(addr) => assert_eq!(got.as_ref().map(BackendAddr::as_str), Ok(addr), "{text:?}"),
                Err(()) => assert!(got.is_err(), "{text:?} was accepted: {got:?}"),
            }
        }
    }

    #[test]
    fn upstream_uris() {
        let backend: BackendAddr = "127.0.0.1:11434".parse().unwrap();
        let cases = [
            (Some("/api/generate"), "http://127.0.0.1:11434/api/generate"),
            (
                Some("/v1/models?x=1&y"),
                "http://127.0.0.1:11434/v1/models?x=1&y",
            ),
            (Some("/"), "http://127.0.0.1:11434/"),
            (Some("*"), "http://127.0.0.1:11434*"),
            (None, "http://127.0.0.1:11434/"),
        ];
        for (path, want) in cases {
            let path = path.map(|p| p.parse::<PathAndQuery>().unwrap());
            assert_eq!(
                backend.uri(path.as_ref()).unwrap().to_string(),
                want,
                "{path:?}"
            );
        }
    }

    #[test]
    fn affinities() {
        let cases = [
            ("none", Ok(Affinity::None)),
            (
                "header:X-Session-Id",
                Ok(Affinity::Header(HeaderName::from_static("x-session-id"))),
            ),
            ("prefix", Ok(Affinity::Prefix { bytes: 1024 })),
            ("prefix:256", Ok(Affinity::Prefix { bytes: 256 })),
            ("prefix:0", Err(())),
            ("prefix:2000000", Err(())),
            ("prefix:many", Err(())),
            ("header:", Err(())),
            ("header:a b", Err(())),
            ("session", Err(())),
            ("", Err(())),
        ];
        for (text, want) in cases {
            let got = text.parse::<Affinity>();
            match want {
                Ok(affinity) => assert_eq!(got, Ok(affinity), "{text:?}"),
                Err(()) => assert!(got.is_err(), "{text:?} was accepted: {got:?}"),
            }
        }
    }

    #[test]
    fn validation() {
        let a: BackendAddr = "127.0.0.1:1".parse().unwrap();
        let b: BackendAddr = "127.0.0.1:2".parse().unwrap();
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let good = RouterConfig::new(listen, vec![a.clone(), b.clone()]);
        assert_eq!(good.validate(), Ok(()));
        let mut cases = Vec::new();
        cases.push(RouterConfig::new(listen, vec![]));
        cases.push(RouterConfig::new(listen, vec![a.clone(), b, a]));
        let mut zero = good.clone();
        zero.health_interval = Duration::ZERO;
        cases.push(zero);
        let mut zero = good.clone();
        zero.health_timeout = Duration::ZERO;
        cases.push(zero);
        let mut zero = good.clone();
        zero.connect_timeout = Duration::ZERO;
        cases.push(zero);
        for factor in [0.5, 0.99, f64::NAN, 101.0] {
            let mut wrong = good.clone();
            wrong.load_factor = factor;
            cases.push(wrong);
        }
        for config in cases {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}
