//! Storing a write on a [`Store`] (validation, server metadata, generation, resource version,
//! managers' times, dry run), the Deployment controller, uids and generated names.

use super::super::fields;
use super::super::status::ApiError;
use super::super::validate;
use super::object::without_meta_and_status;
use super::ownership::render;
use super::{now, uid, Key, ManagerKey, Outcome, Store, Stored, Write, SERVER_META};

impl Store {
    /// Validates and stores `new` (already normalized, ownership computed),
    /// unless it is identical to `old` or this is a dry run.
    pub(super) fn commit(
        &mut self,
        w: &Write,
        name: &str,
        old: Option<Stored>,
        mut new: Stored,
        actor: &ManagerKey,
    ) -> Result<Outcome, ApiError> {
        let errs = validate::object_meta(&new.obj).map_err(ApiError::bad_request)?;
        if !errs.is_empty() {
            return Err(ApiError::invalid(w.rt, name, &errs));
        }
        let key = Key::new(w.rt, w.namespace, name);
        if old.is_none() && self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(w.rt, name));
        }

        let now = now();
        server_meta(&mut new, old.as_ref(), self.uids + 1, &now);
        for entry in new.managers.values_mut() {
            entry
                .fields
                .retain(|p| fields::value_at(&new.obj, p).is_some());
        }
        new.managers.retain(|_, e| !e.fields.is_empty());

        let content_changed = old.as_ref().is_none_or(|o| o.obj != new.obj);
        if let Some(old) = &old {
            if !content_changed && same_owners(old, &new) {
                return Ok(Outcome {
                    status: 200,
                    body: render(old),
                    changed: false,
                });
            }
            if without_meta_and_status(&old.obj) != without_meta_and_status(&new.obj) {
                let generation = old.obj["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                new.obj["metadata"]["generation"] = generation.into();
            }
        }

        stamp_times(&mut new, old.as_ref(), actor, content_changed, &now);

        let status = if old.is_some() { 200 } else { 201 };
        if w.dry_run {
            if old.is_none() {
                if let Some(meta) = new.obj["metadata"].as_object_mut() {
                    meta.remove("resourceVersion");
                }
            }
            return Ok(Outcome {
                status,
                body: render(&new),
                changed: false,
            });
        }
        self.revision += 1;
        if old.is_none() {
            self.uids += 1;
        }
        new.obj["metadata"]["resourceVersion"] = self.revision.to_string().into();
        let generation = new.obj["metadata"]["generation"].as_i64().unwrap_or(1);
        let moved = old
            .as_ref()
            .is_none_or(|o| o.obj["metadata"]["generation"].as_i64() != Some(generation));
        if self.rollout_delay.is_some() && w.rt.kind == "Deployment" && moved {
            self.rollouts
                .insert(key.clone(), (generation, std::time::Instant::now()));
        }
        let body = render(&new);
        self.objects.insert(key, new);
        Ok(Outcome {
            status,
            body,
            changed: true,
        })
    }

    /// Turns on the Deployment controller: a Deployment whose generation moves (a new
    /// template, a restart) reports the rollout as the real controller does only after
    /// `delay`: until then `status.observedGeneration` lags and the new replicas are not
    /// counted; then every wanted replica (`spec.replicas`, default 1) is updated, ready and
    /// available. Off by default: `status` stays as written.
    pub fn enable_rollouts(&mut self, delay: std::time::Duration) {
        self.rollout_delay = Some(delay);
    }

    /// Finish the rollouts whose time has come (called before every request is served).
    pub fn settle_rollouts(&mut self) {
        let Some(delay) = self.rollout_delay else {
            return;
        };
        let due: Vec<(Key, i64)> = self
            .rollouts
            .iter()
            .filter(|(_, (_, at))| at.elapsed() >= delay)
            .map(|(k, (g, _))| (k.clone(), *g))
            .collect();
        for (key, generation) in due {
            self.rollouts.remove(&key);
            let Some(stored) = self.objects.get_mut(&key) else {
                continue;
            };
            let replicas = stored.obj["spec"]["replicas"].as_i64().unwrap_or(1);
            self.revision += 1;
            stored.obj["status"] = serde_json::json!({
                "observedGeneration": generation,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            });
            stored.obj["metadata"]["resourceVersion"] = self.revision.to_string().into();
        }
    }

    pub(super) fn next_uid(&mut self) -> String {
        self.uids += 1;
        uid(self.uids)
    }

    /// `generateName` plus five characters from the apiserver's alphabet,
    /// derived from a counter so runs are repeatable.
    pub(super) fn generate_name(&self, w: &Write, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut seed = self.revision.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ self.uids;
        loop {
            let suffix: String = (0..5)
                .map(|i| ALPHABET[((seed >> (i * 5)) % ALPHABET.len() as u64) as usize] as char)
                .collect();
            let name = format!("{prefix}{suffix}");
            if !self
                .objects
                .contains_key(&Key::new(w.rt, w.namespace, &name))
            {
                return name;
            }
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
    }
}

/// Server-owned metadata: kept from `old`, or for a new object its uid (`next_uid`), creation
/// time and first generation.
fn server_meta(new: &mut Stored, old: Option<&Stored>, next_uid: u64, now: &str) {
    let meta = new.obj["metadata"]
        .as_object_mut()
        .expect("normalize guarantees metadata");
    match old {
        Some(old) => {
            for field in SERVER_META.iter().filter(|f| **f != "managedFields") {
                if let Some(v) = old.obj["metadata"].get(*field) {
                    meta.insert((*field).into(), v.clone());
                }
            }
        }
        None => {
            meta.insert("uid".into(), uid(next_uid).into());
            meta.insert("creationTimestamp".into(), now.into());
            meta.insert("generation".into(), 1.into());
        }
    }
}

/// The same managers own the same fields.
fn same_owners(old: &Stored, new: &Stored) -> bool {
    old.managers.len() == new.managers.len()
        && old
            .managers
            .iter()
            .zip(&new.managers)
            .all(|((ka, a), (kb, b))| {
                ka == kb && a.fields == b.fields && a.api_version == b.api_version
            })
}

/// The writer's entry is stamped when it changed something; entries
/// that merely lost fields keep their time, as in the real server.
fn stamp_times(
    new: &mut Stored,
    old: Option<&Stored>,
    actor: &ManagerKey,
    content_changed: bool,
    now: &str,
) {
    for (k, entry) in new.managers.iter_mut() {
        let previous = old.and_then(|o| o.managers.get(k));
        let writer_moved =
            k == actor && (content_changed || previous.is_none_or(|p| p.fields != entry.fields));
        if entry.time.is_empty() || writer_moved {
            entry.time = now.to_owned();
        }
    }
}
