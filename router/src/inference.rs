//! What the router reads of an inference request: which kind it is (by
//! method and path), and in its JSON body the client's `keep_alive` (raised
//! to the model's when shorter) and the beginning of the prompt (the key of
//! prefix affinity). Facts about Ollama are from its source at v0.12.6.

use std::time::Duration;

use hyper::Method;
use hyper::body::Bytes;
use serde_json::{Map, Value};

use go_duration::go_duration;

/// The API an inference path belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// Ollama's own `/api/*`: NDJSON streams (or one JSON object), the last
    /// object `"done":true` with `eval_count` and `eval_duration`.
    Ollama,
    /// The OpenAI-compatible `/v1/*`: server-sent events (or one JSON
    /// object), token counts in `usage`.
    OpenAi,
}

/// A request Ollama schedules on one of a model's `OLLAMA_NUM_PARALLEL`
/// slots (server/sched.go): generation, chat and embeddings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inference {
    pub api: Api,
    /// Generates tokens (generate, chat, completions), unlike embeddings.
    pub generates: bool,
}

impl Inference {
    /// `/api/generate`, `/api/chat`.
    pub const OLLAMA_GENERATION: Inference = Inference {
        api: Api::Ollama,
        generates: true,
    };
    /// `/api/embed`, `/api/embeddings`.
    pub const OLLAMA_EMBEDDING: Inference = Inference {
        api: Api::Ollama,
        generates: false,
    };
    /// `/v1/chat/completions`, `/v1/completions`.
    pub const OPENAI_GENERATION: Inference = Inference {
        api: Api::OpenAi,
        generates: true,
    };
    /// `/v1/embeddings`.
    pub const OPENAI_EMBEDDING: Inference = Inference {
        api: Api::OpenAi,
        generates: false,
    };
}

/// The inference request a method and path make, or `None` for every other
/// request (`/api/tags`, `/api/version`, `/api/pull`, ...), which holds no
/// slot. The paths are Ollama's (server/routes.go lines 1455-1492).
pub fn classify(method: &Method, path: &str) -> Option<Inference> {
    if method != Method::POST {
        return None;
    }
    match path {
        "/api/generate" | "/api/chat" => Some(Inference::OLLAMA_GENERATION),
        "/api/embed" | "/api/embeddings" => Some(Inference::OLLAMA_EMBEDDING),
        "/v1/chat/completions" | "/v1/completions" => Some(Inference::OPENAI_GENERATION),
        "/v1/embeddings" => Some(Inference::OPENAI_EMBEDDING),
        _ => None,
    }
}

/// How long Ollama keeps a model loaded after a request. Ordered: any time
/// is shorter than forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeepAlive {
    For(Duration),
    Forever,
}

impl KeepAlive {
    /// A request's `keep_alive` as Ollama reads it (`api.Duration`,
    /// api/types.go lines 977-1005): a number is seconds (fractions too), a
    /// string a Go duration; negative is forever. `None` for what Ollama
    /// refuses (it answers 400 itself).
    pub fn from_json(value: &Value) -> Option<KeepAlive> {
        match value {
            Value::Number(number) => {
                let seconds = number.as_f64()?;
                if seconds < 0.0 {
                    Some(KeepAlive::Forever)
                } else {
                    Duration::try_from_secs_f64(seconds)
                        .ok()
                        .map(KeepAlive::For)
                }
            }
            Value::String(text) => {
                let nanos = go_duration(text)?;
                Some(match u64::try_from(nanos) {
                    Ok(nanos) => KeepAlive::For(Duration::from_nanos(nanos)),
                    Err(_) => KeepAlive::Forever,
                })
            }
            _ => None,
        }
    }

    /// The JSON Ollama reads back as this value: `-1` for forever, else
    /// seconds.
    pub fn to_json(self) -> Value {
        match self {
            KeepAlive::Forever => Value::from(-1),
            KeepAlive::For(duration) if duration.subsec_nanos() == 0 => {
                Value::from(duration.as_secs())
            }
            KeepAlive::For(duration) => Value::from(duration.as_secs_f64()),
        }
    }
}

