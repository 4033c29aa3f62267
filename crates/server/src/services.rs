//! `GET /services` on the admin listener: a read-only table of what is
//! served, per cluster, namespace and service — its type, addresses,
//! ports, DNS names and endpoint counts — as JSON or HTML.
//!
//! The rows are taken from the index's objects by the index thread (the
//! only owner of that state) when a request comes, so nothing is kept up
//! to date for a page nobody asks for and the DNS path is never involved.
//! Output is bounded by `limit` (default [`DEFAULT_LIMIT`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use svcnet_index::Index;
use svcnet_model::{EndpointSlice, ImportType, Kind, Object, ServiceAddress, TargetPort};

/// Rows returned when the request names no `limit`.
pub const DEFAULT_LIMIT: usize = 500;
/// The largest `limit` honoured.
pub const MAX_LIMIT: usize = 10_000;
/// Hostnames listed per service at most.
const MAX_HOSTNAMES: usize = 64;

/// What a `/services` request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicesQuery {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only this cluster.
    pub cluster: Option<String>,
    /// Rows at most.
    pub limit: usize,
    /// HTML instead of JSON.
    pub html: bool,
}

impl ServicesQuery {
    /// Reads `?namespace=&cluster=&limit=&format=` and the `Accept` header.
    pub fn parse(query: &str, accept: Option<&str>) -> Self {
        let mut q = Self {
            namespace: None,
            cluster: None,
            limit: DEFAULT_LIMIT,
            html: accept.is_some_and(|a| a.contains("text/html")),
        };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "namespace" if !v.is_empty() => q.namespace = Some(v.into_owned()),
                "cluster" if !v.is_empty() => q.cluster = Some(v.into_owned()),
                "limit" => {
                    if let Ok(n) = v.parse::<usize>() {
                        q.limit = n.min(MAX_LIMIT);
                    }
                }
                "format" => q.html = v == "html",
                _ => {}
            }
        }
        q
    }
}

/// One port of a service.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PortRow {
    /// Port name.
    pub name: Option<String>,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The service port.
    pub port: u16,
    /// The target port (number or container port name), when there is one.
    pub target_port: Option<String>,
}

/// One served service.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ServiceRow {
    /// Cluster id.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `ClusterIP`, `headless`, `ExternalName` or `imported`
    /// (`imported-headless` for a headless ServiceImport).
    #[serde(rename = "type")]
    pub kind: String,
    /// ClusterIPs (ClusterSetIPs for an import).
    pub cluster_ips: Vec<String>,
    /// The CNAME target of an ExternalName service.
    pub external_name: Option<String>,
    /// Ports.
    pub ports: Vec<PortRow>,
    /// The names it is served under.
    pub dns_names: Vec<String>,
    /// Ready endpoints.
    pub ready_endpoints: usize,
    /// Endpoints not ready.
    pub not_ready_endpoints: usize,
    /// Hostnames of the endpoints (headless services), at most 64.
    pub hostnames: Vec<String>,
}

/// The page: the rows and how many matched.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ServicesView {
    /// Services matching the filters.
    pub total: usize,
    /// The row limit applied.
    pub limit: usize,
    /// Whether rows were left out because of the limit.
    pub truncated: bool,
    /// The rows, by cluster, namespace and name.
    pub services: Vec<ServiceRow>,
}

impl ServiceRow {
    /// A row without its cluster, namespace and name, with the endpoint
    /// counts and hostnames of `slices`.
    fn new(
        kind: &str,
        ips: &[std::net::IpAddr],
        ports: Vec<PortRow>,
        dns_names: Vec<String>,
        slices: &[&EndpointSlice],
    ) -> Self {
        let (mut ready, mut not_ready) = (0, 0);
        let mut hosts = BTreeSet::new();
        for ep in slices.iter().flat_map(|s| &s.endpoints) {
            if ep.ready {
                ready += 1;
            } else {
                not_ready += 1;
            }
            if let Some(h) = ep.hostname {
                hosts.insert(h);
            }
        }
        Self {
            cluster: String::new(),
            namespace: String::new(),
            name: String::new(),
            kind: kind.to_owned(),
            cluster_ips: ips.iter().map(ToString::to_string).collect(),
            external_name: None,
            ports,
            dns_names,
            ready_endpoints: ready,
            not_ready_endpoints: not_ready,
            hostnames: hosts
                .into_iter()
                .take(MAX_HOSTNAMES)
                .map(String::from)
                .collect(),
        }
    }

