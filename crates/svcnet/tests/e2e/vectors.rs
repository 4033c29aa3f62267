//! The data-driven vectors of `tests/vectors`, which the engine tests run
//! without a network, run again against the real server over UDP and TCP
//! (ARCHITECTURE house style 6).

use svcnet_testkit::{load_vectors, run_vector, vectors_dir};

use crate::harness::Server;

#[test]
fn spec_vectors_over_real_udp_and_tcp() {
    let vectors = load_vectors(&vectors_dir());
    assert!(
        !vectors.is_empty(),
        "no vectors in {}",
        vectors_dir().display()
    );
    let mut failures = Vec::new();
    let mut cases = 0;
    for v in &vectors {
        let args = v.serve_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = Server::start(&args);
        let result = run_vector(v, |transport, packet| server.exchange(transport, packet));
        match result {
            Ok(n) => cases += n,
            Err(e) => failures.push(format!("vector {}:\n{e}\n{}", v.name, server.log_text())),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
    assert!(cases > 50, "only {cases} cases ran");
}
