//! The availability rules of Kubernetes API mode (issue "Kubernetes API
//! mode", item 3), one end-to-end test each: the real binary, the real
//! kube-rs client, a fake API server that can be down, forget its history
//! or lack the multi-cluster CRDs, and the admin listener's `/ready`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::rr::RecordType;
use serde_json::Value;
use svcnet_fakeapi::{FakeApi, OutageMode};
use tempfile::TempDir;

use crate::api::{answers, await_all, await_answers, headless, lookup, namespace, service, slice};
use crate::harness::{Server, http_get, wait_until};

/// The objects most tests start from: a ClusterIP service in `shop`, a
/// headless one with a ready and a not-ready endpoint in `default`.
fn seed(api: &FakeApi) {
    api.apply_all([
        namespace("default"),
        namespace("shop"),
        service("shop", "cart", "10.96.5.5"),
        headless("default", "nginx"),
        slice(
            "default",
            "nginx",
            &[
                ("10.244.0.10", Some("web-0"), true),
                ("10.244.0.11", Some("web-1"), false),
            ],
        ),
    ]);
}

/// `svcnet serve --kubeconfig K --pods disabled --admin 127.0.0.1:0 EXTRA...`.
/// A fake API server with [`seed`]'s objects and a kubeconfig for it (in a
/// directory that lives as long as the returned guard).
fn seeded_api() -> (FakeApi, TempDir, std::path::PathBuf) {
    let api = FakeApi::start();
    seed(&api);
    let dir = TempDir::new().expect("temp dir");
    let kubeconfig = api.write_kubeconfig(dir.path());
    (api, dir, kubeconfig)
}

fn start(kubeconfig: &Path, extra: &[&str]) -> (Server, SocketAddr) {
    let kubeconfig = kubeconfig.to_string_lossy();
    let mut args = vec![
        "--kubeconfig",
        &kubeconfig,
        "--pods",
        "disabled",
        "--admin",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let admin = server.admin_addr();
    (server, admin)
}

/// `GET /ready`: the status code and the parsed JSON detail.
fn ready(admin: SocketAddr) -> (u16, Value) {
    let (code, body) = http_get(admin, "/ready");
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("/ready body is not JSON ({e}): {body:?}"));
    (code, json)
}

/// The readiness words for cluster `local`.
fn detail(json: &Value) -> String {
    json["clusters"]["local"]
        .as_str()
        .unwrap_or_else(|| panic!("no detail for cluster local in {json}"))
        .to_owned()
}

/// Waits up to 10 s for `/ready` to answer `code` with a detail containing `words`.
fn await_ready(s: &Server, admin: SocketAddr, code: u16, words: &str) -> Value {
    let mut last = (0, Value::Null);
    let ok = wait_until(Duration::from_secs(10), || {
        last = ready(admin);
        last.0 == code
            && last.1["clusters"]["local"]
                .as_str()
                .is_some_and(|d| d.contains(words))
    });
    assert!(
        ok.is_some(),
        "/ready: want {code} with {words:?}, last got {} {}\n{}",
        last.0,
        last.1,
        s.log_text()
    );
    last.1
}

