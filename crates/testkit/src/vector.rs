//! Query vectors: manifests plus `query → expected answer` files, run by the
//! engine tests and again over real UDP/TCP (ARCHITECTURE house style 6).
//!
//! # Layout
//!
//! ```text
//! tests/vectors/<name>/
//!   manifests/        cluster "local" (the `-f` cluster): *.yaml
//!   clusters/<id>/    optional further clusters (`--cluster <id>=PATH`), for clusterset.local
//!   queries.txt       options and cases
//! ```
//!
//! # `queries.txt`
//!
//! One directive per line; `#` starts a comment line; blank lines are
//! ignored; fields are separated by white space.
//!
//! ```text
//! option pods insecure                     # before the first query: a `svcnet serve` flag
//! query web-0.nginx.default.svc.cluster.local A
//! rcode NOERROR                            # default NOERROR
//! flags aa rd                              # see below
//! answer web-0.nginx.default.svc.cluster.local. 5 IN A 10.244.1.10
//! authority cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. * 7200 1800 86400 5
//! ```
//!
//! - `option NAME [VALUE…]`: see [`crate::Setup`] for the names; they become
//!   `--NAME VALUE` flags of `svcnet serve` ([`Vector::serve_args`]).
//! - `query NAME TYPE [MODIFIER…]` starts a case. The name is sent with
//!   the case written. Modifiers: `edns` (payload 1232), `edns=SIZE`,
//!   `edns-version=N`, `do`, `norec` (RD clear; RD is set by default, as dig
//!   does), `cd`, `class=IN|CH|HS|ANY|N`, `opcode=N`, `qdcount=N` (written in
//!   the header; the question is still sent once), `id=N`, and `udp` or `tcp`
//!   to run the case over that transport only (default: both).
//! - `rcode NAME`: NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED,
//!   BADVERS.
//! - `flags F…`: among `aa tc rd` exactly the listed ones are set. `ra`
//!   depends on whether the server forwards, so it is checked only when the
//!   line says `ra` (set) or `-ra` (clear). Without a `flags` line the flags
//!   are not checked.
//! - `answer RR`, `authority RR`, `additional RR`: the section holds exactly
//!   these records, in any order (headless answers rotate). A section with
//!   no line must be empty (the OPT record aside). `RR` is
//!   `owner ttl class type rdata…`; any field, or any single word of the
//!   rdata, may be `*`; rdata `*` alone matches any rdata (SOA serials are
//!   time-seeded). Owners and rdata compare case-insensitively.
//! - `answer *` (or `authority *`, `additional *`): the section is not
//!   checked. `count answer N`: it holds N records, whatever they are.
//! - `edns SIZE` or `edns none`: the OPT record expected. By default a
//!   response carries an OPT advertising 1232 exactly when the query had one
//!   (header-only FORMERR/NOTIMP answers aside).
//! - `case exact`: answer owners must also match in case (the question's
//!   case is echoed; other sections compare case-insensitively, as name
//!   compression may carry the question's case into them).
//!
//! Every response is also held to the rules any reply obeys: hickory-proto
//! parses it, QR is set, ID, opcode and RD are the query's, the question is
//! echoed byte for byte (header-only FORMERR/NOTIMP may omit it), a UDP reply
//! fits the client's limit and a TCP reply is never truncated
//! ([`check_transport`]).

use std::path::{Path, PathBuf};

use svcnet_wire::{class, parse_type, rcode, rcode_name};

use crate::packet::{EdnsSpec, QuerySpec};
use crate::response::{Response, Rr};
use crate::setup::{Setup, workspace_root};

/// How a query travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP: the client's size limit applies.
    Udp,
    /// TCP: never truncated.
    Tcp,
}

impl Transport {
    /// `udp` or `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// What one section must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SectionExpect {
    /// Record patterns (`owner ttl class type rdata`, `*` wildcards).
    pub records: Vec<String>,
    /// Not checked at all.
    pub any: bool,
    /// Exactly this many records, whatever they are.
    pub count: Option<usize>,
}

/// The expected flags (`flags` line).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlagsExpect {
    /// AA set.
    pub aa: bool,
    /// TC set.
    pub tc: bool,
    /// RD set.
    pub rd: bool,
    /// RA set, clear, or not checked.
    pub ra: Option<bool>,
}

