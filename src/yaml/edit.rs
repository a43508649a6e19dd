//! Changing documents of a YAML stream in place: only the nodes whose value
//! changes are rewritten, so comments, order, quoting and every other byte
//! of the user's text stay as written.
//!
//! For each changed document the old value is walked beside the new one:
//! entries added to a block mapping are written after its last entry at its
//! indentation, items added to a block sequence before the item they
//! precede; any other change (a removal, a flow collection, a scalar, a
//! mapping with a `<<` merge) rewrites that node as JSON, which YAML reads
//! the same. The result is read back and each document compared with the
//! value it must have; a document that differs is written again whole
//! (losing its comments, never its meaning), and if that still differed the
//! whole stream would be.

use std::collections::HashMap;

use serde_json::Value;

use super::emit::{quoted, to_yaml};
use super::load::{Document, Node, Shape, load};
use super::text::{Edit, apply};

/// `text`, whose documents are `documents`, with the documents numbered in
/// `targets` (1-based, as [`Document::number`]) changed to those values.
pub fn rewrite(text: &str, documents: &[Document], targets: &HashMap<usize, Value>) -> String {
    let expected: Vec<&Value> = documents
        .iter()
        .map(|d| targets.get(&d.number).unwrap_or(&d.root.value))
        .collect();
    let changed: Vec<(&Document, &Value)> = documents
        .iter()
        .zip(&expected)
        .filter(|(d, v)| d.root.value != ***v)
        .map(|(d, v)| (d, *v))
        .collect();
    if changed.is_empty() {
        return text.to_owned();
    }
    let mut whole: Vec<usize> = Vec::new();
    for _ in 0..2 {
        let mut edits = Vec::new();
        for (document, target) in &changed {
            if whole.contains(&document.number) {
                edits.push(replace_root(text, &document.root, target));
            } else {
                merge(text, &document.root, target, None, &mut edits);
            }
        }
        let out = apply(text, edits);
        let wrong: Vec<usize> = match load(&out) {
            Ok(read) if read.len() == documents.len() => read
                .iter()
                .zip(&expected)
                .filter(|(d, v)| d.root.value != ***v)
                .map(|(d, _)| d.number)
                .collect(),
            _ => changed.iter().map(|(d, _)| d.number).collect(),
        };
        if wrong.is_empty() {
            return out;
        }
        if wrong.iter().all(|n| whole.contains(n)) {
            break;
        }
        whole.extend(wrong);
    }
    expected
        .iter()
        .map(|value| format!("---\n{}", to_yaml(value)))
        .collect()
}

/// Whether every key of `entries` is a string (a Kubernetes object's are).
fn has_string_keys(entries: &[(Node, Node)]) -> bool {
    entries.iter().all(|(k, _)| key(k).is_some())
}

/// Deletions of the lines of the block-mapping entries that `wanted` lacks,
/// or `None` when one of them does not start its own line.
fn removed_block_entries(
    text: &str,
    entries: &[(Node, Node)],
    wanted: &serde_json::Map<String, Value>,
) -> Option<Vec<Edit>> {
    entries
        .iter()
        .filter(|(k, _)| key(k).is_some_and(|k| !wanted.contains_key(k)))
        .map(|(k, v)| {
            let start = own_line_start(text, k.start)?;
            Some(Edit::replace(start..line_end(text, k.end.max(v.end)), ""))
        })
        .collect()
}

/// Deletions of the flow-mapping entries that `wanted` lacks, each with
/// the separator before it (after it, for the first), or `None` when every
/// entry goes (the mapping is then rewritten).
fn removed_flow_entries(
    entries: &[(Node, Node)],
    wanted: &serde_json::Map<String, Value>,
) -> Option<Vec<Edit>> {
    let gone = |i: usize| key(&entries[i].0).is_some_and(|k| !wanted.contains_key(k));
    if (0..entries.len()).all(gone) && !entries.is_empty() {
        return None;
    }
    let first_kept = (0..entries.len()).find(|&i| !gone(i));
    Some(
        (0..entries.len())
            .filter(|&i| gone(i))
            .map(|i| match first_kept {
                // Before the first kept entry: up to the next entry.
                Some(kept) if i < kept => {
                    Edit::replace(entries[i].0.start..entries[i + 1].0.start, "")
                }
                // After it: from the end of the entry before.
                _ => Edit::replace(entries[i - 1].1.end..entries[i].1.end, ""),
            })
            .collect(),
    )
}

