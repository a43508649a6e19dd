//! `json_patch::diff` (json-patch 4.2) with the right-hand document taken by
//! value: the values of `add` and `replace` operations are moved out of it
//! instead of cloned. Same algorithm, same operations in the same order (the
//! tests below and `tests/patch_equivalence.rs` compare with `json_patch::diff`).

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::{Map, Value};

/// The JSON Patch that turns `left` into `right`, as `json_patch::diff` makes it.
pub fn diff(left: &Value, right: Value) -> Patch {
    let mut patch = Patch::default();
    let mut pointer = PointerBuf::new();
    diff_value(left, right, &mut pointer, &mut patch);
    patch
}

fn diff_value(left: &Value, right: Value, pointer: &mut PointerBuf, patch: &mut Patch) {
    match (left, right) {
        (Value::Object(left), Value::Object(right)) => diff_object(left, right, pointer, patch),
        (Value::Array(left), Value::Array(right)) => diff_array(left, right, pointer, patch),
        (left, right) if *left == right => {}
        (_, right) => patch.0.push(PatchOperation::Replace(ReplaceOperation {
            path: pointer.clone(),
            value: right,
        })),
    }
}

fn diff_array(left: &[Value], right: Vec<Value>, pointer: &mut PointerBuf, patch: &mut Patch) {
    let len = left.len().max(right.len());
    let mut right = right.into_iter();
    let mut shift = 0usize;
    for idx in 0..len {
        pointer.push_back(idx - shift);
        match (left.get(idx), right.next()) {
            (Some(left), Some(right)) => diff_value(left, right, pointer, patch),
            (Some(_), None) => {
                shift += 1;
                patch.0.push(PatchOperation::Remove(RemoveOperation {
                    path: pointer.clone(),
                }));
            }
            (None, Some(right)) => patch.0.push(PatchOperation::Add(AddOperation {
                path: pointer.clone(),
                value: right,
            })),
            (None, None) => unreachable!("idx < max of both lengths"),
        }
        pointer.pop_back();
    }
}

fn diff_object(
    left: &Map<String, Value>,
    right: Map<String, Value>,
    pointer: &mut PointerBuf,
    patch: &mut Patch,
) {
    // Keys of `left` that `right` lacks, found before `right` is consumed;
    // their removals come after the additions and replacements, as in json-patch.
    let removed: Vec<&String> = left.keys().filter(|k| !right.contains_key(*k)).collect();
    for (key, right_value) in right {
        pointer.push_back(&key);
        match left.get(&key) {
            Some(left_value) => diff_value(left_value, right_value, pointer, patch),
            None => patch.0.push(PatchOperation::Add(AddOperation {
                path: pointer.clone(),
                value: right_value,
            })),
        }
        pointer.pop_back();
    }
    for key in removed {
        pointer.push_back(key);
        patch.0.push(PatchOperation::Remove(RemoveOperation {
            path: pointer.clone(),
        }));
        pointer.pop_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_operations_as_json_patch_diff() {
        let values = [
            json!(null),
            json!(1),
            json!("a"),
            json!([]),
            json!({}),
            json!([1, 2, 3]),
            json!([1, {"a": [2, 3]}, 4, 5]),
            json!([0, {"a": [2]}]),
            json!({"a": 1, "b": [1, 2], "c": {"d": "e"}, "a/b~c": 2}),
            json!({"b": [1, 2, 3], "c": {"d": "f", "g": []}, "z": null, "a/b~c": 3}),
            json!({"a": {"b": {"c": [1, {"d": 2}]}}, "x": [[1], [2, 3]]}),
            json!({"a": {"b": {"c": [1, {"d": 3}, 4]}}, "x": [[1, 2]]}),
        ];
        for left in &values {
            for right in &values {
                assert_eq!(
                    diff(left, right.clone()),
                    json_patch::diff(left, right),
                    "{left} -> {right}"
                );
            }
        }
    }
}
