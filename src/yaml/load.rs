//! A YAML stream read into JSON values the way kubectl reads it, keeping
//! where every node is in the text so that a writer can change one node and
//! leave every other byte as it was.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Value};

use super::resolve::{Plain, resolve_plain};

/// One node of a document: its meaning and its place in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node means, as kubectl would send it to the apiserver.
    pub value: Value,
    /// How the node is written.
    pub shape: Shape,
    /// Byte offset of the node's first character (a block sequence starts at
    /// its first `-`, a block scalar at its `|` or `>`).
    pub start: usize,
    /// Byte offset just past the node's last character (trailing blanks,
    /// comments and line breaks excluded).
    pub end: usize,
    /// Column of `start`, in characters from the start of its line.
    pub column: usize,
}

/// How a node is written.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A scalar; `plain` when unquoted and not a block scalar.
    Scalar { plain: bool },
    /// `*name`: a repeat of an anchored node.
    Alias,
    /// A mapping: each key (as a string node) with its value.
    Map {
        flow: bool,
        /// Whether a `<<` merge key adds entries written elsewhere.
        merges: bool,
        entries: Vec<(Node, Node)>,
    },
    /// A sequence.
    Seq { flow: bool, items: Vec<Node> },
}

/// A document of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 1-based position in the stream, counting empty documents.
    pub number: usize,
    /// The document's root node (a null scalar for an empty document).
    pub root: Node,
}

/// Why a stream is not YAML kubectl would read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// 1-based position of the document in the stream.
    pub document: usize,
    /// 1-based line in the stream.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Reads every document of `text`.
pub fn load(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut loader = Loader {
        text,
        byte_at: text
            .char_indices()
            .map(|(i, _)| i)
            .chain([text.len()])
            .collect(),
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        path: Vec::new(),
        document: 0,
    };
    loader.stream()
}

struct Loader<'a> {
    text: &'a str,
    /// Byte offset of each character index (the parser counts characters).
    byte_at: Vec<usize>,
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Value>,
    /// Where the loader is, for messages (`spec.containers[0]`).
    path: Vec<String>,
    document: usize,
}

type Loaded<T> = Result<T, YamlError>;

impl<'a> Loader<'a> {
    fn next(&mut self) -> Loaded<(Event<'a>, Span)> {
        match self.parser.next_event() {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => Err(YamlError {
                document: self.document.max(1),
                line: e.marker().line(),
                column: e.marker().col() + 1,
                message: e.info().to_owned(),
            }),
            None => Err(self.error_at(self.text.len(), "the stream ends early")),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        self.byte_at
            .get(char_index)
            .copied()
            .unwrap_or(self.text.len())
    }

    fn error_at(&self, byte: usize, message: impl Into<String>) -> YamlError {
        let before = &self.text[..byte.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        YamlError {
            document: self.document.max(1),
            line,
            column,
            message: message.into(),
        }
    }

    fn column(&self, byte: usize) -> usize {
        self.text[..byte]
            .rsplit('\n')
            .next()
            .unwrap_or("")
            .chars()
            .count()
    }

    fn here(&self) -> String {
        if self.path.is_empty() {
            "the document".to_owned()
        } else {
            let mut path = String::new();
            for part in &self.path {
                if !part.starts_with('[') && !path.is_empty() {
                    path.push('.');
                }
                path.push_str(part);
            }
            path
        }
    }

    fn stream(&mut self) -> Loaded<Vec<Document>> {
        let mut documents = Vec::new();
        loop {
            match self.next()?.0 {
                Event::StreamStart | Event::Nothing => {}
                Event::StreamEnd => return Ok(documents),
                Event::DocumentStart(_) => {
                    self.document += 1;
                    self.anchors.clear();
                    let (event, span) = self.next()?;
                    let root = self.node(event, span)?;
                    match self.next()?.0 {
                        Event::DocumentEnd => {}
                        other => {
                            return Err(self.error_at(
                                root.end,
                                format!("expected the end of the document, found {other:?}"),
                            ));
                        }
                    }
                    documents.push(Document {
                        number: self.document,
                        root,
                    });
                }
                other => {
                    return Err(self.error_at(0, format!("unexpected {other:?}")));
                }
            }
        }
    }

    fn node(&mut self, event: Event<'a>, span: Span) -> Loaded<Node> {
        let (start, end) = (self.byte(span.start.index()), self.byte(span.end.index()));
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value = self.scalar(&text, style, tag.as_deref(), start)?;
                let start = match style {
                    ScalarStyle::Literal | ScalarStyle::Folded => {
                        self.text[..start].rfind(['|', '>']).unwrap_or(start)
                    }
                    _ => start,
                };
                let end = start.max(start + self.text[start..end.max(start)].trim_end().len());
                self.anchor(anchor, &value);
                Ok(Node {
                    value,
                    shape: Shape::Scalar {
                        plain: style == ScalarStyle::Plain,
                    },
                    column: self.column(start),
                    start,
                    end,
                })
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned().ok_or_else(|| {
                    self.error_at(start, format!("{}: an alias names no anchor", self.here()))
                })?;
                Ok(Node {
                    value,
                    shape: Shape::Alias,
                    column: self.column(start),
                    start,
                    end,
                })
            }
            Event::MappingStart(anchor, _) => self.mapping(anchor, start, end),
            Event::SequenceStart(anchor, _) => self.sequence(anchor, start, end),
            other => Err(self.error_at(start, format!("unexpected {other:?}"))),
        }
    }

