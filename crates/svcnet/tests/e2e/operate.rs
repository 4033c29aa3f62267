//! Operating a running server (SPEC §4): the `--config` file, its reload on
//! change and on SIGHUP, the lame-duck shutdown, JSON logs.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::harness::{Server, example, http_get, wait_until};

const NAME: &str = "web-0.nginx.default.svc.cluster.local";

fn ttl(s: &Server) -> Option<u32> {
    s.dig(&[NAME, "A"]).answer.first().map(|rr| rr.ttl)
}

fn write(path: &Path, text: &str) {
    // Written whole and renamed into place, as editors and ConfigMaps do.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write config");
    std::fs::rename(&tmp, path).expect("rename config");
}

fn signal(s: &Server, sig: &str) {
    let sent = Command::new("kill")
        .args([sig, &s.pid().to_string()])
        .status();
    assert!(sent.is_ok_and(|st| st.success()), "kill {sig}");
}

#[test]
fn spec_4_config_file_keys_are_flags_and_reload_on_change_and_sighup() {
    let dir = TempDir::new().expect("temp dir");
    let file = dir.path().join("svcnet.toml");
    write(
        &file,
        &format!(
            "# every flag is a key\nfilename = [{:?}]\nttl = 30\ncache-bytes = 4096\n",
            example("local")
        ),
    );
    let config = file.display().to_string();
    let s = Server::start(&["--config", &config]);
    assert_eq!(ttl(&s), Some(30), "{}", s.log_text());

    // An edit is picked up without a signal (checked every 2 s).
    write(
        &file,
        &format!(
            "filename = [{:?}]\nttl = 45\nautopath = true\n",
            example("local")
        ),
    );
    let took = wait_until(Duration::from_secs(6), || ttl(&s) == Some(45));
    assert!(took.is_some(), "ttl not reloaded:\n{}", s.log_text());
    // autopath came with it: the first search expansion of `nginx.default`.
    let a = s.dig(&["nginx.default.default.svc.cluster.local", "A"]);
    assert_eq!(a.status, "NOERROR", "{a}");
    assert_eq!(a.answer[0].rtype, "CNAME", "{a}");

    // SIGHUP rereads at once; a setting that needs a restart is said so.
    std::fs::write(
        &file,
        format!(
            "filename = [{:?}]\nttl = 60\nudp-workers = 3\n",
            example("local")
        ),
    )
    .expect("write");
    signal(&s, "-HUP");
    assert!(
        wait_until(Duration::from_secs(3), || ttl(&s) == Some(60)).is_some(),
        "SIGHUP did not reload:\n{}",
        s.log_text()
    );
    assert!(
        s.wait_for_log(Duration::from_secs(3), |l| l
            .contains("only when svcnet restarts")
            && l.contains("udp-workers"))
            .is_some(),
        "{}",
        s.log_text()
    );

    // A broken file keeps what is served, and says where it is broken.
    std::fs::write(&file, "ttl = [\n").expect("write");
    signal(&s, "-HUP");
    assert!(
        s.wait_for_log(Duration::from_secs(3), |l| l
            .contains("configuration not reloaded")
            && l.contains("svcnet.toml:"))
            .is_some(),
        "{}",
        s.log_text()
    );
    assert_eq!(ttl(&s), Some(60));

    // Flags win over the file.
    write(
        &file,
        &format!("filename = [{:?}]\nttl = 30\n", example("local")),
    );
    let s2 = Server::start(&["--config", &config, "--ttl", "7"]);
    assert_eq!(ttl(&s2), Some(7));
}

