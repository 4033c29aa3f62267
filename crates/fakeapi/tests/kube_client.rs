//! The fake driven by the real kube-rs client: paged lists, watchers (list +
//! watch and streaming lists), 410 Gone relists, outages, scale.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PartialObjectMeta, VersionMatch,
    WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::Event;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config, ResourceExt};
use serde_json::{Value, json};
use svcnet_fakeapi::{FakeApi, OutageMode};

const WAIT: Duration = Duration::from_secs(20);

async fn client_with(path: &std::path::Path, context: Option<&str>) -> kube::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("kube config");
    Client::try_from(config)
}

/// A client for `api` through the kubeconfig it writes (kept in `dir`).
async fn client(api: &FakeApi, dir: &tempfile::TempDir) -> Client {
    client_with(&api.write_kubeconfig(dir.path()), None)
        .await
        .expect("client")
}

fn svc(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
           "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10",
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
}

fn slice(ns: &str, name: &str, mcs_service: Option<&str>) -> Value {
    let mut labels = json!({"kubernetes.io/service-name": "web"});
    if let Some(s) = mcs_service {
        labels["multicluster.kubernetes.io/service-name"] = s.into();
    }
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": name, "namespace": ns, "labels": labels},
           "addressType": "IPv4",
           "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": true}}],
           "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
}

fn names<K: ResourceExt>(items: &[K]) -> Vec<String> {
    items.iter().map(ResourceExt::name_any).collect()
}

/// The next item, failing the test after [`WAIT`].
async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("timed out waiting for the stream")
        .expect("stream ended")
}

/// Reads a watcher up to `InitDone`, checking it starts with `Init`; returns
/// the names applied in between. Errors before `Init` are skipped.
async fn read_init<K, S>(stream: &mut S) -> BTreeSet<String>
where
    K: ResourceExt + Debug,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Unpin,
{
    loop {
        match next(stream).await {
            Ok(Event::Init) => break,
            Err(_) => {}
            Ok(other) => panic!("expected Init, got {other:?}"),
        }
    }
    let mut seen = BTreeSet::new();
    loop {
        match next(stream).await.expect("no error during init") {
            Event::InitApply(obj) => {
                seen.insert(obj.name_any());
            }
            Event::InitDone => return seen,
            other => panic!("expected InitApply/InitDone, got {other:?}"),
        }
    }
}

/// The next event that is not an error, counting the errors skipped.
async fn next_ok<K, S>(stream: &mut S) -> (Event<K>, usize)
where
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Unpin,
{
    let mut errors = 0;
    loop {
        match next(stream).await {
            Ok(ev) => return (ev, errors),
            Err(_) => errors += 1,
        }
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_string()).collect()
}