    fn anchor(&mut self, anchor: usize, value: &Value) {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
    }

    /// Whether the collection starting with the token at `start..end` is
    /// written in flow style (`{`/`[`, perhaps after an anchor or tag).
    fn is_flow(&self, start: usize, end: usize, bracket: char) -> bool {
        self.text[start..end].trim_end().ends_with(bracket)
    }

    fn scalar(
        &self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&Tag>,
        at: usize,
    ) -> Loaded<Value> {
        let plain = match tag {
            None if style != ScalarStyle::Plain => return Ok(Value::String(text.to_owned())),
            None => resolve_plain(text),
            Some(tag) if !tag.is_yaml_core_schema() => return Ok(Value::String(text.to_owned())),
            Some(tag) => match tag.suffix.as_str() {
                "str" | "timestamp" => return Ok(Value::String(text.to_owned())),
                "binary" => {
                    let cleaned: String = text.split_whitespace().collect();
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(cleaned)
                        .map_err(|e| {
                            self.error_at(
                                at,
                                format!("{}: !!binary is not base64: {e}", self.here()),
                            )
                        })?;
                    return String::from_utf8(bytes).map(Value::String).map_err(|_| {
                        self.error_at(
                            at,
                            format!(
                                "{}: !!binary is not UTF-8 text, which JSON cannot carry",
                                self.here()
                            ),
                        )
                    });
                }
                suffix => {
                    let resolved = resolve_plain(text);
                    let fits = matches!(
                        (&resolved, suffix),
                        (Plain::Value(Value::Bool(_)), "bool")
                            | (Plain::Value(Value::Null), "null")
                            | (Plain::Value(Value::Number(_)), "int" | "float")
                            | (Plain::Merge, "merge")
                    );
                    if !fits {
                        return Err(self.error_at(
                            at,
                            format!("{}: cannot decode `{text}` as !!{suffix}", self.here()),
                        ));
                    }
                    resolved
                }
            },
        };
        match plain {
            Plain::Value(value) => Ok(value),
            Plain::Merge => Ok(Value::String(text.to_owned())),
            Plain::NotJson(what) => Err(self.error_at(
                at,
                format!(
                    "{}: `{text}` is the float {what}, which JSON cannot carry (kubectl refuses it too); quote it if it is meant as a string",
                    self.here()
                ),
            )),
        }
    }