/// What a response must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    /// RCODE (extended).
    pub rcode: u16,
    /// Flags, when checked.
    pub flags: Option<FlagsExpect>,
    /// Answer section.
    pub answer: SectionExpect,
    /// Authority section.
    pub authority: SectionExpect,
    /// Additional section (OPT excluded).
    pub additional: SectionExpect,
    /// The OPT record's payload (`Some(None)`: no OPT), when not the default rule.
    pub edns: Option<Option<u16>>,
    /// Answer owners must match in case too.
    pub case_exact: bool,
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            rcode: rcode::NOERROR,
            flags: None,
            answer: SectionExpect::default(),
            authority: SectionExpect::default(),
            additional: SectionExpect::default(),
            edns: None,
            case_exact: false,
        }
    }
}

/// One query and what must come back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// `file:line` of the `query` line, for messages.
    pub origin: String,
    /// The query.
    pub query: QuerySpec,
    /// The transports it runs over.
    pub transports: Vec<Transport>,
    /// The expectation.
    pub expect: Expect,
}

/// A vector directory, loaded.
#[derive(Clone, Debug)]
pub struct Vector {
    /// The directory name.
    pub name: String,
    /// The directory.
    pub dir: PathBuf,
    /// Clusters and options.
    pub setup: Setup,
    /// The cases, in file order.
    pub cases: Vec<Case>,
}

impl Vector {
    /// The `svcnet serve` arguments for this vector's state (without
    /// `--listen` and upstream flags).
    pub fn serve_args(&self) -> Vec<String> {
        match self.setup.serve_args() {
            Ok(args) => args,
            Err(e) => panic!("vector {}: {e}", self.name),
        }
    }
}

/// `tests/vectors` at the workspace root.
pub fn vectors_dir() -> PathBuf {
    workspace_root().join("tests/vectors")
}

fn parse_rcode(s: &str) -> Option<u16> {
    let up = s.to_ascii_uppercase();
    (0..=23).find(|r| rcode_name(*r) == up)
}

fn parse_class(s: &str) -> Option<u16> {
    match s.to_ascii_uppercase().as_str() {
        "IN" => Some(class::IN),
        "CH" | "CHAOS" => Some(class::CH),
        "HS" => Some(4),
        "ANY" => Some(class::ANY),
        "NONE" => Some(254),
        n => n.parse().ok(),
    }
}

fn parse_number<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{key}={v}: not a number"))
}

fn parse_query_line(words: &[&str]) -> Result<(QuerySpec, Vec<Transport>), String> {
    let [name, qtype, modifiers @ ..] = words else {
        return Err("query needs a NAME and a TYPE".to_owned());
    };
    let qtype = parse_type(qtype).ok_or_else(|| format!("unknown type {qtype:?}"))?;
    svcnet_wire::encode_name(name).map_err(|e| format!("query name {name:?}: {e}"))?;
    let mut q = QuerySpec::new(name, qtype);
    let mut transports = Vec::new();
    for m in modifiers {
        let (key, value) = m.split_once('=').unwrap_or((m, ""));
        let edns = |q: &mut QuerySpec| q.edns.get_or_insert_with(EdnsSpec::default).to_owned();
        match (key, value) {
            ("edns", "") => q.edns = Some(edns(&mut q)),
            ("edns", v) => {
                q.edns = Some(EdnsSpec {
                    payload: parse_number(key, v)?,
                    ..edns(&mut q)
                });
            }
            ("edns-version", v) => {
                q.edns = Some(EdnsSpec {
                    version: parse_number(key, v)?,
                    ..edns(&mut q)
                });
            }
            ("do", "") => {
                q.edns = Some(EdnsSpec {
                    dnssec_ok: true,
                    ..edns(&mut q)
                });
            }
            ("norec", "") => q.rd = false,
            ("cd", "") => q.cd = true,
            ("class", v) => q.qclass = parse_class(v).ok_or_else(|| format!("class {v:?}"))?,
            ("opcode", v) => q.opcode = parse_number(key, v)?,
            ("qdcount", v) => q.qdcount = Some(parse_number(key, v)?),
            ("id", v) => q.id = parse_number(key, v)?,
            ("udp", "") => transports.push(Transport::Udp),
            ("tcp", "") => transports.push(Transport::Tcp),
            _ => return Err(format!("unknown query modifier {m:?}")),
        }
    }
    if transports.is_empty() {
        transports = vec![Transport::Udp, Transport::Tcp];
    }
    Ok((q, transports))
}