#[tokio::test]
async fn list_pages_through_a_consistent_snapshot() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        api.apply(svc("default", &format!("s{i}")));
    }
    let services: Api<Service> = Api::all(client(&api, &dir).await);

    let first = services
        .list(&ListParams::default().limit(2))
        .await
        .unwrap();
    assert_eq!(names(&first.items), ["s0", "s1"]);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let snapshot_rv = first.metadata.resource_version.clone().unwrap();
    // Changes between pages do not show in the pages that follow.
    api.apply(svc("default", "s5"));
    api.delete("Service", "default", "s3");
    let mut all = names(&first.items);
    let mut token = first.metadata.continue_;
    while let Some(t) = token {
        let page = services
            .list(&ListParams::default().limit(2).continue_token(&t))
            .await
            .unwrap();
        assert_eq!(
            page.metadata.resource_version.as_deref(),
            Some(snapshot_rv.as_str())
        );
        all.extend(names(&page.items));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
    }
    assert_eq!(all, ["s0", "s1", "s2", "s3", "s4"]);
    let log = api.request_log();
    assert_eq!(
        log.iter().filter(|r| r.is_continue()).count(),
        2,
        "{log:#?}"
    );
    assert!(log.iter().all(|r| r.param("limit").as_deref() == Some("2")));
    assert_eq!(log[0].authorization.as_deref(), Some("Bearer fake-token"));

    // A fresh list sees the changes; items omit apiVersion/kind but decode.
    let now = services.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&now.items), ["s0", "s1", "s2", "s4", "s5"]);
    assert_eq!(
        now.items[0].spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port,
        80
    );
    assert!(now.items.iter().all(|s| s.metadata.uid.is_some()));

    // A continue token from before a compaction is gone.
    let page = services
        .list(&ListParams::default().limit(2))
        .await
        .unwrap();
    api.apply(svc("default", "s6"));
    api.compact();
    let err = services
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(&page.metadata.continue_.unwrap()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 410),
        "{err:?}"
    );

    // Exact lists: at a retained version, and gone below the history.
    let rv_before = api.resource_version();
    api.apply(svc("default", "s7"));
    let exact = services
        .list(
            &ListParams::default()
                .at(&rv_before.to_string())
                .matching(VersionMatch::Exact),
        )
        .await
        .unwrap();
    assert!(!names(&exact.items).contains(&"s7".to_string()));
    let err = services
        .list(
            &ListParams::default()
                .at("101")
                .matching(VersionMatch::Exact),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 410),
        "{err:?}"
    );

    // A server-side page cap paginates even without a limit.
    api.set_page_limit(Some(3));
    let capped = services.list(&ListParams::default()).await.unwrap();
    assert_eq!(capped.items.len(), 3);
    assert!(capped.metadata.continue_.is_some());
}

#[tokio::test]
async fn selectors_namespaces_and_gets() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    api.apply(slice("a", "local-1", None));
    api.apply(slice("a", "imported-1", Some("web")));
    api.apply(slice("b", "local-2", None));
    let client = client(&api, &dir).await;
    let all: Api<EndpointSlice> = Api::all(client.clone());
    let mcs = "multicluster.kubernetes.io/service-name";
    let local = all
        .list(&ListParams::default().labels(&format!("!{mcs}")))
        .await
        .unwrap();
    assert_eq!(names(&local.items), ["local-1", "local-2"]);
    let imported = all.list(&ListParams::default().labels(mcs)).await.unwrap();
    assert_eq!(names(&imported.items), ["imported-1"]);
    let imported = all
        .list(&ListParams::default().labels(&format!("{mcs}=web")))
        .await
        .unwrap();
    assert_eq!(names(&imported.items), ["imported-1"]);
    let by_field = all
        .list(&ListParams::default().fields("metadata.name=local-2"))
        .await
        .unwrap();
    assert_eq!(names(&by_field.items), ["local-2"]);
    let in_a: Api<EndpointSlice> = Api::namespaced(client.clone(), "a");
    assert_eq!(
        names(&in_a.list(&ListParams::default()).await.unwrap().items),
        ["imported-1", "local-1"]
    );
    let one = in_a.get("local-1").await.unwrap();
    assert_eq!(one.endpoints[0].addresses, ["10.244.0.5"]);
    let err = in_a.get("nope").await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404),
        "{err:?}"
    );

    api.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert_eq!(
        names(&namespaces.list(&ListParams::default()).await.unwrap().items),
        ["a"]
    );
    assert_eq!(namespaces.get("a").await.unwrap().metadata.namespace, None);

    // Forbidden, as without RBAC.
    api.set_forbidden("pods", true);
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::all(client.clone());
    let err = pods.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403),
        "{err:?}"
    );

    // Discovery and version.
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.minor, "33");
    let group = kube::discovery::oneshot::group(&client, "discovery.k8s.io")
        .await
        .unwrap();
    let (ar, _) = group.recommended_kind("EndpointSlice").unwrap();
    assert_eq!(ar.plural, "endpointslices");
    assert!(
        kube::discovery::oneshot::group(&client, "multicluster.x-k8s.io")
            .await
            .is_ok()
    );
    api.set_serviceimport_crd(false);
    assert!(
        kube::discovery::oneshot::group(&client, "multicluster.x-k8s.io")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn watcher_sees_initial_state_then_live_changes() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b", "c"] {
        api.apply(svc("default", name));
    }
    let services: Api<Service> = Api::all(client(&api, &dir).await);
    let mut stream = watcher(services, watcher::Config::default()).boxed();
    assert_eq!(read_init(&mut stream).await, set(&["a", "b", "c"]));
    // The watcher opens its watch when polled after InitDone, from the
    // list's resourceVersion, so changes made meanwhile are not missed.

    api.apply(svc("other", "d"));
    let Ok(Event::Apply(d)) = next(&mut stream).await else {
        panic!("expected Apply")
    };
    assert_eq!(
        (d.name_any(), d.namespace()),
        ("d".into(), Some("other".into()))
    );
    let mut changed = svc("default", "a");
    changed["spec"]["ports"][0]["port"] = 8080.into();
    let stored = api.apply(changed);
    let Ok(Event::Apply(a)) = next(&mut stream).await else {
        panic!("expected Apply")
    };
    assert_eq!(a.spec.unwrap().ports.unwrap()[0].port, 8080);
    assert_eq!(
        a.metadata.resource_version,
        stored["metadata"]["resourceVersion"]
            .as_str()
            .map(str::to_string)
    );
    api.delete("Service", "default", "b");
    let Ok(Event::Delete(b)) = next(&mut stream).await else {
        panic!("expected Delete")
    };
    assert_eq!(b.name_any(), "b");
    assert_eq!(
        b.metadata.resource_version,
        Some(api.resource_version().to_string())
    );

    let log = api.request_log();
    let watch = log.iter().find(|r| r.is_watch()).expect("a watch request");
    assert_eq!(watch.param("allowWatchBookmarks").as_deref(), Some("true"));
    assert_eq!(watch.param("timeoutSeconds").as_deref(), Some("290"));
    assert!(watch.param("resourceVersion").is_some_and(|rv| rv != "0"));
}