#[test]
fn before_the_first_sync_names_get_servfail_and_ready_says_waiting() {
    let (api, _dir, kubeconfig) = seeded_api();
    api.set_outage_mode(OutageMode::Refuse);
    api.set_outage(true);
    let (s, admin) = start(&kubeconfig, &["--startup-timeout", "60s"]);

    // Names that will exist and names that will not: SERVFAIL alike, never
    // a false NXDOMAIN; the same over TCP.
    for name in [
        "cart.shop.svc.cluster.local",
        "nope.shop.svc.cluster.local",
        "web-0.nginx.default.svc.cluster.local",
        "10-244-0-10.default.pod.cluster.local",
    ] {
        let (status, _) = lookup(&s, name, RecordType::A);
        assert_eq!(status, "SERVFAIL", "{name}\n{}", s.log_text());
    }
    let tcp = s.tcp(&crate::harness::query(
        "cart.shop.svc.cluster.local",
        RecordType::A,
    ));
    assert_eq!(u16::from(tcp.metadata.response_code), 2, "TCP: {tcp}");
    let (code, json) = ready(admin);
    assert_eq!(code, 503, "{json}");
    assert_eq!(json["ready"], false, "{json}");
    assert!(!detail(&json).is_empty(), "{json}");
    let (code, _) = http_get(admin, "/health");
    assert_eq!(code, 200, "liveness does not depend on the API");

    api.set_outage(false);
    await_answers(
        &s,
        "cart.shop.svc.cluster.local",
        ("NOERROR", &["10.96.5.5"]),
    );
    assert!(answers(
        &s,
        "nope.shop.svc.cluster.local",
        ("NXDOMAIN", &[])
    ));
    await_answers(
        &s,
        "web-0.nginx.default.svc.cluster.local",
        ("NOERROR", &["10.244.0.10"]),
    );
    let json = await_ready(&s, admin, 200, "synced");
    assert_eq!(json["ready"], true, "{json}");
}

#[test]
fn after_the_startup_timeout_the_incomplete_state_is_served() {
    let (api, _dir, kubeconfig) = seeded_api();
    api.set_outage_mode(OutageMode::Refuse);
    api.set_outage(true);
    let (s, admin) = start(&kubeconfig, &["--startup-timeout", "1s"]);
    let start = s.started();

    let (status, _) = lookup(&s, "cart.shop.svc.cluster.local", RecordType::A);
    assert_eq!(status, "SERVFAIL", "before the timeout");
    assert_eq!(ready(admin).0, 503);
    // The state is empty: NXDOMAIN is all it can say.
    await_answers(&s, "cart.shop.svc.cluster.local", ("NXDOMAIN", &[]));
    let after = start.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "served after {after:?}, before the 1 s timeout"
    );
    let (code, json) = ready(admin);
    assert_eq!(code, 200, "{json}");
    assert_eq!(json["ready"], true, "{json}");
    assert!(
        s.log_text().contains("startup timeout"),
        "no startup timeout in the log:\n{}",
        s.log_text()
    );
}

#[test]
fn an_outage_after_sync_keeps_the_last_state_and_recovery_catches_up() {
    let (api, _dir, kubeconfig) = seeded_api();
    let (s, admin) = start(&kubeconfig, &[]);
    await_answers(
        &s,
        "cart.shop.svc.cluster.local",
        ("NOERROR", &["10.96.5.5"]),
    );
    await_ready(&s, admin, 200, "synced");

    api.set_outage(true);
    let json = await_ready(&s, admin, 200, "unreachable");
    assert_eq!(json["ready"], true, "{json}");
    assert!(answers(
        &s,
        "cart.shop.svc.cluster.local",
        ("NOERROR", &["10.96.5.5"])
    ));
    assert!(answers(
        &s,
        "web-0.nginx.default.svc.cluster.local",
        ("NOERROR", &["10.244.0.10"])
    ));

    // Changes made while svcnet cannot see them arrive after recovery.
    api.delete("Service", "shop", "cart");
    api.apply(service("shop", "checkout", "10.96.5.6"));
    api.apply(slice(
        "default",
        "nginx",
        &[
            ("10.244.0.10", Some("web-0"), true),
            ("10.244.0.11", Some("web-1"), true),
        ],
    ));
    std::thread::sleep(Duration::from_millis(500));
    assert!(answers(
        &s,
        "cart.shop.svc.cluster.local",
        ("NOERROR", &["10.96.5.5"])
    ));
    api.set_outage(false);
    await_answers(
        &s,
        "checkout.shop.svc.cluster.local",
        ("NOERROR", &["10.96.5.6"]),
    );
    await_answers(&s, "cart.shop.svc.cluster.local", ("NXDOMAIN", &[]));
    await_answers(
        &s,
        "web-1.nginx.default.svc.cluster.local",
        ("NOERROR", &["10.244.0.11"]),
    );
    await_ready(&s, admin, 200, "synced");
    assert!(
        s.log_text()
            .contains("serving the last known state and retrying"),
        "the outage is not in the log:\n{}",
        s.log_text()
    );
}

