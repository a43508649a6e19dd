//! What the router measures of an inference answer while it streams
//! through: the time to its first byte, and at its end the token counts the
//! instance reported. Ollama's own API ends a stream (or its one JSON
//! object) with `"done":true` and `prompt_eval_count`, `eval_count`,
//! `eval_duration` (nanoseconds; api/types.go lines 379-386, each left out
//! when zero); the OpenAI-compatible API reports `usage` in its one object
//! or, asked with `stream_options.include_usage`, in a last event before
//! `data: [DONE]` (middleware/openai.go lines 91-104). A stream that fails
//! after it began carries a last `{"error": ...}` line instead
//! (server/routes.go lines 1657-1674).
//!
//! Only the last line that can hold them is kept, so a stream costs a
//! newline search and a short substring search per frame.

use std::time::{Duration, Instant};

use memchr::memmem;
use serde::Deserialize;

use super::inference::{Api, Inference};
use super::metrics::TokenStats;

/// Longest line kept to read the counts from (a non-streamed answer is one
/// line: longer ones are counted without their tokens).
const MAX_LINE: usize = 1 << 20;

/// How an inference answer ended, as far as the router could tell.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Finished; the token counts it reported (all `None` if it reported none).
    Done(TokenStats),
    /// The instance reported an error inside a successful response.
    ReportedError,
}

/// One inference answer on its way through.
#[derive(Debug)]
pub struct Observer {
    arrived: Instant,
    first_byte: Option<Instant>,
    kind: Inference,
    /// The current line, while it is incomplete.
    line: Vec<u8>,
    /// The current line is over [`MAX_LINE`]: skipped to its end.
    skipping: bool,
    /// The last complete line that holds the counts or an error.
    last: Option<Vec<u8>>,
}

impl Observer {
    /// An answer to a request of `kind` that arrived at `arrived`.
    pub fn new(kind: Inference, arrived: Instant) -> Self {
        Observer {
            arrived,
            first_byte: None,
            kind,
            line: Vec::new(),
            skipping: false,
            last: None,
        }
    }

    /// A frame of the body came at `now`: returns the time to first byte if
    /// it is the first.
    pub fn frame(&mut self, data: &[u8], now: Instant) -> Option<Duration> {
        if data.is_empty() {
            return None;
        }
        let first = match self.first_byte {
            None => {
                self.first_byte = Some(now);
                Some(now.saturating_duration_since(self.arrived))
            }
            Some(_) => None,
        };
        if self.kind.generates {
            self.scan(data);
        }
        first
    }

    fn scan(&mut self, mut data: &[u8]) {
        while let Some(end) = memchr::memchr(b'\n', data) {
            let (head, rest) = data.split_at(end);
            if self.line.is_empty() && !self.skipping {
                self.keep_if_final(head);
            } else if !self.skipping {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                self.keep_if_final(&line);
            }
            self.line.clear();
            self.skipping = false;
            data = &rest[1..];
        }
        if self.skipping || data.is_empty() {
            return;
        }
        if self.line.len() + data.len() > MAX_LINE {
            self.line = Vec::new();
            self.skipping = true;
        } else {
            self.line.extend_from_slice(data);
        }
    }

    fn keep_if_final(&mut self, line: &[u8]) {
        let marker: &[u8] = match self.kind.api {
            Api::Ollama => b"\"done\":true",
            Api::OpenAi => b"\"usage\":{",
        };
        let payload = sse_payload(line);
        if memmem::find(payload, marker).is_some() || payload.starts_with(b"{\"error\"") {
            self.last = Some(payload.to_vec());
        }
    }

    /// The answer ended at `now`: its duration since arrival and how it ended.
    pub fn finish(mut self, now: Instant) -> (Duration, Outcome) {
        if !self.line.is_empty() && !self.skipping {
            let line = std::mem::take(&mut self.line);
            self.keep_if_final(&line);
        }
        let duration = now.saturating_duration_since(self.arrived);
        let Some(last) = self.last else {
            return (duration, Outcome::Done(TokenStats::default()));
        };
        let outcome = match self.kind.api {
            Api::Ollama => ollama_counts(&last),
            Api::OpenAi => openai_counts(&last, self.first_byte, now),
        };
        (duration, outcome)
    }
}

