//! `GET /services` on the admin listener: what is served, per cluster,
//! namespace and service, as JSON (default) or an HTML table, filtered and
//! bounded.

use serde_json::Value;

use crate::harness::{Server, example, http_get, http_get_with};

fn services_json(admin: std::net::SocketAddr, query: &str) -> Value {
    let (code, body) = http_get(admin, &format!("/services{query}"));
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn row<'a>(view: &'a Value, ns: &str, name: &str) -> &'a Value {
    view["services"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| r["namespace"] == ns && r["name"] == name)
        })
        .unwrap_or_else(|| panic!("no {ns}/{name} in {view:#}"))
}

#[test]
fn services_lists_what_is_served_as_json_and_html() {
    let s = Server::start(&[
        "-f",
        &example("local"),
        "--cluster",
        &format!("west={}", example("west")),
        "--admin",
        "127.0.0.1:0",
    ]);
    let admin = s.admin_addr();
    let all = services_json(admin, "");
    assert_eq!(all["truncated"], false, "{all:#}");
    assert_eq!(all["limit"], 500, "the default cap is stated");
    let total = all["total"].as_u64().expect("total");
    assert_eq!(
        all["services"].as_array().map(Vec::len),
        Some(usize::try_from(total).expect("small"))
    );

    // The StatefulSet's headless service: web-2 is not Ready (examples/local).
    let nginx = row(&all, "default", "nginx");
    assert_eq!(nginx["cluster"], "local");
    assert_eq!(nginx["type"], "headless");
    assert_eq!(nginx["ready_endpoints"], 2, "{nginx:#}");
    assert_eq!(nginx["not_ready_endpoints"], 1, "{nginx:#}");
    assert_eq!(
        nginx["hostnames"],
        serde_json::json!(["web-0", "web-1", "web-2"])
    );
    assert_eq!(
        nginx["dns_names"],
        serde_json::json!(["nginx.default.svc.cluster.local"])
    );
    assert_eq!(nginx["ports"][0]["name"], "web");
    assert_eq!(nginx["ports"][0]["port"], 80);

    let backend = row(&all, "default", "backend");
    assert_eq!(backend["type"], "ClusterIP");
    let ip = backend["cluster_ips"][0].as_str().expect("a ClusterIP");
    // The same address DNS answers.
    let dns = s.dig(&["backend.default.svc.cluster.local", "A"]);
    assert_eq!(dns.rdata("A"), vec![ip.to_owned()]);

    // The exported headless service has its clusterset name too, and the
    // other cluster's services are listed under their cluster.
    let exported = row(&all, "test", "nginx-headless");
    assert!(
        exported["dns_names"].as_array().is_some_and(|n| n
            .iter()
            .any(|n| n == "nginx-headless.test.svc.clusterset.local")),
        "{exported:#}"
    );
    assert!(
        all["services"]
            .as_array()
            .is_some_and(|rows| rows.iter().any(|r| r["cluster"] == "west")),
        "{all:#}"
    );

    // Filters and the bound.
    let test_ns = services_json(admin, "?namespace=test&cluster=local");
    let rows = test_ns["services"].as_array().expect("rows");
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r["namespace"] == "test" && r["cluster"] == "local")
    );
    let one = services_json(admin, "?limit=1&format=json");
    assert_eq!(one["services"].as_array().map(Vec::len), Some(1));
    assert_eq!(one["truncated"], true);
    assert_eq!(one["total"], total);

    // HTML: by ?format=html or by Accept, everything escaped.
    for (path, headers) in [
        ("/services?format=html", &[][..]),
        (
            "/services",
            &[("Accept", "text/html,application/xhtml+xml")][..],
        ),
    ] {
        let (code, html) = http_get_with(admin, path, headers);
        assert_eq!(code, 200, "{html}");
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(html.contains("<td>nginx</td>"), "{html}");
        assert!(html.contains("<td>headless</td>"), "{html}");
        assert!(html.contains("80/TCP"), "{html}");
    }
    let (_, html) = http_get(admin, "/services?format=html&limit=1");
    assert!(html.contains("limited to 1"), "{html}");
    let (_, html) = http_get(admin, "/services?format=html&namespace=%3Cscript%3E");
    assert!(html.contains("0 of 0 services"), "{html}");
    assert!(!html.contains("<script>"), "{html}");
}