#[test]
fn a_restart_answers_from_the_state_file_before_the_api_is_back() {
    let (api, dir, kubeconfig) = seeded_api();
    let state = dir.path().join("state.json");
    let state_arg = state.to_string_lossy().into_owned();
    let (mut s, _) = start(&kubeconfig, &["--state-file", &state_arg]);
    await_answers(
        &s,
        "cart.shop.svc.cluster.local",
        ("NOERROR", &["10.96.5.5"]),
    );
    // Written at most every 5 s.
    let written = wait_until(Duration::from_secs(10), || state.exists());
    assert!(written.is_some(), "no state file:\n{}", s.log_text());
    let status = s.terminate(Duration::from_secs(5));
    assert!(
        status.is_some_and(|st| st.success()),
        "svcnet did not stop cleanly on SIGTERM: {status:?}\n{}",
        s.log_text()
    );
    drop(s);

    api.set_outage_mode(OutageMode::Refuse);
    api.set_outage(true);
    api.apply(service("shop", "checkout", "10.96.5.6"));
    let (s, admin) = start(
        &kubeconfig,
        &["--state-file", &state_arg, "--startup-timeout", "60s"],
    );
    // At once, without a sync and long before the startup timeout.
    assert!(
        answers(
            &s,
            "cart.shop.svc.cluster.local",
            ("NOERROR", &["10.96.5.5"])
        ),
        "{:?}\n{}",
        lookup(&s, "cart.shop.svc.cluster.local", RecordType::A),
        s.log_text()
    );
    assert!(answers(
        &s,
        "web-0.nginx.default.svc.cluster.local",
        ("NOERROR", &["10.244.0.10"])
    ));
    assert!(answers(
        &s,
        "checkout.shop.svc.cluster.local",
        ("NXDOMAIN", &[])
    ));
    let (code, json) = ready(admin);
    assert_eq!(code, 200, "{json}");
    assert!(detail(&json).contains("stale"), "{json}");
    // Still stale once the watchers have failed to reach the API.
    std::thread::sleep(Duration::from_millis(500));
    let (code, json) = ready(admin);
    assert_eq!(code, 200, "{json}");
    assert!(detail(&json).contains("stale"), "{json}");

    api.set_outage(false);
    await_answers(
        &s,
        "checkout.shop.svc.cluster.local",
        ("NOERROR", &["10.96.5.6"]),
    );
    await_ready(&s, admin, 200, "synced");
}

#[test]
fn a_410_gone_relist_never_leaves_a_gap() {
    let (api, _dir, kubeconfig) = seeded_api();
    let (s, admin) = start(&kubeconfig, &[]);
    await_all(
        &s,
        &[
            ("cart.shop.svc.cluster.local", ("NOERROR", &["10.96.5.5"])),
            (
                "web-0.nginx.default.svc.cluster.local",
                ("NOERROR", &["10.244.0.10"]),
            ),
        ],
    );

    let stop = AtomicBool::new(false);
    let asked = AtomicUsize::new(0);
    let bad: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for name in [
            "cart.shop.svc.cluster.local",
            "web-0.nginx.default.svc.cluster.local",
        ] {
            let (s, stop, asked, bad) = (&s, &stop, &asked, &bad);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (status, ips) = lookup(s, name, RecordType::A);
                    asked.fetch_add(1, Ordering::Relaxed);
                    if status != "NOERROR" || ips.len() != 1 {
                        let mut bad = bad.lock().unwrap_or_else(|e| e.into_inner());
                        bad.push(format!("{name}: {status} {ips:?}"));
                    }
                }
            });
        }
        let watches = api.open_watches(None);
        let relists_before = relists(&api);
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(300));
            api.force_gone();
        }
        // Every watcher listed again after the last 410 and watches again.
        let relisted = wait_until(Duration::from_secs(15), || {
            relists(&api) >= relists_before + watches && api.open_watches(None) >= watches
        });
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        assert!(
            relisted.is_some(),
            "{} relists, {} of {watches} watches open after 5 × 410\n{}",
            relists(&api) - relists_before,
            api.open_watches(None),
            s.log_text()
        );
    });
    let bad = bad.into_inner().unwrap_or_else(|e| e.into_inner());
    let asked = asked.into_inner();
    assert!(
        bad.is_empty(),
        "{} of {asked} answers were wrong during relists: {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );
    assert!(asked > 100, "only {asked} queries ran");
    // A 410 is routine (compaction), not an outage.
    assert!(
        !s.log_text().contains("serving the last known state"),
        "a 410 reported as an outage:\n{}",
        s.log_text()
    );
    assert_eq!(detail(&ready(admin).1), "synced");
}

