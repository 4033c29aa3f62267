//! CNAME chains that leave our zones (SPEC §2): an ExternalName's target and
//! an `--autopath` expansion resolved through the upstream and appended,
//! asked with dig and kdig over UDP and TCP.

use crate::forward::Upstream;
use crate::harness::{Answer, Server, example};

/// `svcnet serve -f PATH --upstream UP EXTRA…`.
fn serve_with(up: &Upstream, path: &str, extra: &[&str]) -> Server {
    let upstream = up.addr.to_string();
    let mut args = vec!["-f", path, "--upstream", &upstream];
    args.extend(extra);
    Server::start(&args)
}

fn ask_both(s: &Server, name: &str) -> Vec<Answer> {
    let mut answers = Vec::new();
    for transport in ["+notcp", "+tcp"] {
        answers.push(s.dig(&[transport, name, "A"]));
        answers.push(s.kdig(&[transport, name, "A"]));
    }
    answers
}

#[test]
fn spec_2_externalname_target_is_resolved_upstream_and_appended() {
    let up = Upstream::start();
    let s = serve_with(&up, &example("local"), &[]);
    for a in ask_both(&s, "database.default.svc.cluster.local") {
        assert_eq!(a.status, "NOERROR", "{a}");
        assert!(a.has_flag("aa"), "{a}");
        assert_eq!(a.rdata("CNAME"), ["db.example.com."], "{a}");
        assert_eq!(a.rdata("A"), ["192.0.2.1"], "{a}");
        assert_eq!(a.answer[0].rtype, "CNAME", "the CNAME comes first: {a}");
    }
    // The upstream's NXDOMAIN for the target is the answer's RCODE
    // (RFC 6604), the CNAME still says where it went.
    let dir = tempfile::TempDir::new().expect("temp dir");
    std::fs::write(
        dir.path().join("svc.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: gone}\n\
         spec: {type: ExternalName, externalName: nx.example.com}\n",
    )
    .expect("write");
    let s2 = serve_with(&up, &dir.path().display().to_string(), &[]);
    let a = s2.dig(&["gone.default.svc.cluster.local", "A"]);
    assert_eq!(a.status, "NXDOMAIN", "{a}");
    assert_eq!(a.rdata("CNAME"), ["nx.example.com."], "{a}");
}

#[test]
fn autopath_resolves_the_bare_name_upstream_on_the_first_query() {
    let up = Upstream::start();
    let s = serve_with(&up, &example("local"), &["--autopath"]);
    let first = "api.example.com.default.svc.cluster.local";
    for a in ask_both(&s, first) {
        assert_eq!(a.status, "NOERROR", "{a}");
        assert_eq!(a.rdata("CNAME"), ["api.example.com."], "{a}");
        assert_eq!(a.rdata("A"), ["192.0.2.1"], "{a}");
    }
    // In-zone expansions need no upstream: `web-0.nginx` from `default`.
    let a = s.dig(&["web-0.nginx.default.default.svc.cluster.local", "A"]);
    assert_eq!(
        a.rdata("CNAME"),
        ["web-0.nginx.default.svc.cluster.local."],
        "{a}"
    );
    assert_eq!(a.rdata("A").len(), 1, "{a}");
}