/// What the router does with a request body it read.
#[derive(Debug, Default, PartialEq)]
pub struct Inspected {
    /// The body to send instead (its `keep_alive` raised), if it changed.
    pub rewritten: Option<Bytes>,
    /// The key of prefix affinity, if asked for and the body has a prompt.
    pub prefix_key: Option<u64>,
}

/// What to look for in an inference request's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspection {
    /// Raise a shorter `keep_alive` to this (Ollama's API only: the
    /// OpenAI-compatible requests have no `keep_alive`, openai/openai.go).
    pub keep_alive_floor: Option<KeepAlive>,
    /// Bytes of the prompt's beginning that make the affinity key.
    pub prefix_bytes: Option<usize>,
}

impl Inspection {
    /// Whether a request of `kind` needs its body read at all.
    pub fn wanted(&self, kind: Inference) -> bool {
        (self.keep_alive_floor.is_some() && kind.api == Api::Ollama)
            || (self.prefix_bytes.is_some() && kind.generates)
    }

    /// Reads `body` (a request of `kind`): raises its `keep_alive` and
    /// computes the prefix key. A body that is not a JSON object is left
    /// alone (Ollama answers it).
    pub fn inspect(&self, kind: Inference, body: &[u8]) -> Inspected {
        let floor = self.keep_alive_floor.filter(|_| {
            kind.api == Api::Ollama && memchr::memmem::find(body, b"\"keep_alive\"").is_some()
        });
        let prefix_bytes = self.prefix_bytes.filter(|_| kind.generates);
        if floor.is_none() && prefix_bytes.is_none() {
            return Inspected::default();
        }
        let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(body) else {
            return Inspected::default();
        };
        let prefix_key = prefix_bytes.and_then(|limit| prefix_key(&object, limit));
        let rewritten = floor.and_then(|floor| {
            let raised = raise_keep_alive(&mut object, floor)?;
            tracing::debug!(?raised, ?floor, "keep_alive raised to the model's");
            serde_json::to_vec(&Value::Object(object))
                .ok()
                .map(Bytes::from)
        });
        Inspected {
            rewritten,
            prefix_key,
        }
    }
}

/// Raises `object.keep_alive` to `floor` when it is shorter; returns the
/// value it had.
fn raise_keep_alive(object: &mut Map<String, Value>, floor: KeepAlive) -> Option<KeepAlive> {
    let value = object.get_mut("keep_alive")?;
    let asked = KeepAlive::from_json(value)?;
    if asked >= floor {
        return None;
    }
    *value = floor.to_json();
    Some(asked)
}

/// The affinity key of a request: the model and the first `limit` bytes of
/// its prompt as the instance will see it (system prompt, then the prompt
/// or the messages, roles included), hashed. `None` without any prompt.
pub fn prefix_key(object: &Map<String, Value>, limit: usize) -> Option<u64> {
    let mut text = Vec::with_capacity(limit.min(4096));
    let mut push = |part: &str| {
        if text.len() < limit {
            let room = limit - text.len();
            text.extend_from_slice(&part.as_bytes()[..part.len().min(room)]);
            text.push(0);
        }
    };
    if let Some(system) = object.get("system").and_then(Value::as_str) {
        push(system);
    }
    match object.get("prompt") {
        Some(Value::String(prompt)) => push(prompt),
        // OpenAI completions may send several prompts: the first decides.
        Some(Value::Array(prompts)) => {
            if let Some(first) = prompts.first().and_then(Value::as_str) {
                push(first);
            }
        }
        _ => {}
    }
    for message in object
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(role) = message.get("role").and_then(Value::as_str) {
            push(role);
        }
        match message.get("content") {
            Some(Value::String(content)) => push(content),
            // OpenAI content parts: their text, in order.
            Some(Value::Array(parts)) => {
                for part in parts {
                    if let Some(part) = part.get("text").and_then(Value::as_str) {
                        push(part);
                    }
                }
            }
            _ => {}
        }
    }
    if text.is_empty() {
        return None;
    }
    let model = object.get("model").and_then(Value::as_str).unwrap_or("");
    Some(fnv1a(&[model.as_bytes(), &[0xff], &text]))
}