fn check_pattern(words: &[&str]) -> Result<String, String> {
    if words.len() < 5 {
        return Err(format!(
            "a record is `owner ttl class type rdata…`, got {:?}",
            words.join(" ")
        ));
    }
    if words[1] != "*" && words[1].parse::<u32>().is_err() {
        return Err(format!("TTL {:?} is not a number or *", words[1]));
    }
    Ok(words.join(" "))
}

fn section_mut<'e>(e: &'e mut Expect, name: &str) -> Option<&'e mut SectionExpect> {
    match name {
        "answer" => Some(&mut e.answer),
        "authority" => Some(&mut e.authority),
        "additional" => Some(&mut e.additional),
        _ => None,
    }
}

/// `option` lines: name and values.
type Options = Vec<(String, Vec<String>)>;

/// Options and cases of a `queries.txt` text; `origin` names it in messages.
fn parse_file(text: &str, origin: &str) -> Result<(Options, Vec<Case>), String> {
    let mut options = Vec::new();
    let mut cases: Vec<Case> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let at = format!("{origin}:{}", i + 1);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let (directive, rest) = (words[0], &words[1..]);
        let fail = |e: String| format!("{at}: {e}");
        if directive == "option" {
            if !cases.is_empty() {
                return Err(fail("options go before the first query".to_owned()));
            }
            let Some((name, values)) = rest.split_first() else {
                return Err(fail("option needs a name".to_owned()));
            };
            options.push((
                (*name).to_owned(),
                values.iter().map(|v| (*v).to_owned()).collect(),
            ));
            continue;
        }
        if directive == "query" {
            let (query, transports) = parse_query_line(rest).map_err(fail)?;
            cases.push(Case {
                origin: at,
                query,
                transports,
                expect: Expect::default(),
            });
            continue;
        }
        let Some(case) = cases.last_mut() else {
            return Err(fail(format!("{directive:?} before the first query")));
        };
        let e = &mut case.expect;
        match directive {
            "rcode" => {
                let [r] = rest else {
                    return Err(fail("rcode takes one name".to_owned()));
                };
                e.rcode = parse_rcode(r).ok_or_else(|| fail(format!("unknown rcode {r:?}")))?;
            }
            "flags" => {
                let mut f = FlagsExpect::default();
                for flag in rest {
                    match *flag {
                        "aa" => f.aa = true,
                        "tc" => f.tc = true,
                        "rd" => f.rd = true,
                        "ra" => f.ra = Some(true),
                        "-ra" => f.ra = Some(false),
                        other => return Err(fail(format!("unknown flag {other:?}"))),
                    }
                }
                e.flags = Some(f);
            }
            "answer" | "authority" | "additional" => {
                let s = section_mut(e, directive).expect("a section name");
                if rest == ["*"] {
                    s.any = true;
                } else {
                    s.records.push(check_pattern(rest).map_err(fail)?);
                }
            }
            "count" => {
                let [name, n] = rest else {
                    return Err(fail("count takes a section and a number".to_owned()));
                };
                let n: usize = n
                    .parse()
                    .map_err(|_| fail(format!("{n:?}: not a number")))?;
                let Some(s) = section_mut(e, name) else {
                    return Err(fail(format!("unknown section {name:?}")));
                };
                s.count = Some(n);
            }
            "edns" => match rest {
                ["none"] => e.edns = Some(None),
                [n] => {
                    e.edns = Some(Some(
                        n.parse()
                            .map_err(|_| fail(format!("edns {n:?}: a size or none")))?,
                    ));
                }
                _ => return Err(fail("edns takes a size or none".to_owned())),
            },
            "case" => match rest {
                ["exact"] => e.case_exact = true,
                _ => return Err(fail("only `case exact` is known".to_owned())),
            },
            other => return Err(fail(format!("unknown directive {other:?}"))),
        }
    }
    Ok((options, cases))
}