#[tokio::test]
async fn gone_makes_the_watcher_relist() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    api.apply(svc("default", "a"));
    let services: Api<Service> = Api::all(client(&api, &dir).await);
    let mut stream = watcher(services.clone(), watcher::Config::default()).boxed();
    assert_eq!(read_init(&mut stream).await, set(&["a"]));
    api.apply(svc("default", "b"));
    let Ok(Event::Apply(_)) = next(&mut stream).await else {
        panic!("expected Apply")
    };
    assert_eq!(api.open_watches(Some("Service")), 1);

    api.force_gone();
    let err = next(&mut stream).await.expect_err("a 410 error");
    assert!(
        matches!(&err, watcher::Error::WatchError(s) if s.code == 410),
        "{err:?}"
    );
    assert_eq!(read_init(&mut stream).await, set(&["a", "b"]));

    // A watch from a compacted resourceVersion starts with a 410 ERROR event.
    let old = api.resource_version();
    api.apply(svc("default", "c"));
    api.compact();
    let mut raw = services
        .watch(&WatchParams::default(), &old.to_string())
        .await
        .unwrap()
        .boxed();
    let Ok(WatchEvent::Error(status)) = next(&mut raw).await else {
        panic!("expected ERROR")
    };
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
    assert!(
        tokio::time::timeout(WAIT, raw.next())
            .await
            .unwrap()
            .is_none(),
        "stream ends"
    );

    // A history limit compacts as changes come.
    api.set_history_limit(Some(2));
    let before = api.resource_version();
    for name in ["d", "e", "f"] {
        api.apply(svc("default", name));
    }
    let mut raw = services
        .watch(&WatchParams::default(), &before.to_string())
        .await
        .unwrap()
        .boxed();
    assert!(matches!(next(&mut raw).await, Ok(WatchEvent::Error(s)) if s.code == 410));
    let mut raw = services
        .watch(&WatchParams::default(), &(before + 1).to_string())
        .await
        .unwrap()
        .boxed();
    let Ok(WatchEvent::Added(e)) = next(&mut raw).await else {
        panic!("expected ADDED")
    };
    assert_eq!(e.name_any(), "e");
}

