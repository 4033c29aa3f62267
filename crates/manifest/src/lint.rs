//! `svcnet lint` (SPEC §4): the mistakes that bite in production, found
//! before deploying. Parse and validation errors come from [`crate::decode`];
//! this module adds the checks that need the whole cluster.

use std::collections::{BTreeMap, BTreeSet};

use svcnet_model::{
    Kind, Meta, Object, ServiceAddress, TargetPort, WorkloadKind, selector_matches,
};

use crate::control::ClusterView;
use crate::{Diagnostic, Severity};

fn diag(meta: &Meta, kind: Kind, severity: Severity, problem: String) -> Option<Diagnostic> {
    let origin = meta.origin.clone()?;
    Some(Diagnostic {
        origin,
        severity,
        object: Some((kind, meta.namespace.clone(), meta.name.clone())),
        problem,
    })
}

/// Whole-cluster checks over the decoded objects and the emulated state.
pub fn lint(objects: &[Object], view: &ClusterView, zone: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let pods: Vec<_> = view.pods.iter().collect();
    let services: BTreeMap<(&str, &str), &svcnet_model::Service> = objects
        .iter()
        .filter_map(|o| {
            if let Object::Service(s) = o {
                Some(s)
            } else {
                None
            }
        })
        .map(|s| ((s.meta.namespace.as_str(), s.meta.name.as_str()), s))
        .collect();
    let headless =
        |ns: &str, name: &str| services.get(&(ns, name)).is_some_and(|s| s.is_headless());

    for svc in services.values() {
        let (ns, name) = (&svc.meta.namespace, &svc.meta.name);
        if let Some(sel) = &svc.selector {
            let matched = pods
                .iter()
                .any(|p| p.meta.namespace == *ns && selector_matches(sel, &p.meta.labels));
            if !matched && !matches!(svc.address, ServiceAddress::ExternalName(_)) {
                let sel_text: Vec<String> = sel.iter().map(|(k, v)| format!("{k}={v}")).collect();
                out.extend(diag(&svc.meta, Kind::Service, Severity::Warning, format!(
                    "selector {} matches no pod in namespace {ns}: the service has no endpoints",
                    sel_text.join(",")
                )));
            }
        }
        if svc.is_headless() {
            for (i, p) in svc.ports.iter().enumerate() {
                if let TargetPort::Number(t) = p.target_port
                    && t != p.port
                {
                    out.extend(diag(&svc.meta, Kind::Service, Severity::Warning, format!(
                            "spec.ports[{i}]: headless service port {} differs from targetPort {t}; clients of a headless service connect to the pod directly, on port {t}, and SRV records carry {t}",
                            p.port
                        )));
                }
            }
        }
        let fqdn = format!("{name}.{ns}.svc.{zone}");
        check_name(&mut out, &svc.meta, Kind::Service, &fqdn);
    }

    for obj in objects {
        match obj {
            Object::Workload(w) if w.kind == WorkloadKind::StatefulSet => {
                let ns = &w.meta.namespace;
                match &w.service_name {
                    None => out.extend(diag(&w.meta, Kind::StatefulSet, Severity::Warning,
                        "spec.serviceName is missing: its pods get no stable DNS names".to_owned())),
                    Some(s) if !services.contains_key(&(ns.as_str(), s.as_str())) => out.extend(diag(&w.meta, Kind::StatefulSet, Severity::Warning,
                        format!("spec.serviceName {s:?} names no service in namespace {ns}: pods get no per-pod DNS names"))),
                    Some(s) if !headless(ns, s) => out.extend(diag(&w.meta, Kind::StatefulSet, Severity::Warning,
                        format!("spec.serviceName {s:?} is not a headless service (clusterIP: None): pod names like {}-0.{s} will not resolve", w.meta.name))),
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }

    // Pods as the control plane made them: a Deployment's template subdomain
    // is reported once, against the Deployment.
    for pod in &pods {
        let Some(sub) = &pod.spec.subdomain else {
            continue;
        };
        let owner = pod.owner.as_ref();
        if owner.is_some_and(|o| o.kind == Kind::StatefulSet) || headless(&pod.meta.namespace, sub)
        {
            continue;
        }
        let (kind, meta) = match owner {
            Some(o) => (
                o.kind,
                Meta {
                    name: o.name.clone(),
                    ..pod.meta.clone()
                },
            ),
            None => (Kind::Pod, pod.meta.clone()),
        };
        out.extend(diag(&meta, kind, Severity::Warning, format!(
            "spec.subdomain {sub:?} has no headless service of that name in namespace {}: the pod gets no hostname record",
            pod.meta.namespace
        )));
    }

    let mut seen: BTreeMap<(&str, &str), BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for obj in &view.objects {
        let Object::EndpointSlice { slice, .. } = obj else {
            continue;
        };
        for ep in slice.endpoints.iter() {
            if let Some(h) = ep.hostname {
                seen.entry((&slice.meta.namespace, &slice.service))
                    .or_default()
                    .entry(h)
                    .or_default()
                    .insert(ep.pod.unwrap_or("?"));
            }
        }
    }
    for ((ns, svc), hosts) in seen {
        let Some(s) = services.get(&(ns, svc)) else {
            continue;
        };
        for (host, owners) in hosts {
            if owners.len() > 1 {
                let owners: Vec<&str> = owners.into_iter().collect();
                out.extend(diag(&s.meta, Kind::Service, Severity::Warning, format!(
                    "hostname {host:?} is used by {} pods ({}): {host}.{svc} answers with all of them", owners.len(), owners.join(", "))));
            }
            let fqdn = format!("{host}.{svc}.{ns}.svc.{zone}");
            check_name(&mut out, &s.meta, Kind::Service, &fqdn);
        }
    }
    out.sort();
    out.dedup();
    out
}

fn check_name(out: &mut Vec<Diagnostic>, meta: &Meta, kind: Kind, fqdn: &str) {
    if let Some(label) = fqdn.split('.').find(|l| l.len() > 63) {
        out.extend(diag(
            meta,
            kind,
            Severity::Error,
            format!(
                "DNS label {label:?} is {} characters; DNS allows 63",
                label.len()
            ),
        ));
    } else if fqdn.len() > 253 {
        out.extend(diag(
            meta,
            kind,
            Severity::Error,
            format!(
                "DNS name {fqdn} is {} characters; DNS allows 253",
                fqdn.len()
            ),
        ));
    }
}