/// Parses cases written in the `queries.txt` language (no `option` lines:
/// those belong to the setup). `origin` names the text in messages.
pub fn parse_cases(text: &str, origin: &str) -> Result<Vec<Case>, String> {
    let (options, cases) = parse_file(text, origin)?;
    if !options.is_empty() {
        return Err(format!(
            "{origin}: `option` lines need a vector directory; set options on the Setup"
        ));
    }
    Ok(cases)
}

/// Loads one vector directory.
pub fn load_vector(dir: &Path) -> Result<Vector, String> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let queries = dir.join("queries.txt");
    let text =
        std::fs::read_to_string(&queries).map_err(|e| format!("{}: {e}", queries.display()))?;
    let shown = queries
        .strip_prefix(workspace_root())
        .unwrap_or(&queries)
        .display()
        .to_string();
    let (options, cases) = parse_file(&text, &shown)?;
    let manifests = dir.join("manifests");
    if !manifests.is_dir() {
        return Err(format!("{}: missing", manifests.display()));
    }
    let mut setup = Setup::new().cluster_dir("local", &manifests);
    let clusters_dir = dir.join("clusters");
    if clusters_dir.is_dir() {
        let mut ids: Vec<PathBuf> = std::fs::read_dir(&clusters_dir)
            .map_err(|e| format!("{}: {e}", clusters_dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        ids.sort();
        for p in ids {
            let id = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            setup = setup.cluster_dir(&id, &p);
        }
    }
    for (option, values) in &options {
        setup = setup.option(option, &values.join(" "));
    }
    setup.configs().map_err(|e| format!("{shown}: {e}"))?;
    if cases.is_empty() {
        return Err(format!("{shown}: no queries"));
    }
    Ok(Vector {
        name,
        dir: dir.to_path_buf(),
        setup,
        cases,
    })
}

/// Every vector under `dir` (each subdirectory), sorted by name. Panics
/// with the reason when one does not load.
#[track_caller]
pub fn load_vectors(dir: &Path) -> Vec<Vector> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|d| match load_vector(d) {
            Ok(v) => v,
            Err(e) => panic!("vector {}: {e}", d.display()),
        })
        .collect()
}

/// Whether an actual record matches a pattern line.
fn matches(pattern: &str, rr: &Rr, case_exact: bool) -> bool {
    let words: Vec<&str> = pattern.split_whitespace().collect();
    let name_eq = |want: &str, got: &str| {
        let (want, got) = (want.trim_end_matches('.'), got.trim_end_matches('.'));
        if case_exact {
            want == got
        } else {
            want.eq_ignore_ascii_case(got)
        }
    };
    let field = |want: &str, got: &str| want == "*" || want.eq_ignore_ascii_case(got);
    let [owner, ttl, class, rtype, rdata @ ..] = words.as_slice() else {
        return false;
    };
    if !(*owner == "*" || name_eq(owner, &rr.owner))
        || !field(ttl, &rr.ttl.to_string())
        || !field(class, &rr.class)
        || !field(rtype, &rr.rtype)
    {
        return false;
    }
    if rdata == ["*"] {
        return true;
    }
    let got: Vec<&str> = rr.rdata.split_whitespace().collect();
    got.len() == rdata.len() && rdata.iter().zip(&got).all(|(w, g)| field(w, g))
}

/// Compares one section; problems are appended to `out`.
fn check_section(
    title: &str,
    want: &SectionExpect,
    got: &[Rr],
    exact: bool,
    out: &mut Vec<String>,
) {
    if want.any {
        return;
    }
    if let Some(n) = want.count {
        if got.len() != n {
            out.push(format!("{title}: expected {n} records, got {}", got.len()));
        }
        if want.records.is_empty() {
            return;
        }
    }
    // Most specific patterns first, so a wildcard does not take a record an
    // exact pattern needs.
    let mut patterns: Vec<&String> = want.records.iter().collect();
    patterns.sort_by_key(|p| p.matches('*').count());
    let mut used = vec![false; got.len()];
    let mut missing = Vec::new();
    for p in patterns {
        match (0..got.len()).find(|&i| !used[i] && matches(p, &got[i], exact)) {
            Some(i) => used[i] = true,
            None => missing.push(p.clone()),
        }
    }
    let unexpected: Vec<String> = got
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(r, _)| r.to_string())
        .collect();
    if missing.is_empty() && unexpected.is_empty() {
        return;
    }
    let mut msg = format!("{title} differs:");
    for m in &missing {
        msg.push_str(&format!("\n    missing:    {m}"));
    }
    for u in &unexpected {
        msg.push_str(&format!("\n    unexpected: {u}"));
    }
    out.push(msg);
}