#[tokio::test]
async fn outage_errors_then_recovery_resumes() {
    for mode in [OutageMode::Reset, OutageMode::Refuse] {
        let api = FakeApi::start();
        api.set_outage_mode(mode);
        let dir = tempfile::tempdir().unwrap();
        api.apply(svc("default", "a"));
        let services: Api<Service> = Api::all(client(&api, &dir).await);
        let mut stream = watcher(services.clone(), watcher::Config::default())
            .default_backoff()
            .boxed();
        assert_eq!(read_init(&mut stream).await, set(&["a"]));
        api.apply(svc("default", "b"));
        let Ok(Event::Apply(_)) = next(&mut stream).await else {
            panic!("expected Apply")
        };
        assert_eq!(api.open_watches(None), 1, "the watch is open");

        api.set_outage(true);
        let err = next(&mut stream)
            .await
            .expect_err("an error while the API is down");
        eprintln!("{mode:?}: {err:?}");
        assert!(
            matches!(
                err,
                watcher::Error::WatchStartFailed(_) | watcher::Error::WatchFailed(_)
            ),
            "{mode:?}: {err:?}"
        );
        assert!(
            services.list(&ListParams::default()).await.is_err(),
            "{mode:?}"
        );
        api.apply(svc("default", "during-outage"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        api.set_outage(false);
        // The watch resumes from its resourceVersion: no relist needed.
        let (ev, _errors) = next_ok(&mut stream).await;
        let Event::Apply(obj) = ev else {
            panic!("{mode:?}: expected Apply, got {ev:?}")
        };
        assert_eq!(obj.name_any(), "during-outage");
        api.apply(svc("default", "after"));
        let (ev, _) = next_ok(&mut stream).await;
        assert!(
            matches!(&ev, Event::Apply(o) if o.name_any() == "after"),
            "{ev:?}"
        );
    }
}

#[tokio::test]
async fn client_started_before_the_api_is_up() {
    let api = FakeApi::start();
    api.set_outage_mode(OutageMode::Refuse);
    api.set_outage(true);
    let dir = tempfile::tempdir().unwrap();
    let services: Api<Service> = Api::all(client(&api, &dir).await);
    let mut stream = watcher(services, watcher::Config::default())
        .default_backoff()
        .boxed();
    assert!(matches!(next(&mut stream).await, Ok(Event::Init)));
    let err = next(&mut stream).await.expect_err("connection refused");
    assert!(
        matches!(err, watcher::Error::InitialListFailed(_)),
        "{err:?}"
    );
    api.apply(svc("default", "a"));
    api.set_outage(false);
    // Each retry starts with Init; the one that gets through ends with InitDone.
    let mut seen = BTreeSet::new();
    loop {
        match next(&mut stream).await {
            Ok(Event::Init) => seen.clear(),
            Ok(Event::InitApply(s)) => {
                seen.insert(s.name_any());
            }
            Ok(Event::InitDone) => break,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => assert!(matches!(e, watcher::Error::InitialListFailed(_)), "{e:?}"),
        }
    }
    assert_eq!(seen, set(&["a"]));
    assert!(
        api.request_log().iter().all(|r| r.status == 200),
        "refused connections are not requests"
    );
}

#[tokio::test]
async fn outage_with_compaction_relists() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    api.apply(svc("default", "a"));
    let services: Api<Service> = Api::all(client(&api, &dir).await);
    let mut stream = watcher(services, watcher::Config::default())
        .default_backoff()
        .boxed();
    assert_eq!(read_init(&mut stream).await, set(&["a"]));
    api.apply(svc("default", "c"));
    let Ok(Event::Apply(_)) = next(&mut stream).await else {
        panic!("expected Apply")
    };
    api.set_outage(true);
    assert!(next(&mut stream).await.is_err());
    api.delete("Service", "default", "a");
    api.delete("Service", "default", "c");
    api.apply(svc("default", "b"));
    api.compact();
    api.set_outage(false);
    // Resuming from the old resourceVersion gets 410, then a relist.
    let mut saw_410 = false;
    loop {
        match next(&mut stream).await {
            Err(watcher::Error::WatchError(s)) if s.code == 410 => saw_410 = true,
            Err(_) => {}
            Ok(Event::Init) => break,
            Ok(other) => panic!("expected Init, got {other:?}"),
        }
    }
    assert!(saw_410);
    let (ev, _) = next_ok(&mut stream).await;
    assert!(
        matches!(&ev, Event::InitApply(o) if o.name_any() == "b"),
        "{ev:?}"
    );
    assert!(matches!(next(&mut stream).await, Ok(Event::InitDone)));
}

#[tokio::test]
async fn unavailable_outage_is_retried_by_the_client() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    api.apply(svc("default", "a"));
    let services: Api<Service> = Api::all(client(&api, &dir).await);
    api.set_outage_mode(OutageMode::Unavailable);
    api.set_outage(true);
    let list = tokio::spawn(async move { services.list(&ListParams::default()).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    api.set_outage(false);
    let list = tokio::time::timeout(WAIT, list)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(names(&list.items), ["a"]);
    let log = api.request_log();
    assert!(
        log.iter().filter(|r| r.status == 503).count() >= 2,
        "{log:#?}"
    );
    assert_eq!(log.last().unwrap().status, 200);
}

#[tokio::test]
async fn streaming_lists() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b"] {
        api.apply(svc("default", name));
    }
    let services: Api<Service> = Api::all(client(&api, &dir).await);
    let config = watcher::Config::default().streaming_lists();
    let mut stream = watcher(services, config).boxed();
    assert_eq!(read_init(&mut stream).await, set(&["a", "b"]));
    api.apply(svc("default", "c"));
    let Ok(Event::Apply(c)) = next(&mut stream).await else {
        panic!("expected Apply")
    };
    assert_eq!(c.name_any(), "c");
    let log = api.request_log();
    assert!(
        log.iter().all(|r| r.is_watch()),
        "no list requests: {log:#?}"
    );
    assert_eq!(log[0].param("sendInitialEvents").as_deref(), Some("true"));
    assert_eq!(
        log[0].param("resourceVersionMatch").as_deref(),
        Some("NotOlderThan")
    );
    assert_eq!(log[0].param("resourceVersion").as_deref(), Some("0"));

    api.force_gone();
    let err = next(&mut stream).await.expect_err("a 410 error");
    assert!(
        matches!(&err, watcher::Error::WatchError(s) if s.code == 410),
        "{err:?}"
    );
    assert_eq!(read_init(&mut stream).await, set(&["a", "b", "c"]));
}