/// The start of the line holding `at`, when only spaces precede `at` on it.
fn own_line_start(text: &str, at: usize) -> Option<usize> {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..at]
        .chars()
        .all(|c| c == ' ')
        .then_some(line_start)
}

/// Merges into each entry of `entries` its value in `wanted`, and yields
/// the entries of `wanted` that are not there yet, in `wanted`'s order.
/// `column` is the column of the mapping holding `entries`, if block style.
fn merge_entries<'w>(
    text: &str,
    entries: &[(Node, Node)],
    wanted: &'w serde_json::Map<String, Value>,
    column: Option<usize>,
    edits: &mut Vec<Edit>,
) -> impl Iterator<Item = (&'w String, &'w Value)> {
    let mut added = Vec::new();
    for (name, value) in wanted {
        match entries.iter().find(|(k, _)| key(k) == Some(name)) {
            Some((_, old)) => merge(text, old, value, column, edits),
            None => added.push((name, value)),
        }
    }
    added.into_iter()
}

/// Edits that turn `node` into `target`. `parent_column` is the column of
/// the mapping or sequence holding `node`, if any.
fn merge(
    text: &str,
    node: &Node,
    target: &Value,
    parent_column: Option<usize>,
    edits: &mut Vec<Edit>,
) {
    if node.value == *target {
        return;
    }
    match (&node.shape, target) {
        (
            Shape::Map {
                flow: false,
                merges: false,
                entries,
            },
            Value::Object(wanted),
        ) if has_string_keys(entries) => {
            let Some(removals) = removed_block_entries(text, entries, wanted) else {
                edits.push(replace(text, node, target, parent_column));
                return;
            };
            let kept: Vec<&(Node, Node)> = entries
                .iter()
                .filter(|(k, _)| key(k).is_some_and(|k| wanted.contains_key(k)))
                .collect();
            let added: serde_json::Map<String, Value> = wanted
                .iter()
                .filter(|(name, _)| !kept.iter().any(|(k, _)| key(k) == Some(*name)))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            if kept.is_empty() && !added.is_empty() {
                edits.push(replace(text, node, target, parent_column));
                return;
            }
            edits.extend(removals);
            merge_entries(text, entries, wanted, Some(node.column), edits).for_each(drop);
            if !added.is_empty() {
                let last = kept
                    .iter()
                    .map(|(k, v)| k.end.max(v.end))
                    .max()
                    .unwrap_or(node.end);
                edits.push(insert_lines(
                    text,
                    line_end(text, last),
                    &to_yaml(&Value::Object(added)),
                    node.column,
                ));
            }
        }
        (
            Shape::Map {
                flow: true,
                merges: false,
                entries,
            },
            Value::Object(wanted),
        ) if has_string_keys(entries) => {
            let Some(removals) = removed_flow_entries(entries, wanted) else {
                edits.push(replace(text, node, target, parent_column));
                return;
            };
            let any_kept = entries.len() > removals.len();
            edits.extend(removals);
            let added: Vec<String> = merge_entries(text, entries, wanted, None, edits)
                .map(|(name, value)| format!("{}: {}", quoted(name), json(value)))
                .collect();
            edits.push(flow_append(node, !any_kept, &added));
        }
        (Shape::Seq { flow: true, items }, Value::Array(wanted))
            if wanted.len() >= items.len()
                && items
                    .iter()
                    .zip(wanted)
                    .all(|(i, w)| same_item(&i.value, w)) =>
        {
            for (item, value) in items.iter().zip(wanted) {
                merge(text, item, value, None, edits);
            }
            let added: Vec<String> = wanted[items.len()..].iter().map(json).collect();
            edits.push(flow_append(node, items.is_empty(), &added));
        }
        (Shape::Seq { flow: false, items }, Value::Array(wanted)) => {
            if let Some(local) = merge_sequence(text, node, items, wanted) {
                edits.extend(local);
            } else {
                edits.push(replace(text, node, target, parent_column));
            }
        }
        _ => edits.push(replace(text, node, target, parent_column)),
    }
}

