//! The fake's state: objects, the global resourceVersion, the retained event
//! history, open watches and the test switches.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::resources::{RESOURCES, Res, by_kind};
use crate::{FakeApiError, OutageMode, RequestRecord};

/// `(namespace, name)`; the namespace is `""` for cluster-scoped objects.
pub(crate) type Key = (String, String);

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One recorded change (one resourceVersion).
#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) rv: u64,
    pub(crate) res: Res,
    pub(crate) key: Key,
    pub(crate) kind: ChangeKind,
    /// The new state; for a deletion the last state, stamped with the
    /// deletion's resourceVersion (as the real server sends it).
    pub(crate) obj: Arc<Value>,
    /// The state before the change (`None` for an addition).
    pub(crate) prev: Option<Arc<Value>>,
}

/// What an open watch is told.
#[derive(Debug)]
pub(crate) enum WatchMsg {
    Change(Arc<Change>),
    /// A bookmark at this resourceVersion.
    Bookmark(u64),
    /// Send a 410 Expired ERROR event and end.
    Expire,
    /// End the stream cleanly.
    Close,
}

#[derive(Debug)]
pub(crate) struct WatcherReg {
    pub(crate) id: u64,
    pub(crate) res: Res,
    pub(crate) tx: UnboundedSender<WatchMsg>,
}

/// Everything behind the fake's one lock.
#[derive(Debug)]
pub(crate) struct State {
    /// The latest resourceVersion handed out.
    pub(crate) rv: u64,
    pub(crate) objects: Vec<BTreeMap<Key, Arc<Value>>>,
    /// Changes with `rv > compacted`, oldest first.
    pub(crate) history: VecDeque<Arc<Change>>,
    /// Watches and exact lists from a resourceVersion below this are gone.
    pub(crate) compacted: u64,
    pub(crate) history_limit: Option<usize>,
    pub(crate) watchers: Vec<WatcherReg>,
    next_watcher: u64,
    next_uid: u64,
    pub(crate) mcs_crds: bool,
    pub(crate) outage: bool,
    /// Bumped when an outage starts; connections opened before are cut.
    pub(crate) outage_epoch: u64,
    pub(crate) outage_mode: OutageMode,
    pub(crate) page_limit: Option<usize>,
    pub(crate) bookmark_interval: Option<Duration>,
    pub(crate) watch_timeout_cap: Option<Duration>,
    pub(crate) response_delay: Duration,
    pub(crate) forbidden: HashSet<Res>,
    pub(crate) log: Vec<RequestRecord>,
}

/// The first resourceVersion is `FIRST_RV + 1`, so `"0"` never names a state.
const FIRST_RV: u64 = 100;

impl State {
    pub(crate) fn new() -> Self {
        Self {
            rv: FIRST_RV,
            objects: RESOURCES.iter().map(|_| BTreeMap::new()).collect(),
            history: VecDeque::new(),
            compacted: FIRST_RV,
            history_limit: None,
            watchers: Vec::new(),
            next_watcher: 0,
            next_uid: 0,
            mcs_crds: true,
            outage: false,
            outage_epoch: 0,
            outage_mode: OutageMode::default(),
            page_limit: None,
            bookmark_interval: Some(Duration::from_secs(1)),
            watch_timeout_cap: None,
            response_delay: Duration::ZERO,
            forbidden: HashSet::new(),
            log: Vec::new(),
        }
    }

    /// Whether a resource is currently served (its CRD is installed).
    pub(crate) fn served(&self, res: Res) -> bool {
        !RESOURCES[res].crd || self.mcs_crds
    }

