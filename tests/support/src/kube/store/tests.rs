//! Unit tests of the store: field ownership and conflicts, times, strategic merge, selectors.

use super::strategic::strategic_merge;
use super::*;

static CM: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "configmaps",
    singular: "configmap",
    kind: "ConfigMap",
    short_names: &[],
    has_status: false,
};

fn writer(manager: &str) -> Write<'static> {
    Write {
        rt: &CM,
        namespace: "ns",
        manager: manager.to_owned(),
        dry_run: false,
    }
}

fn cm(data: Value) -> Vec<u8> {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
        .to_string()
        .into_bytes()
}

fn owners(store: &Store) -> Vec<(String, Value)> {
    let obj = store.get(&CM, "ns", "c").unwrap();
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().to_owned(),
                e["fieldsV1"].clone(),
            )
        })
        .collect()
}

#[test]
fn lists_are_owned_and_conflict_as_a_whole() {
    let mut store = Store::default();
    let mut list = |manager: &str, items: Value, force: bool| {
        let body =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "x": items});
        store
            .apply(&writer(manager), "c", body.to_string().as_bytes(), force)
            .map(|o| o.changed)
    };
    assert!(list("helm", json!(["a"]), false).unwrap());
    assert!(
        list("irsa", json!(["a"]), false).unwrap(),
        "shared: managedFields changed"
    );
    let conflict = list("irsa", json!(["a", "b"]), false).unwrap_err();
    assert_eq!(
        conflict.message,
        r#"Apply failed with 1 conflict: conflict with "helm": .x"#
    );
    assert!(list("irsa", json!(["a", "b"]), true).unwrap());
    assert_eq!(owners(&store), [("irsa".to_owned(), json!({"f:x": {}}))]);
}

#[test]
fn fields_removed_by_an_update_are_owned_by_nobody() {
    let mut store = Store::default();
    store
        .apply(
            &writer("irsa"),
            "c",
            &cm(json!({"a": "1", "b": "2"})),
            false,
        )
        .unwrap();
    let patch = json!({"data": {"a": null}}).to_string();
    store
        .patch(&writer("editor"), "c", PatchKind::Merge, patch.as_bytes())
        .unwrap();
    assert_eq!(
        owners(&store),
        [("irsa".to_owned(), json!({"f:data": {"f:b": {}}}))]
    );
    // Nobody owns `a` now, so re-applying it is no conflict.
    let again = store
        .apply(
            &writer("irsa"),
            "c",
            &cm(json!({"a": "1", "b": "2"})),
            false,
        )
        .unwrap();
    assert!(again.changed);
    assert_eq!(again.body["data"], json!({"a": "1", "b": "2"}));
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let mut store = Store::default();
    store
        .apply(
            &writer("helm"),
            "c",
            &cm(json!({"a": "1", "b": "1"})),
            false,
        )
        .unwrap();
    store
        .patch(
            &writer("kubectl"),
            "c",
            PatchKind::Merge,
            br#"{"data":{"c":"1"}}"#,
        )
        .unwrap();
    let err = store
        .apply(
            &writer("irsa"),
            "c",
            &cm(json!({"a": "2", "b": "2", "c": "2"})),
            false,
        )
        .unwrap_err();
    assert_eq!(
        err.message,
        "Apply failed with 3 conflicts: conflicts with \"helm\":\n- .data.a\n- .data.b\nconflicts with \"kubectl\" using v1:\n- .data.c"
    );
    assert_eq!(err.body()["details"]["causes"].as_array().unwrap().len(), 3);
}

#[test]
fn times_are_rfc3339() {
    assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
    assert_eq!(format_time(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(format_time(1_767_225_599), "2025-12-31T23:59:59Z");
}

#[test]
fn strategic_merge_merges_maps_replaces_lists_and_honours_directives() {
    let mut t = json!({"a": {"b": 1, "c": 2}, "l": [1, 2], "r": {"x": 1}, "d": {"y": 1}});
    strategic_merge(
        &mut t,
        &json!({
            "a": {"c": null, "e": 3},
            "l": [3],
            "$setElementOrder/l": [3],
            "r": {"$patch": "replace", "z": 2},
            "d": {"$patch": "delete"},
        }),
    );
    assert_eq!(t, json!({"a": {"b": 1, "e": 3}, "l": [3], "r": {"z": 2}}));
}

#[test]
fn selectors() {
    let labels = json!({"app": "epinio", "tier": "api"});
    let lookup = |k: &str| labels.get(k).and_then(Value::as_str);
    let ok = |s: &str| {
        parse_selector(s, SelectorKind::Label)
            .unwrap()
            .iter()
            .all(|r| r.matches(lookup))
    };
    assert!(ok("app=epinio,tier==api"));
    assert!(ok("app, !missing, tier!=web"));
    assert!(!ok("app=other"));
    assert!(!ok("!app"));
    assert!(parse_selector("app in (a,b)", SelectorKind::Label).is_err());
    assert!(parse_selector("spec.x=1", SelectorKind::Field).is_err());
    assert!(parse_selector("metadata.name=x", SelectorKind::Field).is_ok());
}
