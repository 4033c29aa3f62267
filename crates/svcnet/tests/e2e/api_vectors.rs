//! The data-driven vectors of `tests/vectors` again, from the Kubernetes
//! API (issue "Kubernetes API mode", done when: "the same expected answers
//! from manifests and from the API").
//!
//! Each vector's manifests go through the emulated control plane exactly as
//! manifest mode loads them (`Setup::pipeline`); the resolved state of each
//! cluster (Services with their ClusterIPs, the EndpointSlices the endpoints
//! controller made, Pods with IPs, Namespaces, ServiceExports and
//! ServiceImports) is turned into the API objects a real API server would
//! serve (`svcnet_testkit::kube_objects`) and loaded into one fake API
//! server per cluster. `svcnet serve --kubeconfig ID=FILE...` with the
//! vector's options must then pass the vector's cases over UDP and TCP.

use std::path::PathBuf;
use std::time::Duration;

use svcnet_fakeapi::FakeApi;
use svcnet_testkit::{Vector, kube_objects, load_vectors, run_vector, vectors_dir};
use tempfile::TempDir;

use crate::harness::{Server, wait_until};

/// The log line once every watcher of every cluster has listed.
const SYNCED: &str = "Kubernetes API state complete";

/// One vector's clusters, each behind its own fake API server.
struct ApiClusters {
    /// Kept alive while the server runs.
    _apis: Vec<FakeApi>,
    _dir: TempDir,
    /// `--kubeconfig ID=FILE` for each cluster, `--cluster-id` of the first.
    args: Vec<String>,
}

fn load_into_fakes(v: &Vector) -> ApiClusters {
    let pipeline = v
        .setup
        .pipeline()
        .unwrap_or_else(|e| panic!("vector {}: {e}", v.name));
    let dir = TempDir::new().expect("temp dir");
    let mut apis = Vec::new();
    let mut args = Vec::new();
    for (id, loaded) in &pipeline.loads {
        let api = FakeApi::start();
        api.apply_all(kube_objects(&loaded.view.all()));
        let sub: PathBuf = dir.path().join(id);
        std::fs::create_dir_all(&sub).expect("kubeconfig dir");
        let kubeconfig = api.write_kubeconfig(&sub);
        args.push("--kubeconfig".to_owned());
        args.push(format!("{id}={}", kubeconfig.display()));
        apis.push(api);
    }
    if let Some((first, _)) = pipeline.loads.first() {
        args.push("--cluster-id".to_owned());
        args.push(first.clone());
    }
    ApiClusters {
        _apis: apis,
        _dir: dir,
        args,
    }
}

/// The vector's `serve` flags without its manifest sources (`-f`,
/// `--cluster`, `--cluster-id`): the options only.
fn option_args(v: &Vector) -> Vec<String> {
    let mut out = Vec::new();
    let mut args = v.serve_args().into_iter();
    while let Some(a) = args.next() {
        if matches!(a.as_str(), "-f" | "--cluster" | "--cluster-id") {
            args.next();
        } else {
            out.push(a);
        }
    }
    out
}

fn run_from_api(v: &Vector) -> Result<usize, String> {
    // The fakes and their kubeconfigs live until the end of the run.
    let ApiClusters {
        _apis,
        _dir,
        mut args,
    } = load_into_fakes(v);
    args.extend(option_args(v));
    // A vector is checked against the complete state only: no startup
    // timeout may cut in, and the run waits for the sync below.
    args.extend(["--no-admin", "--startup-timeout", "60s"].map(str::to_owned));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    // The complete state is served once the snapshot built after the sync
    // is: the `serving:` line that follows the sync line.
    let served = wait_until(Duration::from_secs(20), || {
        let lines = server.log_lines();
        lines
            .iter()
            .position(|l| l.contains(SYNCED))
            .is_some_and(|i| lines[i..].iter().any(|l| l.contains("serving: ")))
    });
    if served.is_none() {
        return Err(format!(
            "vector {}: not synced within 20 s\n{}",
            v.name,
            server.log_text()
        ));
    }
    run_vector(v, |transport, packet| server.exchange(transport, packet)).map_err(|e| {
        format!(
            "vector {} from the API:\n{e}\n{}",
            v.name,
            server.log_text()
        )
    })
}

#[test]
fn spec_vectors_answer_the_same_from_the_kubernetes_api() {
    let vectors = load_vectors(&vectors_dir());
    assert!(
        !vectors.is_empty(),
        "no vectors in {}",
        vectors_dir().display()
    );
    // The vectors run side by side (each has its own fakes and server):
    // one after the other they would take most of a minute.
    let results: Vec<(String, Result<usize, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = vectors
            .iter()
            .map(|v| (v.name.clone(), scope.spawn(|| run_from_api(v))))
            .collect();
        handles
            .into_iter()
            .map(|(name, h)| {
                let result = h
                    .join()
                    .unwrap_or_else(|_| Err("the vector's thread panicked".to_owned()));
                (name, result)
            })
            .collect()
    });
    let mut failures = Vec::new();
    let mut cases = 0;
    for (name, result) in results {
        match result {
            Ok(n) => cases += n,
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
    assert!(cases > 50, "only {cases} cases ran");
}