#[tokio::test]
async fn selector_watch_sees_objects_move_in_and_out() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    api.apply(slice("default", "s1", None));
    let slices: Api<EndpointSlice> = Api::all(client(&api, &dir).await);
    let config = watcher::Config::default().labels("!multicluster.kubernetes.io/service-name");
    let mut stream = watcher(slices, config).boxed();
    assert_eq!(read_init(&mut stream).await, set(&["s1"]));
    api.apply(slice("default", "imported", Some("web")));
    api.apply(slice("default", "s1", Some("web"))); // moves out of the selector
    let Ok(Event::Delete(gone)) = next(&mut stream).await else {
        panic!("expected Delete")
    };
    assert_eq!(gone.name_any(), "s1");
    let mcs = "multicluster.kubernetes.io/service-name";
    assert!(!gone.labels().contains_key(mcs), "the object as it was");
    api.apply(slice("default", "imported", None)); // moves in
    let Ok(Event::Apply(came)) = next(&mut stream).await else {
        panic!("expected Apply")
    };
    assert_eq!(came.name_any(), "imported");

    // A namespaced watcher sees its namespace only.
    let in_b: Api<EndpointSlice> = Api::namespaced(client(&api, &dir).await, "b");
    let mut stream = watcher(in_b, watcher::Config::default()).boxed();
    assert_eq!(read_init(&mut stream).await, set(&[]));
    api.apply(slice("default", "s2", None));
    api.apply(slice("b", "s3", None));
    let Ok(Event::Apply(s3)) = next(&mut stream).await else {
        panic!("expected Apply")
    };
    assert_eq!(s3.name_any(), "s3");
    let path = "/apis/discovery.k8s.io/v1/namespaces/b/endpointslices";
    assert!(api.request_log().iter().any(|r| r.path == path));
}