#[test]
fn spec_4_config_file_errors_stop_the_start_with_a_position() {
    let dir = TempDir::new().expect("temp dir");
    let file = dir.path().join("svcnet.toml");
    std::fs::write(&file, "ttl = 5\nupstreams = [\"192.0.2.1\"]\n").expect("write");
    let out = crate::harness::svcnet([
        "serve",
        "--config",
        &file.display().to_string(),
        "-f",
        &example("local"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("svcnet.toml:2:1: unknown key \"upstreams\""),
        "{err}"
    );
}

#[test]
fn spec_4_lameduck_answers_with_ready_503_then_stops() {
    let mut s = Server::start(&[
        "-f",
        &example("local"),
        "--admin",
        "127.0.0.1:0",
        "--lameduck",
        "3s",
    ]);
    let admin = s.admin_addr();
    assert_eq!(http_get(admin, "/ready").0, 200);
    signal(&s, "-TERM");
    assert!(
        wait_until(Duration::from_secs(3), || http_get(admin, "/ready").0
            == 503)
        .is_some(),
        "/ready stayed 200 after SIGTERM:\n{}",
        s.log_text()
    );
    let (_, body) = http_get(admin, "/ready");
    assert!(body.contains("shutting down"), "{body}");
    assert_eq!(s.dig(&[NAME, "A"]).status, "NOERROR", "DNS stopped early");
    assert!(s.is_alive());
    let gone = wait_until(Duration::from_secs(10), || !s.is_alive());
    assert!(gone.is_some(), "still running:\n{}", s.log_text());
}

#[test]
fn spec_4_json_logs_are_one_object_per_line() {
    let s = Server::start(&["-f", &example("local"), "--log-format", "json"]);
    assert_eq!(s.dig(&[NAME, "A"]).status, "NOERROR");
    let lines = s.log_lines();
    assert!(lines.len() >= 2, "{lines:?}");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{line}"
        );
    }
}

/// The `svcnet.toml` of the ConfigMap in `deploy/svcnet.yaml`.
fn deploy_config() -> String {
    let yaml = std::fs::read_to_string(crate::harness::workspace().join("deploy/svcnet.yaml"))
        .expect("deploy/svcnet.yaml");
    let mut lines = yaml.lines().skip_while(|l| l.trim() != "svcnet.toml: |");
    lines.next().expect("a svcnet.toml key in the ConfigMap");
    lines
        .take_while(|l| l.starts_with("    ") || l.trim().is_empty())
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect()
}

#[test]
fn deploy_configmap_is_a_valid_config_that_serves_as_documented() {
    let dir = TempDir::new().expect("temp dir");
    let file = dir.path().join("svcnet.toml");
    std::fs::write(&file, deploy_config()).expect("write");
    // The deployment's file with the bundled examples instead of the API.
    let s = Server::start(&[
        "--config",
        &file.display().to_string(),
        "-f",
        &example("local"),
    ]);
    assert_eq!(ttl(&s), Some(5));
    // `pods = "insecure"`: any dashed IP answers.
    let a = s.dig(&["10-1-2-3.default.pod.cluster.local", "A"]);
    assert_eq!(a.rdata("A"), ["10.1.2.3"], "{a}");
}

#[test]
fn rrl_limits_udp_responses_per_client_with_slip_and_leaves_tcp_alone() {
    use crate::harness::{encode, parse, query, udp_exchange};
    use hickory_proto::rr::RecordType;
    let s = Server::start(&[
        "-f",
        &example("local"),
        "--rrl",
        "5",
        "--admin",
        "127.0.0.1:0",
    ]);
    let packet = encode(&query(NAME, RecordType::A));
    let (mut full, mut slipped, mut dropped) = (0, 0, 0);
    let started = std::time::Instant::now();
    for _ in 0..40 {
        match udp_exchange(s.addr(), &packet, Duration::from_millis(50)) {
            Some(reply) => {
                let m = parse(&reply);
                if m.metadata.truncation && m.answers.is_empty() {
                    slipped += 1;
                } else {
                    assert_eq!(m.answers.len(), 1, "{m}");
                    full += 1;
                }
            }
            None => dropped += 1,
        }
    }
    // 5 a second, in every second the loop touched.
    let seconds = started.elapsed().as_secs() + 2;
    let most = 5 * seconds;
    let said = format!("{full} full, {slipped} slipped, {dropped} dropped in {seconds} s");
    assert!((5..=most).contains(&full), "{said}");
    assert!(slipped + dropped >= 40 - most.min(40), "{said}");
    if most < 40 {
        assert!(slipped >= 1 && dropped >= 1, "{said}");
    }
    // A slipped client retries over TCP, which is not limited.
    for _ in 0..10 {
        assert_eq!(s.tcp(&query(NAME, RecordType::A)).answers.len(), 1);
    }
    let (_, metrics) = http_get(s.admin_addr(), "/metrics");
    let counter = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert_eq!(counter("svcnet_rrl_slipped_total "), slipped);
    assert_eq!(counter("svcnet_rrl_dropped_total "), dropped);
}
