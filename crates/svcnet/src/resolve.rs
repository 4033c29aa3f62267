//! `svcnet resolve`: one query through the same engine `serve` uses, printed
//! dig style, followed by the reasons (SPEC §4).

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use svcnet_dns::{Context, Outcome, Transport, answer};
use svcnet_index::Snapshot;
use svcnet_manifest::control::{ips_text, readiness_words};
use svcnet_model::{Object, ServiceAddress, selector_matches};
use svcnet_server::Pipeline;
use svcnet_wire::{Decoded, decode_response, encode_name, parse_type, rcode, rcode_name};

use crate::StateArgs;

fn query(snap: &Snapshot, name: &str, qtype: u16) -> anyhow::Result<Decoded> {
    let mut packet = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    packet.extend(encode_name(name).map_err(|e| anyhow!("{name}: {e}"))?);
    packet.extend(qtype.to_be_bytes());
    packet.extend(1u16.to_be_bytes());
    let mut out = Vec::with_capacity(65535);
    let ctx = Context {
        transport: Transport::Tcp,
        rotation: 0,
        forward: false,
    };
    match answer(snap, &packet, &ctx, &mut out) {
        Outcome::Reply(n) | Outcome::Chase(n) => {
            decode_response(&out[..n]).context("decoding our own response")
        }
        Outcome::Drop | Outcome::Forward => Err(anyhow!("no answer")),
    }
}

/// The names a pod in `ns` would try for `name` (resolv.conf `ndots:5`).
fn search_list(name: &str, ns: &str, zone: &str) -> Vec<String> {
    if let Some(abs) = name.strip_suffix('.') {
        return vec![format!("{abs}.")];
    }
    let mut list: Vec<String> = [
        format!("{ns}.svc.{zone}"),
        format!("svc.{zone}"),
        zone.to_owned(),
    ]
    .iter()
    .map(|s| format!("{name}.{s}."))
    .collect();
    if name.matches('.').count() >= 5 {
        list.insert(0, format!("{name}."));
    } else {
        list.push(format!("{name}."));
    }
    list
}