/// Lists (not watches) the fake has answered: each relist of each watcher is one.
fn relists(api: &FakeApi) -> usize {
    api.request_log()
        .iter()
        .filter(|r| !r.is_watch() && r.status == 200)
        .count()
}

#[test]
fn namespace_filter_serves_only_those_namespaces_without_a_namespace_watch() {
    let (api, _dir, kubeconfig) = seeded_api();
    api.apply(service("default", "front", "10.96.7.7"));
    let (s, admin) = start(&kubeconfig, &["--namespace", "shop"]);
    await_answers(
        &s,
        "cart.shop.svc.cluster.local",
        ("NOERROR", &["10.96.5.5"]),
    );
    await_ready(&s, admin, 200, "synced");
    for name in [
        "front.default.svc.cluster.local",
        "nginx.default.svc.cluster.local",
        "web-0.nginx.default.svc.cluster.local",
    ] {
        assert!(answers(&s, name, ("NXDOMAIN", &[])), "{name}");
    }
    let log = api.request_log();
    let paths: Vec<String> = log.iter().map(ToString::to_string).collect();
    assert!(
        log.iter()
            .all(|r| !r.path.contains("/namespaces") || r.path.contains("/namespaces/shop/")),
        "a request outside namespace shop: {paths:#?}"
    );
    assert!(
        !log.iter().any(|r| r.path == "/api/v1/namespaces"),
        "a Namespace list or watch was made: {paths:#?}"
    );
    assert!(
        !log.iter().any(|r| r.path == "/api/v1/services"),
        "a cluster-wide Service list was made: {paths:#?}"
    );
    assert!(
        log.iter()
            .any(|r| r.path == "/api/v1/namespaces/shop/services" && r.is_watch()),
        "no Service watch in shop: {paths:#?}"
    );
}

#[test]
fn context_flag_picks_the_kubeconfig_context() {
    let api = FakeApi::start();
    seed(&api);
    let dir = TempDir::new().expect("temp dir");
    let kubeconfig = api.write_kubeconfig_with_context(dir.path(), "prod");

    // The current context points where nothing listens.
    let (s, _) = start(&kubeconfig, &["--startup-timeout", "60s"]);
    let (status, _) = lookup(&s, "cart.shop.svc.cluster.local", RecordType::A);
    assert_eq!(status, "SERVFAIL");
    drop(s);

    let (s, admin) = start(&kubeconfig, &["--context", "prod"]);
    await_answers(
        &s,
        "cart.shop.svc.cluster.local",
        ("NOERROR", &["10.96.5.5"]),
    );
    await_ready(&s, admin, 200, "synced");
    assert!(!api.request_log().is_empty());
}