fn header_only_rcode(r: u16) -> bool {
    r == rcode::FORMERR || r == rcode::NOTIMP
}

/// Checks a decoded response against a case (transport-independent rules;
/// see [`check_transport`] for the size rules). The error lists every
/// difference and shows the response.
pub fn check(case: &Case, resp: &Response) -> Result<(), String> {
    let q = &case.query;
    let e = &case.expect;
    let mut problems = Vec::new();
    if !resp.flags.qr {
        problems.push("QR is not set".to_owned());
    }
    if resp.id != q.id {
        problems.push(format!("id {} does not echo the query's {}", resp.id, q.id));
    }
    if resp.opcode != q.opcode {
        problems.push(format!(
            "opcode {} is not the query's {}",
            resp.opcode, q.opcode
        ));
    }
    if resp.flags.rd != q.rd {
        problems.push(format!("RD {} is not the query's {}", resp.flags.rd, q.rd));
    }
    let echo = vec![(q.fqdn(), q.qtype, q.qclass)];
    if resp.question != echo && !(resp.question.is_empty() && header_only_rcode(resp.rcode)) {
        problems.push(format!(
            "question {:?} does not echo {:?}",
            resp.question, echo
        ));
    }
    if resp.rcode != e.rcode {
        problems.push(format!(
            "rcode: expected {}, got {}",
            rcode_name(e.rcode),
            resp.rcode_name()
        ));
    }
    if let Some(f) = e.flags {
        let got = resp.flags;
        let mut diff = Vec::new();
        for (name, want, have) in [
            ("aa", f.aa, got.aa),
            ("tc", f.tc, got.tc),
            ("rd", f.rd, got.rd),
        ] {
            if want != have {
                diff.push(format!("{name} {}", if have { "set" } else { "clear" }));
            }
        }
        if let Some(ra) = f.ra
            && ra != got.ra
        {
            diff.push(format!("ra {}", if got.ra { "set" } else { "clear" }));
        }
        if !diff.is_empty() {
            problems.push(format!("flags: got {} ({})", got, diff.join(", ")));
        }
    }
    let want_edns = match e.edns {
        Some(explicit) => Some(explicit),
        None if q.edns.is_some() && !header_only_rcode(resp.rcode) => Some(Some(1232)),
        None if q.edns.is_none() => Some(None),
        None => None,
    };
    if let Some(want) = want_edns {
        let got = resp.edns.map(|o| o.payload);
        if got != want {
            problems.push(format!("OPT payload: expected {want:?}, got {got:?}"));
        }
        if resp.edns.is_some_and(|o| o.version != 0) {
            problems.push("OPT version is not 0".to_owned());
        }
    }
    check_section(
        "answer",
        &e.answer,
        &resp.answer,
        e.case_exact,
        &mut problems,
    );
    check_section(
        "authority",
        &e.authority,
        &resp.authority,
        false,
        &mut problems,
    );
    check_section(
        "additional",
        &e.additional,
        &resp.additional,
        false,
        &mut problems,
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: query {}\n  {}\n  response:\n    {}",
            case.origin,
            q,
            problems.join("\n  "),
            resp.to_string().trim_end().replace('\n', "\n    ")
        ))
    }
}

/// [`check`], plus the transport's rules: a UDP reply fits the client's
/// limit (512, or its EDNS size within 512..=1232); a TCP reply is never
/// truncated.
pub fn check_transport(case: &Case, transport: Transport, resp: &Response) -> Result<(), String> {
    let limit = case.query.udp_limit();
    let size = match transport {
        Transport::Udp if resp.len > limit => Some(format!(
            "{}: query {} over udp: {} bytes exceed the limit of {limit}",
            case.origin, case.query, resp.len
        )),
        Transport::Tcp if resp.flags.tc => Some(format!(
            "{}: query {} over tcp: TC is set",
            case.origin, case.query
        )),
        _ => None,
    };
    match (check(case, resp), size) {
        (Ok(()), None) => Ok(()),
        (Ok(()), Some(s)) => Err(s),
        (Err(e), None) => Err(e),
        (Err(e), Some(s)) => Err(format!("{s}\n{e}")),
    }
}

