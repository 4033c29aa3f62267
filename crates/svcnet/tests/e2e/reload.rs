//! Live reload (SPEC §4 `serve`: "changes are live within a second"; §1.2:
//! a file that turns invalid keeps serving its last good objects).
//!
//! The waits are generous (3 s) so a loaded CI machine does not flake; the
//! measured latencies are printed (`cargo test -- --nocapture` shows them).

use std::path::Path;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use tempfile::TempDir;

use crate::harness::{Answer, Server, query, wait_until};

/// How long a change may take to be served before the test fails.
const RELOAD_WAIT: Duration = Duration::from_secs(3);

/// A selector-less ClusterIP Service with a fixed IP.
fn service(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n\
         spec:\n  clusterIP: {ip}\n  ports:\n    - name: http\n      port: 80\n"
    )
}

fn svc_name(name: &str) -> String {
    format!("{name}.default.svc.cluster.local")
}

/// Status and sorted A records of `name`, asked over UDP with hickory.
fn lookup(s: &Server, name: &str) -> (String, Vec<String>) {
    let a = Answer::from_message("hickory-udp", &s.udp(&query(name, RecordType::A)));
    let ips = a.rdata("A");
    (a.status, ips)
}

/// Waits until `name` answers exactly `ips` (empty: NXDOMAIN); returns the
/// latency, failing the test after [`RELOAD_WAIT`].
fn await_answer(s: &Server, what: &str, name: &str, ips: &[&str]) -> Duration {
    let want = if ips.is_empty() {
        ("NXDOMAIN".to_owned(), Vec::new())
    } else {
        let mut v: Vec<String> = ips.iter().map(|ip| (*ip).to_owned()).collect();
        v.sort();
        ("NOERROR".to_owned(), v)
    };
    let took = wait_until(RELOAD_WAIT, || lookup(s, name) == want).unwrap_or_else(|| {
        panic!(
            "{what}: {name} still answers {:?} after {RELOAD_WAIT:?}, want {want:?}\n{}",
            lookup(s, name),
            s.log_text()
        )
    });
    println!("reload latency ({what}): {took:?}");
    took
}

/// Writes in place (truncate, then write), as most editors and shell
/// redirections do.
fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Replaces the file at once (a hidden temp file renamed over it), as
/// `kubectl`, the kubelet and careful editors do. An in-place write is seen
/// empty for a moment, and an empty file is a valid file without objects: a
/// reload in that moment would make the empty version the last good one.
fn replace(path: &Path, text: &str) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    write(&tmp, text);
    std::fs::rename(&tmp, path)
        .unwrap_or_else(|e| panic!("rename {} over {}: {e}", tmp.display(), path.display()));
}

/// Finds `file:LINE:COLUMN:` in a log line.
fn has_position(line: &str, file: &str) -> bool {
    line.split(file).skip(1).any(|rest| {
        let mut parts = rest.splitn(4, ':');
        parts.next() == Some("")
            && parts.next().is_some_and(|l| l.parse::<u32>().is_ok())
            && parts.next().is_some_and(|c| c.parse::<u32>().is_ok())
    })
}

fn serve_dir(dir: &TempDir) -> Server {
    let path = dir.path().to_string_lossy().into_owned();
    Server::start(&["-f", &path])
}

