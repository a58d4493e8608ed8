//! Field paths and leaf sets: the vocabulary of the stand-in's field ownership
//! (server-side apply) and its `managedFields` encoding.
//!
//! A path is the list of map keys from the object root. Maps are recursed,
//! everything else (scalars, lists, empty maps) is an atomic leaf: the stand-in
//! knows no list merge keys, so a list is owned as a whole.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

pub(crate) type Path = Vec<String>;
pub(crate) type FieldSet = BTreeSet<Path>;

/// Fields that identify the object or that the server itself maintains. The
/// real server never lists them in `managedFields`, so no manager can own (or
/// conflict on) them.
fn is_unowned(path: &[String]) -> bool {
    match path {
        [top] => top == "apiVersion" || top == "kind",
        [meta, field] if meta == "metadata" => matches!(
            field.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "managedFields"
                | "selfLink"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
        ),
        _ => false,
    }
}

/// Every ownable leaf of `v`.
pub(crate) fn leaves(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &mut Path, out: &mut FieldSet) {
        match v {
            Value::Object(m) if !m.is_empty() || path.is_empty() => {
                for (k, child) in m {
                    path.push(k.clone());
                    if !is_unowned(path) {
                        walk(child, path, out);
                    }
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

pub(crate) fn value_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(v, |cur, key| cur.as_object()?.get(key))
}

/// Whether going from `old` to `new` changes the field in the sense of field
/// ownership. A map staying a map is not a change of that node: its children
/// are fields of their own, as in structured-merge-diff.
pub(crate) fn is_changed(old: Option<&Value>, new: Option<&Value>) -> bool {
    match (old, new) {
        (Some(Value::Object(_)), Some(Value::Object(_))) => false,
        (a, b) => a != b,
    }
}

/// `a` is a prefix of `b` or the other way round: changing one touches the other.
pub(crate) fn related(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// Removes the field at `path`, then every map that this left empty (but never
/// `metadata` or the root), mirroring how the real, typed server drops empty
/// `omitempty` maps such as `metadata.annotations`.
pub(crate) fn remove_at(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let Some(Value::Object(parent)) = value_at_mut(v, parents) else {
        return;
    };
    if parent.remove(last).is_none() {
        return;
    }
    let mut depth = parents.len();
    while depth > 0 {
        let here = &path[..depth];
        let empty = matches!(value_at(v, here), Some(Value::Object(m)) if m.is_empty());
        if !empty || here == ["metadata"] {
            break;
        }
        if let Some(Value::Object(up)) = value_at_mut(v, &here[..depth - 1]) {
            up.remove(&here[depth - 1]);
        }
        depth -= 1;
    }
}

fn value_at_mut<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter()
        .try_fold(v, |cur, key| cur.as_object_mut()?.get_mut(key))
}

/// Server-side apply merge: maps merge key by key, anything else in `patch`
/// replaces what is in `target`. Unlike a JSON merge patch, nothing is deleted
/// here; removal of fields a manager stopped applying is a separate step.
pub(crate) fn apply_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, pv) in p {
                match t.get_mut(k) {
                    Some(tv) if tv.is_object() && pv.is_object() => apply_merge(tv, pv),
                    _ => {
                        t.insert(k.clone(), pv.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Drops `null` members of maps, recursively: a typed server never stores them.
pub(crate) fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, child| !child.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Encodes a field set in the `FieldsV1` format of `managedFields`:
/// `{"f:metadata":{"f:annotations":{"f:x":{}}}}`, with `".": {}` marking a
/// node that is owned itself and also has owned children.
pub(crate) fn fields_v1(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Node {
        owned: bool,
        children: BTreeMap<String, Node>,
    }
    fn render(node: &Node) -> Value {
        let mut m = Map::new();
        if node.owned && !node.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, child) in &node.children {
            m.insert(format!("f:{k}"), render(child));
        }
        Value::Object(m)
    }
    let mut root = Node::default();
    for path in set {
        let node = path.iter().fold(&mut root, |node, key| {
            node.children.entry(key.clone()).or_default()
        });
        node.owned = true;
    }
    render(&root)
}

/// Reads a `FieldsV1` document back into a field set. List items (`k:`,
/// `v:`, `i:` keys) collapse into their list, which the stand-in owns whole.
pub(crate) fn parse_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &mut Path, out: &mut FieldSet) {
        let Value::Object(m) = v else { return };
        if m.is_empty() && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, child) in m {
            match k.strip_prefix("f:") {
                Some(name) => {
                    path.push(name.to_owned());
                    walk(child, path, out);
                    path.pop();
                }
                None if !path.is_empty() => {
                    out.insert(path.clone());
                }
                None => {}
            }
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// `.metadata.annotations.eks.amazonaws.com/role-arn`, the notation the real
/// server uses in conflict messages.
pub(crate) fn display(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Path {
        s.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn leaves_skip_identity_and_treat_lists_and_empty_maps_as_atomic() {
        let v = json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "a", "namespace": "n", "labels": {"x": "1"}, "annotations": {}},
            "secrets": [{"name": "s"}],
        });
        let got: Vec<Path> = leaves(&v).into_iter().collect();
        assert_eq!(
            got,
            vec![
                p("metadata.annotations"),
                p("metadata.labels.x"),
                p("secrets")
            ]
        );
    }

    #[test]
    fn map_to_map_is_not_a_change_of_the_node() {
        assert!(!is_changed(Some(&json!({})), Some(&json!({"a": 1}))));
        assert!(is_changed(Some(&json!("a")), Some(&json!({}))));
        assert!(is_changed(Some(&json!(1)), None));
        assert!(!is_changed(None, None));
    }

    #[test]
    fn remove_prunes_emptied_maps_but_keeps_metadata() {
        let mut v = json!({"metadata": {"annotations": {"a": "1"}}, "data": {"k": "v"}});
        remove_at(&mut v, &p("metadata.annotations.a"));
        remove_at(&mut v, &p("data.k"));
        assert_eq!(v, json!({"metadata": {}}));
    }

    #[test]
    fn fields_v1_marks_nodes_owned_alongside_children() {
        let set: FieldSet = [p("metadata.labels"), p("metadata.labels.a"), p("data.x")]
            .into_iter()
            .collect();
        assert_eq!(
            fields_v1(&set),
            json!({"f:data": {"f:x": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}})
        );
    }

    #[test]
    fn fields_v1_round_trips_and_collapses_list_items() {
        let set: FieldSet = [p("metadata.labels"), p("metadata.labels.a"), p("data.x")]
            .into_iter()
            .collect();
        assert_eq!(parse_fields_v1(&fields_v1(&set)), set);
        let listy =
            json!({"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {".": {}, "f:image": {}}}}});
        assert_eq!(
            parse_fields_v1(&listy).into_iter().collect::<Vec<_>>(),
            vec![p("spec.containers")]
        );
    }

    #[test]
    fn apply_merge_keeps_unmentioned_keys_and_replaces_lists() {
        let mut t = json!({"a": {"b": 1, "c": [1, 2]}, "d": 4});
        apply_merge(&mut t, &json!({"a": {"c": [3]}, "e": {}}));
        assert_eq!(t, json!({"a": {"b": 1, "c": [3]}, "d": 4, "e": {}}));
    }

    #[test]
    fn display_matches_server_notation() {
        let path = vec![
            "metadata".to_owned(),
            "annotations".to_owned(),
            "eks.amazonaws.com/role-arn".to_owned(),
        ];
        assert_eq!(
            display(&path),
            ".metadata.annotations.eks.amazonaws.com/role-arn"
        );
    }
}