#[tokio::test]
async fn bookmarks_and_timeouts() {
    let api = FakeApi::start();
    api.set_bookmark_interval(None);
    let dir = tempfile::tempdir().unwrap();
    api.apply(svc("default", "a"));
    let services: Api<Service> = Api::all(client(&api, &dir).await);
    let rv = api.resource_version().to_string();
    let mut raw = services
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    assert!(api.wait_for_watches_async(None, 1, WAIT).await);
    api.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}));
    api.send_bookmarks();
    let Ok(WatchEvent::Bookmark(bm)) = next(&mut raw).await else {
        panic!("expected BOOKMARK")
    };
    assert_eq!(
        bm.metadata.resource_version,
        api.resource_version().to_string()
    );

    api.set_bookmark_interval(Some(Duration::from_millis(100)));
    let Ok(WatchEvent::Bookmark(_)) = next(&mut raw).await else {
        panic!("expected BOOKMARK")
    };

    let started = Instant::now();
    let mut short = services
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap()
        .boxed();
    while let Some(ev) = tokio::time::timeout(WAIT, short.next()).await.unwrap() {
        assert!(matches!(ev, Ok(WatchEvent::Bookmark(_))), "{ev:?}");
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(15),
        "{took:?}"
    );

    // A server-side cap ends a default (290 s) watch early.
    api.set_watch_timeout_cap(Some(Duration::from_millis(300)));
    let mut capped = services
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    while let Some(ev) = tokio::time::timeout(WAIT, capped.next()).await.unwrap() {
        assert!(matches!(ev, Ok(WatchEvent::Bookmark(_))), "{ev:?}");
    }
}

#[tokio::test]
async fn metadata_watcher_on_namespaces() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    for ns in ["default", "kube-system"] {
        api.apply(json!({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": ns, "labels": {"k": "v"}}}));
    }
    let namespaces: Api<PartialObjectMeta<Namespace>> = Api::all(client(&api, &dir).await);
    let mut stream = watcher(namespaces, watcher::Config::default()).boxed();
    assert_eq!(
        read_init(&mut stream).await,
        set(&["default", "kube-system"])
    );
    api.delete("namespaces", "", "kube-system");
    let Ok(Event::Delete(ns)) = next(&mut stream).await else {
        panic!("expected Delete")
    };
    assert_eq!(ns.name_any(), "kube-system");
    assert!(
        api.request_log()[0]
            .accept
            .as_deref()
            .unwrap()
            .contains("PartialObjectMetadataList")
    );
}

#[tokio::test]
async fn serviceimport_crd_switch() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let gvk = GroupVersionKind::gvk("multicluster.x-k8s.io", "v1alpha1", "ServiceImport");
    let ar = ApiResource::from_gvk(&gvk);
    let imports: Api<DynamicObject> = Api::all_with(client(&api, &dir).await, &ar);
    let import = json!({"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport",
                        "metadata": {"name": "web", "namespace": "default"},
                        "spec": {"type": "ClusterSetIP", "ports": [{"port": 80, "protocol": "TCP"}]}});
    api.apply(import.clone());
    let list = imports.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&list.items), ["web"]);
    assert_eq!(list.items[0].types.as_ref().unwrap().kind, "ServiceImport");

    let mut stream = watcher(imports.clone(), watcher::Config::default()).boxed();
    assert_eq!(read_init(&mut stream).await, set(&["web"]));
    let mut other = import.clone();
    other["metadata"]["name"] = "other".into();
    api.apply(other);
    let Ok(Event::Apply(_)) = next(&mut stream).await else {
        panic!("expected Apply")
    };
    api.set_serviceimport_crd(false);
    for _ in 0..2 {
        let Ok(Event::Delete(_)) = next(&mut stream).await else {
            panic!("expected Delete")
        };
    }
    let err = next(&mut stream).await.expect_err("watch restart fails");
    assert!(
        matches!(&err, watcher::Error::WatchStartFailed(kube::Error::Api(s)) if s.code == 404),
        "{err:?}"
    );
    let err = imports.list(&ListParams::default()).await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected a Status, got {err:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert!(api.try_apply(import.clone()).is_err());

    api.set_serviceimport_crd(true);
    api.apply(import);
    assert_eq!(
        names(&imports.list(&ListParams::default()).await.unwrap().items),
        ["web"]
    );
}