    fn with_external_name(mut self, target: Option<String>) -> Self {
        self.external_name = target;
        self
    }
}

/// The rows of `index` that `q` asks for.
pub fn view(index: &Index, q: &ServicesQuery) -> ServicesView {
    let cfg = index.config();
    let local = index.local_cluster().map(|(id, _)| id.as_str());
    let mut rows = Vec::new();
    let mut total = 0;
    for (cluster, store) in index.clusters() {
        if q.cluster.as_ref().is_some_and(|c| c != cluster) {
            continue;
        }
        let wanted = |o: &Object| {
            q.namespace
                .as_ref()
                .is_none_or(|ns| *ns == o.meta().namespace)
        };
        let objects: Vec<Object> = store.objects().filter(wanted).collect();
        let mut slices: BTreeMap<(&str, &str, bool), Vec<&EndpointSlice>> = BTreeMap::new();
        let mut exports = BTreeSet::new();
        for o in &objects {
            match o {
                Object::EndpointSlice { slice, .. } => {
                    let imported = o.kind() == Kind::ImportedEndpointSlice;
                    slices
                        .entry((&slice.meta.namespace, &slice.service, imported))
                        .or_default()
                        .push(slice);
                }
                Object::ServiceExport(m) => {
                    exports.insert((m.namespace.as_str(), m.name.as_str()));
                }
                _ => {}
            }
        }
        for o in &objects {
            if !matches!(o, Object::Service(_) | Object::ServiceImport(_)) {
                continue;
            }
            total += 1;
            if rows.len() >= q.limit {
                continue;
            }
            let meta = o.meta();
            let (ns, name) = (meta.namespace.as_str(), meta.name.as_str());
            let clusterset_name = format!("{name}.{ns}.svc.{}", cfg.clusterset_zone);
            let mut row = match o {
                Object::Service(svc) => {
                    let (kind, ips, external) = match &svc.address {
                        ServiceAddress::ClusterIps(ips) => ("ClusterIP", ips.as_slice(), None),
                        ServiceAddress::Headless | ServiceAddress::Unallocated => {
                            ("headless", &[][..], None)
                        }
                        ServiceAddress::ExternalName(t) => {
                            ("ExternalName", &[][..], Some(t.clone()))
                        }
                    };
                    let mut dns_names = Vec::new();
                    if local == Some(cluster.as_str()) {
                        dns_names.extend(cfg.zones.iter().map(|z| format!("{name}.{ns}.svc.{z}")));
                    }
                    if exports.contains(&(ns, name)) {
                        dns_names.push(clusterset_name);
                    }
                    let ports = svc.ports.iter().map(|p| PortRow {
                        name: p.name.clone(),
                        protocol: p.protocol.label().to_ascii_uppercase(),
                        port: p.port,
                        target_port: Some(match &p.target_port {
                            TargetPort::Number(n) => n.to_string(),
                            TargetPort::Name(n) => n.clone(),
                        }),
                    });
                    let own = slices
                        .get(&(ns, name, false))
                        .map_or(&[][..], Vec::as_slice);
                    ServiceRow::new(kind, ips, ports.collect(), dns_names, own)
                        .with_external_name(external)
                }
                Object::ServiceImport(imp) => {
                    let kind = match imp.import_type {
                        ImportType::ClusterSetIp => "imported",
                        ImportType::Headless => "imported-headless",
                    };
                    let ports = imp.ports.iter().map(|p| PortRow {
                        name: p.name.clone(),
                        protocol: p.protocol.label().to_ascii_uppercase(),
                        port: p.port,
                        target_port: None,
                    });
                    let own = slices.get(&(ns, name, true)).map_or(&[][..], Vec::as_slice);
                    ServiceRow::new(kind, &imp.ips, ports.collect(), vec![clusterset_name], own)
                }
                _ => continue,
            };
            row.cluster.clone_from(cluster);
            row.namespace = ns.to_owned();
            row.name = name.to_owned();
            rows.push(row);
        }
    }
    ServicesView {
        total,
        limit: q.limit,
        truncated: total > rows.len(),
        services: rows,
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl ServicesView {
    /// The view as JSON.
    pub fn json(&self) -> String {
        let mut body = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_owned());
        body.push('\n');
        body
    }

    /// The view as an HTML page with one table.
    pub fn html(&self) -> String {
        let mut out = String::from(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>svcnet services</title>\
             <style>body{font-family:sans-serif}table{border-collapse:collapse}\
             td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}</style>\
             </head><body>\n<h1>Served services</h1>\n",
        );
        let _ = writeln!(
            out,
            "<p>{} of {} services{}.</p>",
            self.services.len(),
            self.total,
            if self.truncated {
                format!(
                    "; limited to {} (narrow with ?namespace= or ?cluster=, or raise ?limit=, at most {MAX_LIMIT})",
                    self.limit
                )
            } else {
                String::new()
            }
        );
        out.push_str(
            "<table>\n<tr><th>cluster</th><th>namespace</th><th>service</th><th>type</th>\
             <th>cluster IPs</th><th>ports</th><th>DNS names</th><th>ready</th>\
             <th>not ready</th><th>hostnames</th></tr>\n",
        );
        for r in &self.services {
            let ports: Vec<String> = r
                .ports
                .iter()
                .map(|p| {
                    let name = p
                        .name
                        .as_deref()
                        .map(|n| format!("{n} "))
                        .unwrap_or_default();
                    let target = p
                        .target_port
                        .as_deref()
                        .map(|t| format!("→{t}"))
                        .unwrap_or_default();
                    format!("{name}{}/{}{target}", p.port, p.protocol)
                })
                .collect();
            let mut ips = r.cluster_ips.join(", ");
            if let Some(ext) = &r.external_name {
                ips = format!("CNAME {ext}");
            }
            let cells = [
                r.cluster.as_str(),
                &r.namespace,
                &r.name,
                &r.kind,
                &ips,
                &ports.join(", "),
                &r.dns_names.join(" "),
                &r.ready_endpoints.to_string(),
                &r.not_ready_endpoints.to_string(),
                &r.hostnames.join(", "),
            ];
            out.push_str("<tr>");
            for c in cells {
                let _ = write!(out, "<td>{}</td>", html_escape(c));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n</body></html>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_string_and_accept() {
        let q = ServicesQuery::parse("namespace=shop&limit=20", None);
        assert_eq!(q.namespace.as_deref(), Some("shop"));
        assert_eq!(q.limit, 20);
        assert!(!q.html);
        assert!(ServicesQuery::parse("", Some("text/html,application/xhtml+xml")).html);
        assert!(!ServicesQuery::parse("format=json", Some("text/html")).html);
        assert!(ServicesQuery::parse("format=html", None).html);
        assert_eq!(
            ServicesQuery::parse("limit=99999999", None).limit,
            MAX_LIMIT
        );
        assert_eq!(ServicesQuery::parse("limit=x", None).limit, DEFAULT_LIMIT);
    }

    #[test]
    fn html_escapes_markup() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let view = ServicesView {
            total: 1,
            limit: 1,
            truncated: false,
            services: vec![ServiceRow {
                cluster: "<script>".into(),
                namespace: "ns".into(),
                name: "n".into(),
                kind: "ClusterIP".into(),
                cluster_ips: vec![],
                external_name: None,
                ports: vec![],
                dns_names: vec![],
                ready_endpoints: 0,
                not_ready_endpoints: 0,
                hostnames: vec![],
            }],
        };
        let html = view.html();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