#[test]
fn spec_4_serve_picks_up_added_modified_broken_fixed_and_deleted_files() {
    let dir = TempDir::new().expect("temp dir");
    write(
        &dir.path().join("alpha.yaml"),
        &service("alpha", "10.96.10.10"),
    );
    let s = serve_dir(&dir);
    assert_eq!(lookup(&s, &svc_name("alpha")).1, vec!["10.96.10.10"]);
    assert_eq!(lookup(&s, &svc_name("beta")).0, "NXDOMAIN");

    let beta = dir.path().join("beta.yaml");
    replace(&beta, &service("beta", "10.96.20.20"));
    await_answer(&s, "file added", &svc_name("beta"), &["10.96.20.20"]);

    write(&beta, &service("beta", "10.96.20.21"));
    await_answer(&s, "file modified", &svc_name("beta"), &["10.96.20.21"]);

    // A typo: the file no longer parses. Its objects stay.
    replace(
        &beta,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: beta\nspec:\n  clusterIP: [10.96.20.99\n",
    );
    let error = s
        .wait_for_log(RELOAD_WAIT, |l| {
            l.contains("ERROR") && has_position(l, "beta.yaml")
        })
        .unwrap_or_else(|| panic!("no file:line:column error logged:\n{}", s.log_text()));
    println!("logged: {error}");
    assert!(
        s.wait_for_log(RELOAD_WAIT, |l| l
            .contains("still serving its last good objects"))
            .is_some(),
        "{}",
        s.log_text()
    );
    // The reload that saw the typo has happened; nothing disappeared.
    for _ in 0..10 {
        assert_eq!(lookup(&s, &svc_name("beta")).1, vec!["10.96.20.21"]);
        assert_eq!(lookup(&s, &svc_name("alpha")).1, vec!["10.96.10.10"]);
        std::thread::sleep(Duration::from_millis(50));
    }

    write(&beta, &service("beta", "10.96.20.22"));
    await_answer(&s, "file fixed", &svc_name("beta"), &["10.96.20.22"]);

    std::fs::remove_file(&beta).expect("remove beta.yaml");
    await_answer(&s, "file deleted", &svc_name("beta"), &[]);
    let a = s.dig(&[&svc_name("beta")]);
    assert_eq!(a.status, "NXDOMAIN", "{a}");

    // The untouched file served throughout.
    assert_eq!(s.dig(&[&svc_name("alpha")]).rdata("A"), vec!["10.96.10.10"]);
}

#[test]
fn spec_4_serve_follows_a_configmap_mount_swapping_its_data_symlink() {
    use std::os::unix::fs::symlink;
    // The kubelet's layout: files are links into `..data`, which links to a
    // timestamped directory; an update writes a new directory and renames a
    // new `..data` link over the old one.
    let dir = TempDir::new().expect("temp dir");
    let root = dir.path();
    let v1 = "..2026_11_22_10_00_00.000000001";
    std::fs::create_dir(root.join(v1)).expect("mkdir");
    write(
        &root.join(v1).join("gamma.yaml"),
        &service("gamma", "10.96.30.30"),
    );
    symlink(v1, root.join("..data")).expect("symlink ..data");
    symlink("..data/gamma.yaml", root.join("gamma.yaml")).expect("symlink gamma.yaml");

    let s = serve_dir(&dir);
    assert_eq!(lookup(&s, &svc_name("gamma")).1, vec!["10.96.30.30"]);

    let v2 = "..2026_11_22_10_05_00.000000002";
    std::fs::create_dir(root.join(v2)).expect("mkdir");
    write(
        &root.join(v2).join("gamma.yaml"),
        &service("gamma", "10.96.30.31"),
    );
    write(
        &root.join(v2).join("delta.yaml"),
        &service("delta", "10.96.40.40"),
    );
    symlink(v2, root.join("..data_tmp")).expect("symlink ..data_tmp");
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("swap ..data");
    symlink("..data/delta.yaml", root.join("delta.yaml")).expect("symlink delta.yaml");
    std::fs::remove_dir_all(root.join(v1)).expect("remove the old version");

    await_answer(&s, "configmap swap", &svc_name("gamma"), &["10.96.30.31"]);
    await_answer(
        &s,
        "configmap new key",
        &svc_name("delta"),
        &["10.96.40.40"],
    );
    // The timestamped directories are hidden: no duplicates were reported.
    assert!(!s.log_text().contains("duplicate"), "{}", s.log_text());
}

fn soa_serial(s: &Server) -> u32 {
    let reply = s.udp(&query("cluster.local", RecordType::SOA));
    let a = Answer::from_message("hickory-udp", &reply);
    let soa = a.rdata("SOA");
    soa.first()
        .and_then(|r| r.split(' ').nth(2))
        .and_then(|serial| serial.parse().ok())
        .unwrap_or_else(|| panic!("no SOA serial: {a}"))
}

#[test]
fn spec_2_soa_serial_increases_after_a_reload() {
    let dir = TempDir::new().expect("temp dir");
    write(
        &dir.path().join("alpha.yaml"),
        &service("alpha", "10.96.10.10"),
    );
    let s = serve_dir(&dir);
    let before = soa_serial(&s);
    write(
        &dir.path().join("beta.yaml"),
        &service("beta", "10.96.20.20"),
    );
    await_answer(&s, "serial", &svc_name("beta"), &["10.96.20.20"]);
    let after = soa_serial(&s);
    assert!(after > before, "serial {before} → {after}");
    // The same serial on every path to the SOA (NXDOMAIN authority too).
    let nx = s.dig(&[&svc_name("nope")]);
    assert_eq!(nx.status, "NXDOMAIN", "{nx}");
    let serial = nx.authority[0].rdata.split(' ').nth(2).map(str::to_owned);
    assert_eq!(serial, Some(after.to_string()), "{nx}");
    // A rewrite that changes nothing keeps the serial.
    replace(
        &dir.path().join("beta.yaml"),
        &service("beta", "10.96.20.20"),
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        soa_serial(&s),
        after,
        "a rewrite without change bumped the serial"
    );
}

#[test]
fn spec_1_2_bad_object_is_reported_with_its_position_and_the_rest_still_loads() {
    let dir = TempDir::new().expect("temp dir");
    write(
        &dir.path().join("alpha.yaml"),
        &service("alpha", "10.96.10.10"),
    );
    write(
        &dir.path().join("bad.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\n  namespace: ns\n\
         spec:\n  selector:\n    app: x\n  ports:\n    - name: http\n      port: 70000\n",
    );
    let s = serve_dir(&dir);
    let line = s
        .wait_for_log(Duration::from_secs(1), |l| l.contains("bad.yaml:"))
        .unwrap_or_else(|| panic!("bad.yaml not reported:\n{}", s.log_text()));
    assert!(
        line.contains("bad.yaml:11:13: Service ns/bad: spec.ports[0].port: 70000"),
        "{line}"
    );
    assert_eq!(lookup(&s, &svc_name("alpha")).1, vec!["10.96.10.10"]);
    assert_eq!(lookup(&s, "bad.ns.svc.cluster.local").0, "NXDOMAIN");
}

/// A truncate-then-write is seen empty for a moment: that moment must not
/// take the file's names away, nor become its "last good" state (SPEC §1.2).
#[test]
fn spec_1_2_a_file_emptied_mid_write_keeps_its_objects_until_written_or_deleted() {
    let dir = TempDir::new().expect("temp dir");
    let file = dir.path().join("svc.yaml");
    write(&file, &service("alpha", "10.96.7.1"));
    let s = serve_dir(&dir);
    await_answer(&s, "initial", &svc_name("alpha"), &["10.96.7.1"]);
    write(&file, "");
    // Give the watcher time to see the empty file (it reloads within ~100 ms).
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        lookup(&s, &svc_name("alpha")),
        ("NOERROR".to_owned(), vec!["10.96.7.1".to_owned()])
    );
    // A typo now keeps the last good objects, not the empty moment's none.
    write(&file, "apiVersion: v1\nkind: Service\nmetadata: [oops\n");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        lookup(&s, &svc_name("alpha")),
        ("NOERROR".to_owned(), vec!["10.96.7.1".to_owned()])
    );
    std::fs::remove_file(&file).expect("remove");
    await_answer(&s, "deleted", &svc_name("alpha"), &[]);
}