#[tokio::test]
async fn kubeconfig_with_a_named_context() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    api.apply(svc("default", "a"));
    let path = api.write_kubeconfig_with_context(dir.path(), "west");
    let west = client_with(&path, Some("west")).await.unwrap();
    let services: Api<Service> = Api::default_namespaced(west);
    assert_eq!(
        names(&services.list(&ListParams::default()).await.unwrap().items),
        ["a"]
    );
    assert_eq!(
        api.request_log()[0].path,
        "/api/v1/namespaces/default/services"
    );
    let current = client_with(&path, None).await.unwrap();
    let services: Api<Service> = Api::all(current);
    assert!(services.list(&ListParams::default()).await.is_err());
}

#[tokio::test]
async fn five_thousand_services_sync_in_seconds() {
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    api.apply_all((0..5000).map(|i| svc(&format!("ns-{}", i % 50), &format!("svc-{i}"))));
    let applied = started.elapsed();
    let services: Api<Service> = Api::all(client(&api, &dir).await);

    let started = Instant::now();
    let mut stream = watcher(services.clone(), watcher::Config::default()).boxed();
    let seen = read_init(&mut stream).await;
    let synced = started.elapsed();
    assert_eq!(seen.len(), 5000);
    let pages = api.request_log().iter().filter(|r| !r.is_watch()).count();
    assert_eq!(pages, 10, "5000 objects in pages of 500");

    let started = Instant::now();
    let mut stream = watcher(services, watcher::Config::default().streaming_lists()).boxed();
    assert_eq!(read_init(&mut stream).await.len(), 5000);
    let streamed = started.elapsed();
    eprintln!("apply {applied:?}, paged list sync {synced:?}, streaming sync {streamed:?}");
    assert!(synced < Duration::from_secs(10), "{synced:?}");
    assert!(streamed < Duration::from_secs(10), "{streamed:?}");
}

#[test]
fn controls_work_without_a_runtime() {
    use std::io::{Read, Write};
    let api = FakeApi::start();
    let stored = api.apply(svc("default", "a"));
    let rv: u64 = stored["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(rv, api.resource_version());
    assert!(rv > 100);
    assert!(stored["metadata"]["uid"].is_string());
    assert_eq!(
        api.apply(svc("default", "a")),
        stored,
        "unchanged apply is a no-op"
    );
    let mut changed = svc("default", "a");
    changed["spec"]["clusterIP"] = "10.96.0.11".into();
    let updated = api.apply(changed);
    assert_eq!(updated["metadata"]["uid"], stored["metadata"]["uid"]);
    assert_eq!(api.resource_version(), rv + 1);
    let no_ns =
        api.apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b"}}));
    assert_eq!(no_ns["metadata"]["namespace"], "default");
    assert_eq!(api.objects("Service").len(), 2);
    assert!(
        api.try_apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                                 "metadata": {"name": "x"}}))
            .is_err()
    );
    assert!(api.delete("service", "default", "a").is_some());
    assert!(api.get("services", "default", "a").is_none());
    assert!(api.delete("Service", "default", "a").is_none());

    let mut conn = std::net::TcpStream::connect(api.addr()).unwrap();
    conn.write_all(
        b"GET /apis/apps/v1/deployments HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    let body: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "NotFound");
    assert_eq!(body["code"], 404);
}
