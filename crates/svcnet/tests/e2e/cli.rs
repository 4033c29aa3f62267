//! The one-shot commands (SPEC §4): `resolve`, `zone`, `lint`, and the help
//! every command carries. They must agree with what `serve` answers.

use std::process::Output;

use tempfile::TempDir;

use crate::harness::{Server, example, svcnet};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    )
}

/// web-0's address as `serve` gives it to dig.
fn served_web0() -> String {
    let s = Server::start(&["-f", &example("local")]);
    let a = s.dig(&["web-0.nginx.default.svc.cluster.local"]);
    let ips = a.rdata("A");
    assert_eq!(ips.len(), 1, "{a}");
    ips[0].clone()
}

#[test]
fn spec_4_resolve_expands_the_search_path_and_says_why() {
    let out = svcnet(["resolve", "-f", "examples/local", "web-0.nginx"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let ip = served_web0();
    assert!(
        text.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f == [
                "web-0.nginx.default.svc.cluster.local.",
                "5",
                "IN",
                "A",
                ip.as_str(),
            ]
        }),
        "the answer serve gives ({ip}):\n{}",
        show(&out)
    );
    assert!(text.contains("status: NOERROR"), "{}", show(&out));
    assert!(text.contains(";; WHY"), "{}", show(&out));
    assert!(text.contains("Service default/nginx"), "{}", show(&out));
    assert!(
        text.contains("web-2") && text.contains("not Ready"),
        "{}",
        show(&out)
    );

    let out = svcnet(["resolve", "-f", "examples/local", "nope.default"]);
    assert!(stdout(&out).contains("NXDOMAIN"), "{}", show(&out));
}

#[test]
fn spec_4_zone_prints_parseable_records_that_serve_answers() {
    let out = svcnet(["zone", "-f", "examples/local"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = stdout(&out);
    let mut records = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if let Some(directive) = line.strip_prefix('$') {
            assert!(
                directive.starts_with("ORIGIN ") || directive.starts_with("TTL "),
                "unknown directive: {line}"
            );
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 5, "not owner TTL class type rdata: {line:?}");
        assert!(fields[0].ends_with('.'), "owner not absolute: {line:?}");
        assert!(fields[1].parse::<u32>().is_ok(), "TTL: {line:?}");
        assert_eq!(fields[2], "IN", "{line:?}");
        assert!(!fields[4].is_empty(), "{line:?}");
        records += 1;
    }
    assert!(records > 20, "{records} records only:\n{text}");
    let ip = served_web0();
    let want = format!("web-0.nginx.default.svc.cluster.local.\t5\tIN\tA\t{ip}");
    assert!(text.lines().any(|l| l == want), "missing {want:?}:\n{text}");
    assert!(
        text.contains(
            "cluster.local.\t5\tIN\tSOA\tns.dns.cluster.local. hostmaster.cluster.local. "
        ),
        "{text}"
    );
}

#[test]
fn spec_4_lint_warns_about_the_headless_port_pitfall() {
    let out = svcnet(["lint", "-f", "examples/local"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "warnings exit 0:\n{}",
        show(&out)
    );
    let text = stdout(&out);
    let warning = text
        .lines()
        .find(|l| l.contains("api-headless"))
        .unwrap_or_else(|| panic!("no seed-004 warning:\n{}", show(&out)));
    assert!(
        warning.starts_with("examples/local/03-port-mismatch.yaml:")
            && warning.contains("warning")
            && warning.contains("Service default/api-headless")
            && warning.contains("targetPort 8000"),
        "{warning}"
    );

    let strict = svcnet(["lint", "--strict", "-f", "examples/local"]);
    assert_eq!(
        strict.status.code(),
        Some(1),
        "--strict fails on warnings:\n{}",
        show(&strict)
    );
}

#[test]
fn spec_1_2_lint_reports_an_invalid_object_with_file_line_column_and_fails() {
    let dir = TempDir::new().expect("temp dir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\n  namespace: ns\n\
         spec:\n  selector:\n    app: x\n  ports:\n    - name: http\n      port: 70000\n",
    )
    .expect("write bad.yaml");
    let path = file.to_string_lossy().into_owned();
    let out = svcnet(["lint", "-f", &path]);
    assert_eq!(out.status.code(), Some(1), "errors exit 1:\n{}", show(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains("70000"))
        .unwrap_or_else(|| panic!("no port error:\n{}", show(&out)));
    // `file:line:column: [severity: ]kind namespace/name: what is wrong`.
    let rest = line
        .strip_prefix(&format!("{path}:11:13: "))
        .unwrap_or_else(|| panic!("not file:line:column: {line}"));
    let rest = rest.strip_prefix("error: ").unwrap_or(rest);
    assert!(
        rest.starts_with("Service ns/bad: spec.ports[0].port: 70000"),
        "{line}"
    );
    // `zone` reports the same error on stderr, and still prints the rest.
    let out = svcnet(["zone", "-f", &path]);
    assert!(
        stderr(&out).contains(&format!(
            "{path}:11:13: Service ns/bad: spec.ports[0].port: 70000"
        )),
        "{}",
        show(&out)
    );
}

#[test]
fn spec_4_help_of_every_command_has_an_example() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["resolve", "--help"],
        &["zone", "--help"],
        &["lint", "--help"],
    ] {
        let out = svcnet(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", show(&out));
        let text = stdout(&out);
        assert!(
            text.contains("Example"),
            "svcnet {}: no example:\n{text}",
            args.join(" ")
        );
        assert!(text.contains("svcnet "), "{args:?}:\n{text}");
    }
}

/// Every flag of `serve` (and so every config-file key) is in the README.
#[test]
fn readme_documents_every_serve_flag() {
    let out = svcnet(["serve", "--help"]);
    assert!(out.status.success(), "{}", show(&out));
    let readme =
        std::fs::read_to_string(crate::harness::workspace().join("README.md")).expect("README.md");
    let help = stdout(&out);
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("-f, ").unwrap_or(l);
            let flag = l.strip_prefix("--")?.split([' ', '=', '<', '[']).next()?;
            (!flag.is_empty() && flag != "help").then_some(flag)
        })
        .collect();
    assert!(flags.len() > 30, "too few flags parsed: {flags:?}");
    let missing: Vec<&&str> = flags
        .iter()
        .filter(|f| !readme.contains(&format!("`--{f}")))
        .collect();
    assert!(missing.is_empty(), "README lacks {missing:?}");
}