#[test]
fn missing_multicluster_crds_turn_the_feature_off_not_the_sync() {
    let (api, _dir, kubeconfig) = seeded_api();
    api.set_serviceimport_crd(false);
    let (s, admin) = start(&kubeconfig, &["--startup-timeout", "60s"]);
    await_answers(
        &s,
        "cart.shop.svc.cluster.local",
        ("NOERROR", &["10.96.5.5"]),
    );
    let json = await_ready(&s, admin, 200, "synced");
    assert_eq!(json["ready"], true, "{json}");
    // A relist of the other watchers does not ask (or say) it again.
    api.force_gone();
    api.apply(service("shop", "later", "10.96.5.9"));
    await_answers(
        &s,
        "later.shop.svc.cluster.local",
        ("NOERROR", &["10.96.5.9"]),
    );
    for kind in ["ServiceImport", "ServiceExport"] {
        let said = s
            .log_lines()
            .iter()
            .filter(|l| l.contains(&format!("{kind} CRD not installed")))
            .count();
        assert_eq!(said, 1, "{kind}: said {said} times\n{}", s.log_text());
    }
    assert!(
        !s.log_text().contains("WARN"),
        "an absent CRD (or a relist) is not a warning:\n{}",
        s.log_text()
    );
}

#[test]
fn missing_crds_while_the_api_was_down_at_start_still_sync() {
    let (api, _dir, kubeconfig) = seeded_api();
    api.set_serviceimport_crd(false);
    api.set_outage_mode(OutageMode::Refuse);
    api.set_outage(true);
    let (s, admin) = start(&kubeconfig, &["--startup-timeout", "60s"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ready(admin).0, 503);
    api.set_outage(false);
    await_answers(
        &s,
        "cart.shop.svc.cluster.local",
        ("NOERROR", &["10.96.5.5"]),
    );
    let json = await_ready(&s, admin, 200, "synced");
    assert_eq!(json["ready"], true, "{json}");
    for kind in ["ServiceImport", "ServiceExport"] {
        let said = s
            .log_lines()
            .iter()
            .filter(|l| l.contains(&format!("{kind} CRD not installed")))
            .count();
        assert_eq!(said, 1, "{kind}: said {said} times\n{}", s.log_text());
    }
}

#[test]
fn paged_and_streaming_lists_both_sync() {
    let api = FakeApi::start();
    api.apply(namespace("shop"));
    api.apply_all((1..=7).map(|i| service("shop", &format!("s{i}"), &format!("10.96.8.{i}"))));
    let dir = TempDir::new().expect("temp dir");
    let kubeconfig = api.write_kubeconfig(dir.path());

    let check_all = |s: &Server| {
        for i in 1..=7 {
            let ip = format!("10.96.8.{i}");
            await_answers(
                s,
                &format!("s{i}.shop.svc.cluster.local"),
                ("NOERROR", &[ip.as_str()]),
            );
        }
    };

    let (s, _) = start(&kubeconfig, &["--api-page-size", "2"]);
    check_all(&s);
    let log = api.request_log();
    let pages: Vec<String> = log
        .iter()
        .filter(|r| r.path == "/api/v1/services" && r.is_continue())
        .map(ToString::to_string)
        .collect();
    // 7 services at 2 a page: 4 pages, 3 of them continued.
    assert!(
        pages.len() >= 3,
        "want >= 3 continued Service pages, got {pages:#?}"
    );
    assert!(
        log.iter()
            .filter(|r| r.path == "/api/v1/services" && !r.is_watch())
            .all(|r| r.param("limit").as_deref() == Some("2")),
        "a Service list without limit=2"
    );
    drop(s);

    api.clear_request_log();
    let (s, admin) = start(&kubeconfig, &["--api-streaming-lists"]);
    check_all(&s);
    await_ready(&s, admin, 200, "synced");
    let log = api.request_log();
    let services: Vec<String> = log
        .iter()
        .filter(|r| r.path == "/api/v1/services")
        .map(ToString::to_string)
        .collect();
    assert!(
        log.iter().any(|r| r.path == "/api/v1/services"
            && r.is_watch()
            && r.param("sendInitialEvents").as_deref() == Some("true")),
        "no streaming list of Services: {services:#?}"
    );
    assert!(
        !log.iter()
            .any(|r| r.path == "/api/v1/services" && !r.is_watch()),
        "a paged Service list with streaming lists on: {services:#?}"
    );
}