pub(crate) fn run(
    p: &Pipeline,
    state: &StateArgs,
    ns: &str,
    name: &str,
    rtype: &str,
) -> anyhow::Result<ExitCode> {
    let qtype = parse_type(rtype).ok_or_else(|| anyhow!("unknown record type {rtype:?}"))?;
    let mut index = p.index.clone();
    let snap = index.build();
    let zone = state.zone.first().map_or("cluster.local", String::as_str);
    let mut chosen = None;
    let mut tried = String::new();
    for candidate in search_list(name, ns, zone) {
        let d = query(&snap, &candidate, qtype)?;
        let _ = writeln!(
            tried,
            ";; tried {candidate} {rtype}: {}",
            rcode_name(d.rcode)
        );
        let done = d.rcode != rcode::NXDOMAIN && d.rcode != rcode::REFUSED;
        chosen = Some((candidate, d));
        if done {
            break;
        }
    }
    let Some((fqdn, d)) = chosen else {
        return Err(anyhow!("nothing to ask"));
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        ";; svcnet resolve {name} {rtype} (as a pod in namespace {ns}, search path with ndots:5)"
    );
    let _ = write!(out, "{tried}");
    let _ = writeln!(
        out,
        ";; ->>HEADER<<- status: {}, flags: {}",
        rcode_name(d.rcode),
        d.flags.join(" ")
    );
    for (title, lines) in ["ANSWER", "AUTHORITY", "ADDITIONAL"]
        .iter()
        .zip(&d.sections)
    {
        if !lines.is_empty() {
            let _ = writeln!(out, "\n;; {title} SECTION:");
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
        }
    }
    let _ = writeln!(out, "\n;; WHY");
    let _ = write!(out, "{}", explain(p, &fqdn, zone));
    crate::write_stdout(&out);
    Ok(if d.rcode == rcode::NOERROR {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Explains the service (or pod) a name belongs to.
fn explain(p: &Pipeline, fqdn: &str, zone: &str) -> String {
    let mut out = String::new();
    let lower = fqdn.to_ascii_lowercase();
    let rel = lower.trim_end_matches('.');
    let (labels, in_clusterset) = if let Some(r) = rel.strip_suffix(&format!(".svc.{zone}")) {
        (r.split('.').collect::<Vec<_>>(), false)
    } else if let Some(r) = rel.strip_suffix(".svc.clusterset.local") {
        (r.split('.').collect::<Vec<_>>(), true)
    } else if rel.ends_with(&format!(".pod.{zone}")) {
        return ";; a pod record: <dashed-ip>.<namespace>.pod.<zone> answers when a pod in that namespace has that IP (--pods verified)\n".to_owned();
    } else {
        return ";; not a service name (<service>.<namespace>.svc.<zone>)\n".to_owned();
    };
    let n = labels.len();
    if n < 2 {
        let _ = writeln!(
            out,
            ";; a namespace name: it exists, but has no records of its own"
        );
        return out;
    }
    let (svc_name, ns) = (labels[n - 2], labels[n - 1]);
    let prefix = &labels[..n - 2];
    if !prefix.is_empty() && !prefix[0].starts_with('_') {
        let _ = writeln!(
            out,
            ";; {} names one endpoint of the service",
            prefix.join(".")
        );
    }
    for (cluster, loaded) in &p.loads {
        let objs = &loaded.view.objects;
        let svc = objs.iter().find_map(|o| match o {
            Object::Service(s) if s.meta.namespace == ns && s.meta.name == svc_name => Some(s),
            _ => None,
        });
        let header = if p.loads.len() > 1 {
            format!("[cluster {cluster}] ")
        } else {
            String::new()
        };
        let Some(svc) = svc else {
            let _ = writeln!(out, ";; {header}no Service {svc_name} in namespace {ns}");
            continue;
        };
        if in_clusterset {
            let exported = objs.iter().any(|o| matches!(o, Object::ServiceExport(m) if m.namespace == ns && m.name == svc_name));
            let _ = writeln!(
                out,
                ";; {header}ServiceExport {ns}/{svc_name}: {}",
                if exported {
                    "yes (in clusterset.local)"
                } else {
                    "none: not in clusterset.local"
                }
            );
        }
        let kind = match &svc.address {
            ServiceAddress::Headless => {
                "headless (clusterIP: None): answers with the ready endpoints".to_owned()
            }
            ServiceAddress::ClusterIps(ips) => format!("ClusterIP {}", ips_text(ips)),
            ServiceAddress::ExternalName(t) => format!("ExternalName → CNAME {t}."),
            ServiceAddress::Unallocated => "no address".to_owned(),
        };
        let origin = svc
            .meta
            .origin
            .as_ref()
            .map_or(String::new(), |o| format!(" ({o})"));
        let _ = writeln!(out, ";; {header}Service {ns}/{svc_name}{origin}: {kind}");
        for port in &svc.ports {
            let target = match &port.target_port {
                svcnet_model::TargetPort::Number(n) => n.to_string(),
                svcnet_model::TargetPort::Name(s) => format!("named port {s:?}"),
            };
            let _ = writeln!(
                out,
                ";;   port {} {}/{} → targetPort {target}",
                port.name.as_deref().unwrap_or("(unnamed)"),
                port.port,
                port.protocol.label()
            );
        }
        let Some(sel) = &svc.selector else {
            let _ = writeln!(
                out,
                ";;   no selector: endpoints come from Endpoints/EndpointSlices written for it"
            );
            continue;
        };
        let sel_text: Vec<String> = sel.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            out,
            ";;   selector {}{}",
            sel_text.join(","),
            if svc.publish_not_ready {
                " (publishNotReadyAddresses: not-ready pods count as ready)"
            } else {
                ""
            }
        );
        let mut matched = 0;
        for pod in &loaded.view.pods {
            if pod.meta.namespace != ns || !selector_matches(sel, &pod.meta.labels) {
                continue;
            }
            matched += 1;
            let host = match (&pod.spec.hostname, &pod.spec.subdomain) {
                (Some(h), Some(s)) if s == svc_name => {
                    format!(", hostname {h} → {h}.{svc_name}.{ns}.svc.{zone}")
                }
                (Some(_), Some(s)) => {
                    format!(", subdomain {s} is not this service: no hostname record")
                }
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                ";;   pod {} {} {}{host}",
                pod.meta.name,
                ips_text(&pod.status.ips),
                readiness_words(pod)
            );
        }
        for pending in loaded.view.pending.iter().filter(|pp| pp.namespace == ns) {
            let _ = writeln!(
                out,
                ";;   pod {} Pending (no IP, no record): {}",
                pending.name, pending.reason
            );
        }
        if matched == 0 {
            let _ = writeln!(
                out,
                ";;   no pod in namespace {ns} matches the selector: the service has no endpoints"
            );
        }
    }
    out
}