fn key(node: &Node) -> Option<&String> {
    match &node.value {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// Edits that turn a block sequence into `wanted` by editing items in
/// place, inserting new ones and deleting the lines of those that go, or
/// `None` when items would have to be reordered.
fn merge_sequence(text: &str, node: &Node, items: &[Node], wanted: &[Value]) -> Option<Vec<Edit>> {
    let mut edits = Vec::new();
    let (mut next, mut taken) = (0, 0);
    while next < items.len() || taken < wanted.len() {
        let item = items.get(next);
        let value = wanted.get(taken);
        if let (Some(item), Some(value)) = (item, value)
            && same_item(&item.value, value)
        {
            merge(text, item, value, Some(node.column), &mut edits);
            next += 1;
            taken += 1;
        } else if let Some(item) =
            item.filter(|item| !wanted[taken..].iter().any(|v| same_item(&item.value, v)))
        {
            let start = dash_line_start(text, item)?;
            edits.push(Edit::replace(start..line_end(text, item.end), ""));
            next += 1;
        } else if let Some(value) =
            value.filter(|value| !items[next..].iter().any(|i| same_item(&i.value, value)))
        {
            let block = to_yaml(&Value::Array(vec![value.clone()]));
            let at = match item {
                Some(item) => dash_line_start(text, item)?,
                None => line_end(text, node.end),
            };
            edits.push(insert_lines(text, at, &block, node.column));
            taken += 1;
        } else {
            return None;
        }
    }
    Some(edits)
}

/// Whether two sequence items are the same entry (equal, or objects with the
/// same `name`, as Kubernetes keys containers, env and volumes), so that one
/// is edited into the other rather than replaced.
fn same_item(old: &Value, new: &Value) -> bool {
    old == new
        || matches!((old, new), (Value::Object(a), Value::Object(b)) if a.get("name") == b.get("name"))
}

/// The start of the line of an item's `-`, when the line holds nothing before it.
fn dash_line_start(text: &str, item: &Node) -> Option<usize> {
    let before = text[..item.start].trim_end_matches(' ');
    let dash = before.strip_suffix('-')?;
    let line_start = dash.rfind('\n').map_or(0, |i| i + 1);
    dash[line_start..]
        .chars()
        .all(|c| c == ' ')
        .then_some(line_start)
}

/// The offset just past the line break that ends the line holding `at`.
fn line_end(text: &str, at: usize) -> usize {
    text[at..].find('\n').map_or(text.len(), |i| at + i + 1)
}

/// An insertion of `block` (lines at column 0) at `at`, indented to `column`.
fn insert_lines(text: &str, at: usize, block: &str, column: usize) -> Edit {
    let indent = " ".repeat(column);
    let mut lines = String::new();
    if at == text.len() && !text.is_empty() && !text.ends_with('\n') {
        lines.push('\n');
    }
    for line in block.lines() {
        if !line.is_empty() {
            lines.push_str(&indent);
        }
        lines.push_str(line);
        lines.push('\n');
    }
    Edit::insert(at, lines)
}

/// An insertion of `added` (entries or items as text) before the closing
/// bracket of a flow collection.
fn flow_append(node: &Node, empty: bool, added: &[String]) -> Edit {
    let separator = if empty { "" } else { ", " };
    let text = if added.is_empty() {
        String::new()
    } else {
        format!("{separator}{}", added.join(", "))
    };
    Edit::insert(node.end.saturating_sub(1), text)
}

fn json(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Rewrites `node` as JSON in flow style, indented past its parent when it
/// begins a line of a block collection.
fn replace(text: &str, node: &Node, target: &Value, parent_column: Option<usize>) -> Edit {
    let json = json(target);
    let starts_line = text[..node.start]
        .rsplit('\n')
        .next()
        .is_some_and(|before| before.chars().all(|c| c == ' '));
    let pad = match parent_column {
        Some(parent) if starts_line && node.column <= parent => {
            " ".repeat(parent + 2 - node.column)
        }
        _ => String::new(),
    };
    Edit::replace(node.start..node.end, format!("{pad}{json}"))
}

/// Rewrites a whole document's root: as block YAML when it is a block
/// collection at the start of a line, as JSON otherwise.
fn replace_root(text: &str, root: &Node, target: &Value) -> Edit {
    let block = matches!(
        root.shape,
        Shape::Map { flow: false, .. } | Shape::Seq { flow: false, .. }
    );
    if block && root.column == 0 && (target.is_object() || target.is_array()) {
        let yaml = to_yaml(target);
        Edit::replace(root.start..root.end, yaml.trim_end_matches('\n').to_owned())
    } else {
        replace(text, root, target, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Rewrites the first document of `text` to `target`; the result must
    /// read back as `target` (and the other documents as they were).
    fn rewritten(text: &str, target: Value) -> String {
        let documents = load(text).unwrap();
        let targets = HashMap::from([(1, target.clone())]);
        let out = rewrite(text, &documents, &targets);
        let read = load(&out).unwrap();
        assert_eq!(read[0].root.value, target, "{out}");
        for (before, after) in documents.iter().zip(&read).skip(1) {
            assert_eq!(before.root.value, after.root.value, "{out}");
        }
        out
    }

    #[test]
    fn additions_are_written_in_place_and_keep_the_rest() {
        let cases: &[(&str, Value, &str)] = &[
            (
                "# head\na: 1 # one\nb:\n  c: x\n",
                json!({"a": 1, "b": {"c": "x", "d": "off"}}),
                "# head\na: 1 # one\nb:\n  c: x\n  d: \"off\"\n",
            ),
            (
                "list:\n- name: a\n  v: 1\n- name: c\n",
                json!({"list": [{"name": "a", "v": 1}, {"name": "b"}, {"name": "c"}]}),
                "list:\n- name: a\n  v: 1\n- name: b\n- name: c\n",
            ),
            (
                "m: {a: 1}\ns: [x]\n",
                json!({"m": {"a": 1, "b": "yes"}, "s": ["x", "y"]}),
                "m: {a: 1, \"b\": \"yes\"}\ns: [x, \"y\"]\n",
            ),
            ("a: 1", json!({"a": 1, "b": 2}), "a: 1\nb: 2\n"),
            (
                "a: |\n  text\n# between\nb: 2\n",
                json!({"a": "text\n", "b": 2, "c": 3}),
                "a: |\n  text\n# between\nb: 2\nc: 3\n",
            ),
        ];
        for (text, target, expected) in cases {
            assert_eq!(rewritten(text, target.clone()), *expected, "{text:?}");
        }
    }

    #[test]
    fn removals_delete_their_lines_and_keep_the_rest() {
        let cases: &[(&str, Value, &str)] = &[
            // A block mapping entry, with its nested block value.
            (
                "# head\na: 1 # one\nb:\n  c: x\n  d:\n  - 1\ne: 2\n",
                json!({"a": 1, "b": {"c": "x"}, "e": 2}),
                "# head\na: 1 # one\nb:\n  c: x\ne: 2\n",
            ),
            // Block sequence items, first, middle and last, with their lines.
            (
                "list:\n- name: a\n  v: 1\n- name: b\n- {name: c}\n- name: d\n",
                json!({"list": [{"name": "b"}, {"name": "d"}]}),
                "list:\n- name: b\n- name: d\n",
            ),
            // Removed and added in one sequence.
            (
                "list:\n- name: a\n- name: b\n",
                json!({"list": [{"name": "x"}, {"name": "b"}, {"name": "z"}]}),
                "list:\n- name: x\n- name: b\n- name: z\n",
            ),
            // Flow mapping entries: last, first, and between.
            (
                "p: {a: 1, b: 2}\nq: {a: 1, b: 2}\nr: {a: 1, b: 2, c: 3}\n",
                json!({"p": {"a": 1}, "q": {"b": 2}, "r": {"a": 1, "c": 3}}),
                "p: {a: 1}\nq: {b: 2}\nr: {a: 1, c: 3}\n",
            ),
        ];
        for (text, target, expected) in cases {
            assert_eq!(rewritten(text, target.clone()), *expected, "{text:?}");
        }
    }

    #[test]
    fn other_changes_still_mean_the_target() {
        let cases: &[(&str, Value)] = &[
            ("a: 1\nb: 2\n", json!({"a": 1})),
            ("a:\n- x\n- y\n", json!({"a": ["y"]})),
            ("a:\n- x\n", json!({"a": {"k": "v"}})),
            ("a: &x [1]\nb: *x\n", json!({"a": [1, 2], "b": [1]})),
            (
                "base: &b {k: 1}\nm:\n  <<: *b\n  j: 2\n",
                json!({"base": {"k": 1}, "m": {"k": 1, "j": 3, "n": 4}}),
            ),
            ("{\"a\": 1}", json!({"a": 1, "b": [true]})),
            ("a: x\n---\nb: y\n", json!({"a": "z"})),
            ("- a\n- b\n", json!(["b", "a"])),
            ("a: \"x\" # note\n", json!({"a": "on"})),
        ];
        for (text, target) in cases {
            rewritten(text, target.clone());
        }
    }

    #[test]
    fn unchanged_streams_come_back_byte_for_byte() {
        let text = "# c\n---\na: 0400 # octal\n...\n---\nb: [off]\n";
        let documents = load(text).unwrap();
        let same = HashMap::from([(1, json!({"a": 256}))]);
        assert_eq!(rewrite(text, &documents, &same), text);
    }
}