/// Runs every case of a vector over each of its transports through `ask`
/// (query packet in, response bytes out) and checks the replies. Returns
/// the number of exchanges, or every failure.
pub fn run_vector(
    vector: &Vector,
    mut ask: impl FnMut(Transport, &[u8]) -> Result<Vec<u8>, String>,
) -> Result<usize, String> {
    let mut failures = Vec::new();
    let mut n = 0;
    for case in &vector.cases {
        let packet = case.query.packet();
        for &t in &case.transports {
            n += 1;
            let result = ask(t, &packet)
                .and_then(|bytes| Response::decode(&bytes))
                .and_then(|resp| check_transport(case, t, &resp));
            if let Err(e) = result {
                failures.push(format!("[{} over {}] {e}", vector.name, t.as_str()));
            }
        }
    }
    if failures.is_empty() {
        Ok(n)
    } else {
        Err(format!(
            "{} of {n} exchanges failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(line: &str) -> Rr {
        let w: Vec<&str> = line.split_whitespace().collect();
        Rr {
            owner: w[0].to_owned(),
            ttl: w[1].parse().unwrap(),
            class: w[2].to_owned(),
            rtype: w[3].to_owned(),
            rdata: w[4..].join(" "),
        }
    }

    #[test]
    fn parses_cases_and_reports_lines() {
        let cases = parse_cases(
            "# c\nquery A.b A edns=4096 do norec udp\nrcode nxdomain\nflags aa -ra\n\
             authority b. 5 IN SOA *\ncount answer 0\nedns none\n",
            "t",
        )
        .unwrap();
        let c = &cases[0];
        assert_eq!(c.origin, "t:2");
        assert_eq!(c.transports, [Transport::Udp]);
        assert_eq!(c.query.name, "A.b");
        assert!(!c.query.rd);
        let e = c.query.edns.unwrap();
        assert_eq!((e.payload, e.version, e.dnssec_ok), (4096, 0, true));
        assert_eq!(c.expect.rcode, rcode::NXDOMAIN);
        assert_eq!(
            c.expect.flags,
            Some(FlagsExpect {
                aa: true,
                ra: Some(false),
                ..FlagsExpect::default()
            })
        );
        assert_eq!(c.expect.answer.count, Some(0));
        assert_eq!(c.expect.edns, Some(None));
        let err = parse_cases("query a A\nanswer a. x IN A 1.2.3.4\n", "t").unwrap_err();
        assert!(err.starts_with("t:2: "), "{err}");
        assert!(parse_cases("rcode NOERROR\n", "t").is_err());
        assert!(parse_cases("option ttl 3\nquery a A\n", "t").is_err());
        assert!(parse_cases("query a BOGUS\n", "t").is_err());
    }

    #[test]
    fn wildcards_and_case() {
        let soa = rr(
            "Cluster.Local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 17 7200 1800 86400 5",
        );
        assert!(matches("cluster.local. 5 IN SOA *", &soa, false));
        assert!(matches(
            "cluster.local. * IN SOA ns.dns.cluster.local. hostmaster.cluster.local. * 7200 1800 86400 5",
            &soa,
            false
        ));
        assert!(!matches("cluster.local. 5 IN SOA * 7200", &soa, false));
        assert!(!matches("cluster.local. 5 IN SOA *", &soa, true));
        assert!(matches("Cluster.Local 5 IN SOA *", &soa, true));
        // Exact patterns claim their records before wildcards do.
        let got = [rr("a. 5 IN A 1.1.1.1"), rr("a. 5 IN A 2.2.2.2")];
        let want = SectionExpect {
            records: vec!["a. 5 IN A *".to_owned(), "a. 5 IN A 1.1.1.1".to_owned()],
            ..SectionExpect::default()
        };
        let mut problems = Vec::new();
        check_section("answer", &want, &got, false, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
    }
}