    fn mapping(&mut self, anchor: usize, token_start: usize, token_end: usize) -> Loaded<Node> {
        let flow = self.is_flow(token_start, token_end, '{');
        let mut out = Map::new();
        let mut merged = Map::new();
        let mut merges = false;
        let mut starts: HashMap<String, usize> = HashMap::new();
        let mut entries = Vec::new();
        let end = loop {
            let (event, span) = self.next()?;
            if let Event::MappingEnd = event {
                break self.byte(span.end.index());
            }
            let key_is_merge = matches!(&event, Event::Scalar(text, ScalarStyle::Plain, _, None) if text == "<<")
                || matches!(&event, Event::Scalar(_, _, _, Some(tag)) if tag.is_yaml_core_schema() && tag.suffix == "merge");
            let mut key = self.node(event, span)?;
            let name = self.key_string(&key)?;
            key.value = Value::String(name.clone());
            self.path.push(name.clone());
            let (event, span) = self.next()?;
            let value = self.node(event, span)?;
            self.path.pop();
            if key_is_merge {
                merges = true;
                self.merge(&value, &mut merged)?;
            } else {
                // Where each key starts; lines are counted only for an
                // error (counting for every key is quadratic in the text).
                if let Some(first) = starts.insert(name.clone(), key.start) {
                    let first = self.error_at(first, "").line;
                    let line = self.error_at(key.start, "").line;
                    return Err(self.error_at(
                        key.start,
                        format!(
                            "{}: key {name:?} appears twice (lines {first} and {line}); kubectl refuses this (\"already set in map\"): keep one",
                            self.here()
                        ),
                    ));
                }
                out.insert(name, value.value.clone());
            }
            entries.push((key, value));
        };
        for (key, value) in merged {
            out.entry(key).or_insert(value);
        }
        let value = Value::Object(out);
        self.anchor(anchor, &value);
        let start = match (flow, entries.first()) {
            (false, Some((key, _))) => key.start,
            _ => token_end.saturating_sub(1).max(token_start),
        };
        let end = match (flow, entries.last()) {
            (false, Some((_, value))) => value.end,
            _ => end,
        };
        Ok(Node {
            value,
            shape: Shape::Map {
                flow,
                merges,
                entries,
            },
            column: self.column(start),
            start,
            end,
        })
    }

    /// A map key as JSON has it: sigs.k8s.io/yaml writes integer, float and
    /// boolean keys as their text and refuses others.
    fn key_string(&self, key: &Node) -> Loaded<String> {
        match &key.value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Null => Err(self.error_at(
                key.start,
                format!(
                    "{}: a map key is empty or null, which JSON cannot carry",
                    self.here()
                ),
            )),
            Value::Array(_) | Value::Object(_) => Err(self.error_at(
                key.start,
                format!(
                    "{}: a map key is a map or a list, which JSON cannot carry",
                    self.here()
                ),
            )),
        }
    }

    /// The entries a `<<` merge key brings: a map, or a list of maps of which
    /// earlier ones win. Keys written in the mapping itself win over all.
    fn merge(&self, value: &Node, merged: &mut Map<String, Value>) -> Loaded<()> {
        let sources: Vec<&Value> = match &value.value {
            Value::Object(_) => vec![&value.value],
            Value::Array(items) => items.iter().collect(),
            _ => Vec::new(),
        };
        if sources.is_empty() && !value.value.is_object() {
            return Err(self.error_at(
                value.start,
                format!(
                    "{}: a `<<` merge needs a map or a list of maps",
                    self.here()
                ),
            ));
        }
        for source in sources {
            let Value::Object(map) = source else {
                return Err(self.error_at(
                    value.start,
                    format!(
                        "{}: a `<<` merge needs a map or a list of maps",
                        self.here()
                    ),
                ));
            };
            for (k, v) in map {
                merged.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        Ok(())
    }

    fn sequence(&mut self, anchor: usize, token_start: usize, token_end: usize) -> Loaded<Node> {
        let flow = self.is_flow(token_start, token_end, '[');
        let mut items = Vec::new();
        let end = loop {
            let (event, span) = self.next()?;
            if let Event::SequenceEnd = event {
                break self.byte(span.end.index());
            }
            self.path.push(format!("[{}]", items.len()));
            let item = self.node(event, span)?;
            self.path.pop();
            items.push(item);
        };
        let value = Value::Array(items.iter().map(|i| i.value.clone()).collect());
        self.anchor(anchor, &value);
        let start = match (flow, items.first()) {
            (false, Some(first)) => {
                let before = self.text[..first.start].trim_end_matches(' ');
                if before.ends_with('-') {
                    before.len() - 1
                } else {
                    first.start
                }
            }
            _ => token_end.saturating_sub(1).max(token_start),
        };
        let end = match (flow, items.last()) {
            (false, Some(last)) => last.end,
            _ => end,
        };
        Ok(Node {
            value,
            shape: Shape::Seq { flow, items },
            column: self.column(start),
            start,
            end,
        })
    }
}