/// The JSON of a line: an SSE `data:` line without its field name.
fn sse_payload(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.strip_prefix(b"data:") {
        Some(rest) => rest.strip_prefix(b" ").unwrap_or(rest),
        None => line,
    }
}

#[derive(Deserialize)]
struct OllamaFinal {
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    eval_duration: Option<u64>,
}

fn ollama_counts(line: &[u8]) -> Outcome {
    match serde_json::from_slice::<OllamaFinal>(line) {
        Ok(last) if last.error.is_some() && !last.done => Outcome::ReportedError,
        // Ollama leaves zero counts out (omitempty).
        Ok(last) => Outcome::Done(TokenStats {
            prompt_tokens: Some(last.prompt_eval_count.unwrap_or(0)),
            output_tokens: Some(last.eval_count.unwrap_or(0)),
            generation_time: last.eval_duration.map(Duration::from_nanos),
        }),
        Err(_) => Outcome::Done(TokenStats::default()),
    }
}

#[derive(Deserialize)]
struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct OpenAiLast {
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

fn openai_counts(line: &[u8], first_byte: Option<Instant>, end: Instant) -> Outcome {
    match serde_json::from_slice::<OpenAiLast>(line) {
        Ok(last) if last.error.is_some() && last.usage.is_none() => Outcome::ReportedError,
        Ok(OpenAiLast {
            usage: Some(usage), ..
        }) => {
            // No generation time is reported: the stream's, from its first
            // byte to its end (none for a one-piece answer).
            let generation_time = first_byte
                .map(|first| end.saturating_duration_since(first))
                .filter(|time| !time.is_zero());
            Outcome::Done(TokenStats {
                prompt_tokens: usage.prompt_tokens,
                output_tokens: usage.completion_tokens,
                generation_time,
            })
        }
        _ => Outcome::Done(TokenStats::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENERATE: Inference = Inference::OLLAMA_GENERATION;
    const CHAT_V1: Inference = Inference::OPENAI_GENERATION;
    const EMBED: Inference = Inference::OLLAMA_EMBEDDING;

    /// Feeds `frames` one millisecond apart from arrival; the first byte's
    /// delay and the outcome.
    fn run(kind: Inference, frames: &[&str]) -> (Option<Duration>, Outcome) {
        let arrived = Instant::now();
        let mut observer = Observer::new(kind, arrived);
        let mut ttft = None;
        let mut at = arrived;
        for frame in frames {
            at += Duration::from_millis(1);
            if let Some(first) = observer.frame(frame.as_bytes(), at) {
                assert!(ttft.is_none(), "a second first byte");
                ttft = Some(first);
            }
        }
        let (duration, outcome) = observer.finish(at);
        assert_eq!(duration, at - arrived);
        (ttft, outcome)
    }

    fn done(prompt: u64, output: u64, nanos: Option<u64>) -> Outcome {
        Outcome::Done(TokenStats {
            prompt_tokens: Some(prompt),
            output_tokens: Some(output),
            generation_time: nanos.map(Duration::from_nanos),
        })
    }

    #[test]
    fn ollama_streams_and_answers() {
        let last = r#"{"model":"m","created_at":"t","response":"","done":true,"done_reason":"stop","total_duration":9,"prompt_eval_count":9,"prompt_eval_duration":5,"eval_count":20,"eval_duration":400000000}"#;
        let token = r#"{"model":"m","created_at":"t","response":"hi","done":false}"#;
        let cases: Vec<(Vec<String>, Outcome)> = vec![
            // One line a frame.
            (
                vec![
                    format!("{token}\n"),
                    format!("{token}\n"),
                    format!("{last}\n"),
                ],
                done(9, 20, Some(400_000_000)),
            ),
            // The last line cut over frames, mid-marker.
            (
                vec![
                    format!("{token}\n{}", &last[..60]),
                    last[60..70].to_owned(),
                    format!("{}\n", &last[70..]),
                ],
                done(9, 20, Some(400_000_000)),
            ),
            // A non-streamed answer: one object, no newline.
            (
                vec![last[..30].to_owned(), last[30..].to_owned()],
                done(9, 20, Some(400_000_000)),
            ),
            // Counts of zero are left out by Ollama.
            (
                vec![r#"{"response":"","done":true,"eval_duration":1}"#.to_owned()],
                done(0, 0, Some(1)),
            ),
            // An error after the stream began.
            (
                vec![
                    format!("{token}\n"),
                    "{\"error\":\"model runner has unexpectedly stopped\"}\n".to_owned(),
                ],
                Outcome::ReportedError,
            ),
            // Cut off: no counts.
            (
                vec![format!("{token}\n")],
                Outcome::Done(TokenStats::default()),
            ),
            // "done":true inside a token is not the end.
            (
                vec![r#"{"response":"\"done\":true","done":false}"#.to_owned() + "\n"],
                Outcome::Done(TokenStats::default()),
            ),
        ];
        for (frames, want) in cases {
            let frames: Vec<&str> = frames.iter().map(String::as_str).collect();
            let (ttft, outcome) = run(GENERATE, &frames);
            assert_eq!(ttft, Some(Duration::from_millis(1)), "{frames:?}");
            assert_eq!(outcome, want, "{frames:?}");
        }
    }

    #[test]
    fn openai_streams_and_answers() {
        let chunk = r#"data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}"#;
        let usage = r#"data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":20,"total_tokens":29}}"#;
        let (_, outcome) = run(
            CHAT_V1,
            &[
                &format!("{chunk}\n\n"),
                &format!("{chunk}\n\n"),
                &format!("{usage}\n\n"),
                "data: [DONE]\n\n",
            ],
        );
        // 20 tokens over the 3 ms from the first byte to the end.
        assert_eq!(outcome, done(9, 20, Some(3_000_000)));
        // Without include_usage: no counts.
        let (_, outcome) = run(CHAT_V1, &[&format!("{chunk}\n\n"), "data: [DONE]\n\n"]);
        assert_eq!(outcome, Outcome::Done(TokenStats::default()));
        // A one-piece answer: counts, no generation time.
        let (_, outcome) = run(
            CHAT_V1,
            &[r#"{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#],
        );
        assert_eq!(
            outcome,
            Outcome::Done(TokenStats {
                prompt_tokens: Some(3),
                output_tokens: Some(4),
                generation_time: None,
            })
        );
        let (_, outcome) = run(
            CHAT_V1,
            &["data: {\"error\":{\"message\":\"boom\",\"type\":\"api_error\"}}\n\n"],
        );
        assert_eq!(outcome, Outcome::ReportedError);
    }

    #[test]
    fn embeddings_are_timed_not_read() {
        let (ttft, outcome) = run(EMBED, &[r#"{"embeddings":[[0.1]],"prompt_eval_count":3}"#]);
        assert_eq!(ttft, Some(Duration::from_millis(1)));
        assert_eq!(outcome, Outcome::Done(TokenStats::default()));
    }

    #[test]
    fn an_overlong_line_is_skipped_not_kept() {
        let arrived = Instant::now();
        let mut observer = Observer::new(GENERATE, arrived);
        let big = vec![b'x'; MAX_LINE / 2 + 1];
        observer.frame(&big, arrived);
        observer.frame(&big, arrived);
        assert!(observer.line.is_empty() && observer.skipping);
        observer.frame(b"tail\n{\"done\":true,\"eval_count\":2}", arrived);
        let (_, outcome) = observer.finish(arrived);
        assert_eq!(outcome, done(0, 2, None));
    }
}