    /// Creates or updates an object; returns it as stored.
    pub(crate) fn apply(&mut self, obj: Value) -> Result<Value, FakeApiError> {
        let Value::Object(mut map) = obj else {
            return Err(FakeApiError::Invalid("not a JSON object".into()));
        };
        let api_version = map
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
        let res = by_kind(api_version, kind).ok_or_else(|| FakeApiError::UnknownKind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        })?;
        let def = &RESOURCES[res];
        if !self.served(res) {
            return Err(FakeApiError::CrdAbsent(def.kind.to_string()));
        }
        let meta = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| FakeApiError::Invalid("metadata is not an object".into()))?;
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            return Err(FakeApiError::Invalid("metadata.name is missing".into()));
        }
        let ns = if def.namespaced {
            let ns = meta
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("default");
            let ns = if ns.is_empty() { "default" } else { ns }.to_string();
            meta.insert("namespace".into(), Value::String(ns.clone()));
            ns
        } else {
            meta.remove("namespace");
            String::new()
        };
        meta.remove("resourceVersion");
        let key = (ns, name);
        let existing = self.objects[res].get(&key).cloned();
        match &existing {
            Some(old) => {
                let old_meta = &old["metadata"];
                for field in ["uid", "creationTimestamp"] {
                    meta.insert(field.into(), old_meta[field].clone());
                }
            }
            None => {
                if !meta.get("uid").is_some_and(Value::is_string) {
                    self.next_uid += 1;
                    let uid = format!("00000000-0000-4000-8000-{:012x}", self.next_uid);
                    meta.insert("uid".into(), Value::String(uid));
                }
                if !meta.get("creationTimestamp").is_some_and(Value::is_string) {
                    meta.insert("creationTimestamp".into(), "2025-01-01T00:00:00Z".into());
                }
            }
        }
        let mut obj = Value::Object(map);
        if let Some(old) = &existing {
            let mut old_plain = (**old).clone();
            if let Some(m) = old_plain["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            if old_plain == obj {
                // No change: the real server does not bump the resourceVersion.
                return Ok((**old).clone());
            }
        }
        self.rv += 1;
        let rv = self.rv;
        obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let obj = Arc::new(obj);
        self.objects[res].insert(key.clone(), obj.clone());
        let kind = if existing.is_some() {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        self.record(Change {
            rv,
            res,
            key,
            kind,
            obj: obj.clone(),
            prev: existing,
        });
        Ok((*obj).clone())
    }

    /// Deletes an object; returns it as it was.
    pub(crate) fn delete(&mut self, res: Res, key: &Key) -> Option<Value> {
        let old = self.objects[res].remove(key)?;
        self.rv += 1;
        let rv = self.rv;
        let mut last = (*old).clone();
        last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        self.record(Change {
            rv,
            res,
            key: key.clone(),
            kind: ChangeKind::Deleted,
            obj: Arc::new(last),
            prev: Some(old.clone()),
        });
        Some((*old).clone())
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        if let Some(limit) = self.history_limit {
            while self.history.len() > limit {
                if let Some(old) = self.history.pop_front() {
                    self.compacted = old.rv;
                }
            }
        }
        let res = change.res;
        self.watchers
            .retain(|w| w.res != res || w.tx.send(WatchMsg::Change(change.clone())).is_ok());
    }

    /// Drops all retained history: older resourceVersions become gone.
    pub(crate) fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    pub(crate) fn set_history_limit(&mut self, limit: Option<usize>) {
        self.history_limit = limit;
        if let Some(limit) = limit {
            while self.history.len() > limit {
                if let Some(old) = self.history.pop_front() {
                    self.compacted = old.rv;
                }
            }
        }
    }

    /// Sends `msg()` to every open watch of resources `which` selects.
    pub(crate) fn tell_watchers(
        &mut self,
        which: impl Fn(Res) -> bool,
        msg: impl Fn() -> WatchMsg,
    ) {
        self.watchers
            .retain(|w| !which(w.res) || w.tx.send(msg()).is_ok());
    }

    pub(crate) fn register_watcher(&mut self, res: Res) -> (u64, UnboundedReceiver<WatchMsg>) {
        let (tx, rx) = unbounded_channel();
        self.next_watcher += 1;
        let id = self.next_watcher;
        self.watchers.push(WatcherReg { id, res, tx });
        (id, rx)
    }

    pub(crate) fn unregister_watcher(&mut self, id: u64) {
        self.watchers.retain(|w| w.id != id);
    }

    /// The changes to `res` after `rv`, oldest first (`rv >= compacted`).
    pub(crate) fn changes_since(&self, res: Res, rv: u64) -> Vec<Arc<Change>> {
        let start = self.history.partition_point(|c| c.rv <= rv);
        self.history
            .range(start..)
            .filter(|c| c.res == res)
            .cloned()
            .collect()
    }

    /// The objects of `res` (in `ns` if given) as they were at `rv`, sorted
    /// by key, starting after `after`. `None` if `rv` is compacted away.
    pub(crate) fn snapshot(
        &self,
        res: Res,
        rv: u64,
        ns: Option<&str>,
        after: Option<&Key>,
    ) -> Option<Vec<(Key, Arc<Value>)>> {
        if rv < self.compacted {
            return None;
        }
        // The state at `rv` of every key changed since: the `prev` of its
        // first change after `rv`.
        let mut undo: HashMap<&Key, Option<&Arc<Value>>> = HashMap::new();
        if rv < self.rv {
            for c in self.changes_since_ref(res, rv) {
                undo.entry(&c.key).or_insert(c.prev.as_ref());
            }
        }
        let in_range = |k: &Key| ns.is_none_or(|ns| k.0 == ns) && after.is_none_or(|a| k > a);
        let lower = match (after, ns) {
            (Some(a), _) => Bound::Excluded(a.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let upper = match ns {
            Some(ns) => Bound::Excluded((format!("{ns}\0"), String::new())),
            None => Bound::Unbounded,
        };
        let mut out: Vec<(Key, Arc<Value>)> = self.objects[res]
            .range((lower, upper))
            .filter(|(k, _)| !undo.contains_key(k) && in_range(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let before = out.len();
        for (k, v) in &undo {
            if let Some(v) = v
                && in_range(k)
            {
                out.push(((*k).clone(), (*v).clone()));
            }
        }
        if out.len() != before {
            out.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Some(out)
    }

    fn changes_since_ref(&self, res: Res, rv: u64) -> impl Iterator<Item = &Arc<Change>> {
        let start = self.history.partition_point(|c| c.rv <= rv);
        self.history.range(start..).filter(move |c| c.res == res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_name;
    use serde_json::json;

    fn svc(ns: &str, name: &str, port: u16) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "namespace": ns}, "spec": {"ports": [{"port": port}]}})
    }

    fn names(v: &[(Key, Arc<Value>)]) -> Vec<String> {
        v.iter().map(|(k, _)| format!("{}/{}", k.0, k.1)).collect()
    }

    #[test]
    fn snapshots_at_past_versions() {
        let mut s = State::new();
        let res = by_name("services").unwrap();
        s.apply(svc("a", "x", 1)).unwrap();
        s.apply(svc("b", "y", 1)).unwrap();
        let rv1 = s.rv;
        s.apply(svc("a", "z", 1)).unwrap();
        s.apply(svc("a", "x", 2)).unwrap();
        s.delete(res, &("b".into(), "y".into()));
        assert_eq!(
            names(&s.snapshot(res, s.rv, None, None).unwrap()),
            ["a/x", "a/z"]
        );
        let past = s.snapshot(res, rv1, None, None).unwrap();
        assert_eq!(names(&past), ["a/x", "b/y"]);
        assert_eq!(past[0].1["spec"]["ports"][0]["port"], 1);
        assert_eq!(
            names(&s.snapshot(res, rv1, Some("a"), None).unwrap()),
            ["a/x"]
        );
        let after = ("a".to_string(), "x".to_string());
        assert_eq!(
            names(&s.snapshot(res, rv1, None, Some(&after)).unwrap()),
            ["b/y"]
        );
        // Unchanged apply: no new version.
        let rv = s.rv;
        s.apply(svc("a", "x", 2)).unwrap();
        assert_eq!(s.rv, rv);
        s.compact();
        assert!(s.snapshot(res, rv1, None, None).is_none());
        assert!(s.snapshot(res, s.rv, None, None).is_some());
    }
}