/// FNV-1a, 64 bits, over the parts in order: a stable hash of a few bytes.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|part| part.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inference_paths() {
        let cases = [
            ("POST", "/api/generate", Some((Api::Ollama, true))),
            ("POST", "/api/chat", Some((Api::Ollama, true))),
            ("POST", "/api/embed", Some((Api::Ollama, false))),
            ("POST", "/api/embeddings", Some((Api::Ollama, false))),
            ("POST", "/v1/chat/completions", Some((Api::OpenAi, true))),
            ("POST", "/v1/completions", Some((Api::OpenAi, true))),
            ("POST", "/v1/embeddings", Some((Api::OpenAi, false))),
            ("GET", "/api/generate", None),
            ("POST", "/api/pull", None),
            ("POST", "/api/show", None),
            ("GET", "/api/tags", None),
            ("GET", "/v1/models", None),
            ("POST", "/api/generate/", None),
        ];
        for (method, path, want) in cases {
            let method: Method = method.parse().unwrap();
            let got = classify(&method, path).map(|k| (k.api, k.generates));
            assert_eq!(got, want, "{method} {path}");
        }
    }

    #[test]
    fn keep_alive_as_ollama_reads_it() {
        let secs = |s| Some(KeepAlive::For(Duration::from_secs(s)));
        let cases = [
            (json!(-1), Some(KeepAlive::Forever)),
            (json!(-0.5), Some(KeepAlive::Forever)),
            (json!("-1s"), Some(KeepAlive::Forever)),
            (json!("-1m"), Some(KeepAlive::Forever)),
            (json!(0), secs(0)),
            (json!("0"), secs(0)),
            (json!("0s"), secs(0)),
            (json!(300), secs(300)),
            (
                json!(1.5),
                Some(KeepAlive::For(Duration::from_millis(1500))),
            ),
            (json!("30m"), secs(1800)),
            (json!("1h30m"), secs(5400)),
            // Ollama refuses these (a string needs a unit): left to it.
            (json!("300"), None),
            (json!("soon"), None),
            (json!(true), None),
            (json!(null), None),
            (json!(1e300), None),
        ];
        for (value, want) in cases {
            assert_eq!(KeepAlive::from_json(&value), want, "{value}");
        }
        assert!(KeepAlive::For(Duration::MAX) < KeepAlive::Forever);
        assert_eq!(KeepAlive::Forever.to_json(), json!(-1));
        assert_eq!(
            KeepAlive::For(Duration::from_secs(1800)).to_json(),
            json!(1800)
        );
        assert_eq!(
            KeepAlive::For(Duration::from_millis(1500)).to_json(),
            json!(1.5)
        );
    }

    const GENERATE: Inference = Inference::OLLAMA_GENERATION;
    const CHAT_V1: Inference = Inference::OPENAI_GENERATION;
    const EMBED: Inference = Inference::OLLAMA_EMBEDDING;

    fn raised(floor: KeepAlive, kind: Inference, body: &Value) -> Option<Value> {
        let inspection = Inspection {
            keep_alive_floor: Some(floor),
            prefix_bytes: None,
        };
        let inspected = inspection.inspect(kind, body.to_string().as_bytes());
        inspected
            .rewritten
            .map(|bytes| serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn a_shorter_keep_alive_is_raised_to_the_floor() {
        let thirty_minutes = KeepAlive::For(Duration::from_secs(1800));
        type Case = (KeepAlive, Inference, Value, Option<Value>);
        let cases: Vec<Case> = vec![
            // A pinned model: any finite keep_alive, unload (0) included, becomes -1.
            (
                KeepAlive::Forever,
                GENERATE,
                json!({"model": "m", "prompt": "", "keep_alive": 0}),
                Some(json!({"model": "m", "prompt": "", "keep_alive": -1})),
            ),
            (
                KeepAlive::Forever,
                EMBED,
                json!({"model": "m", "input": "x", "keep_alive": "5m"}),
                Some(json!({"model": "m", "input": "x", "keep_alive": -1})),
            ),
            (
                KeepAlive::Forever,
                GENERATE,
                json!({"model": "m", "keep_alive": -1}),
                None,
            ),
            (
                KeepAlive::Forever,
                GENERATE,
                json!({"model": "m", "keep_alive": "-5m"}),
                None,
            ),
            (KeepAlive::Forever, GENERATE, json!({"model": "m"}), None),
            // A model kept 30 minutes: longer asks stay, shorter ones are raised.
            (
                thirty_minutes,
                GENERATE,
                json!({"model": "m", "keep_alive": "1h"}),
                None,
            ),
            (
                thirty_minutes,
                GENERATE,
                json!({"model": "m", "keep_alive": "10s"}),
                Some(json!({"model": "m", "keep_alive": 1800})),
            ),
            // What Ollama refuses is passed on for it to refuse.
            (
                KeepAlive::Forever,
                GENERATE,
                json!({"model": "m", "keep_alive": "300"}),
                None,
            ),
            // The OpenAI-compatible API has no keep_alive.
            (
                KeepAlive::Forever,
                CHAT_V1,
                json!({"model": "m", "keep_alive": 0}),
                None,
            ),
            // "keep_alive" inside a prompt is not the field.
            (
                KeepAlive::Forever,
                GENERATE,
                json!({"model": "m", "prompt": "\"keep_alive\": 0"}),
                None,
            ),
        ];
        for (floor, kind, body, want) in cases {
            assert_eq!(raised(floor, kind, &body), want, "{floor:?} {body}");
        }
        let inspection = Inspection {
            keep_alive_floor: Some(KeepAlive::Forever),
            prefix_bytes: None,
        };
        for garbage in [&b"not json"[..], b"[1,2]", b"{\"keep_alive\": 0", b""] {
            assert_eq!(inspection.inspect(GENERATE, garbage), Inspected::default());
        }
    }

    fn key(body: &Value, limit: usize) -> Option<u64> {
        let Value::Object(object) = body else {
            panic!("not an object");
        };
        prefix_key(object, limit)
    }

    #[test]
    fn prefix_keys_follow_the_prompt_beginning() {
        let long = "You are a helpful assistant. ".repeat(10);
        let chat = |question: &str| {
            json!({"model": "m", "messages": [
                {"role": "system", "content": long},
                {"role": "user", "content": question},
            ]})
        };
        // Same beginning within the limit: same key; different beyond it: same key.
        assert_eq!(key(&chat("a"), 64), key(&chat("b"), 64));
        // Within the limit, a different question: another key.
        assert_ne!(key(&chat("a"), 4096), key(&chat("b"), 4096));
        // The model is part of the key.
        let mut other_model = chat("a");
        other_model["model"] = json!("n");
        assert_ne!(key(&chat("a"), 4096), key(&other_model, 4096));
        // Generate: system then prompt; OpenAI prompts and content parts.
        assert_eq!(
            key(&json!({"model": "m", "system": "s", "prompt": "p"}), 100),
            key(
                &json!({"model": "m", "system": "s", "prompt": ["p", "q"]}),
                100
            ),
        );
        assert_eq!(
            key(
                &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
                100
            ),
            key(
                &json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}),
                100
            ),
        );
        // Roles count: the same words from another role are another prompt.
        assert_ne!(
            key(
                &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
                100
            ),
            key(
                &json!({"model": "m", "messages": [{"role": "assistant", "content": "hi"}]}),
                100
            ),
        );
        assert_eq!(key(&json!({"model": "m"}), 100), None);
        assert_eq!(key(&json!({"model": "m", "messages": []}), 100), None);
        // A multi-byte character cut at the limit is fine: bytes, not text.
        assert!(key(&json!({"model": "m", "prompt": "ééé"}), 3).is_some());
    }

    #[test]
    fn inspection_is_skipped_when_nothing_is_asked() {
        let none = Inspection {
            keep_alive_floor: None,
            prefix_bytes: None,
        };
        assert!(!none.wanted(GENERATE));
        let floor = Inspection {
            keep_alive_floor: Some(KeepAlive::Forever),
            prefix_bytes: None,
        };
        assert!(floor.wanted(GENERATE) && floor.wanted(EMBED) && !floor.wanted(CHAT_V1));
        let prefix = Inspection {
            keep_alive_floor: None,
            prefix_bytes: Some(256),
        };
        assert!(prefix.wanted(GENERATE) && prefix.wanted(CHAT_V1) && !prefix.wanted(EMBED));
    }
}
