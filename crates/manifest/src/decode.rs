//! YAML documents → model objects, with validation (SPEC §1 kinds, §1.2 bad
//! input).
//!
//! [`decode_document`] reads one document (a `kind: List` is unpacked) into
//! [`Object`]s and [`Diagnostic`]s that point at the offending node and name
//! the object. An object with any error is not produced; warnings keep it.
//! Other documents, and other items of the same List, are unaffected. Unknown
//! kinds are skipped with a debug log, never a diagnostic (SPEC §1).
//!
//! Validation follows what the Kubernetes API server would reject (names,
//! label syntax, port ranges, `clusterIP(s)`, port names), so a manifest that
//! svcnet accepts is one `kubectl apply` accepts too. A core/v1 Endpoints
//! becomes one `EndpointSlice` object per subset, all with the Endpoints'
//! name and origin; the index groups slices by their `service`, and
//! duplicate detection ([`crate::load::check_duplicates`]) knows they are one
//! object because they share the origin.

use std::collections::HashSet;
use std::fmt::Display;
use std::net::IpAddr;
use std::sync::Arc;

use svcnet_model::{
    ContainerPort, Endpoint, EndpointPort, EndpointSlice, ImportType, Kind, Labels, Meta, Object,
    Origin, Pod, PodStatus, PodTemplate, Protocol, Service, ServiceAddress, ServiceImport,
    ServicePort, ServiceType, TargetPort, Workload, WorkloadKind, fnv1a64, joined,
};

use crate::yaml::{Node, Value};
use crate::{Diagnostic, Severity};

/// More replicas than this is an error: the emulated control plane would
/// stamp out that many pods.
pub const MAX_REPLICAS: i64 = 10_000;

const MCS: &[&str] = &[
    "multicluster.x-k8s.io/v1alpha1",
    "multicluster.x-k8s.io/v1beta1",
];

/// The kinds svcnet reads and the apiVersions each is served under.
const KINDS: &[(&str, Kind, &[&str])] = &[
    ("Namespace", Kind::Namespace, &["v1"]),
    ("Service", Kind::Service, &["v1"]),
    ("Pod", Kind::Pod, &["v1"]),
    ("Endpoints", Kind::Endpoints, &["v1"]),
    (
        "EndpointSlice",
        Kind::EndpointSlice,
        &["discovery.k8s.io/v1"],
    ),
    ("Deployment", Kind::Deployment, &["apps/v1"]),
    ("ReplicaSet", Kind::ReplicaSet, &["apps/v1"]),
    ("StatefulSet", Kind::StatefulSet, &["apps/v1"]),
    ("DaemonSet", Kind::DaemonSet, &["apps/v1"]),
    ("ServiceExport", Kind::ServiceExport, MCS),
    ("ServiceImport", Kind::ServiceImport, MCS),
];

/// Decodes one YAML document into model objects. `file` is the name
/// diagnostics and origins carry.
pub fn decode_document(file: &Arc<str>, doc: &Node) -> (Vec<Object>, Vec<Diagnostic>) {
    let mut objects = Vec::new();
    let mut diagnostics = Vec::new();
    decode_item(file, doc, &mut objects, &mut diagnostics);
    (objects, diagnostics)
}

fn decode_item(
    file: &Arc<str>,
    node: &Node,
    objects: &mut Vec<Object>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut cx = Cx {
        file,
        object: None,
        diagnostics: Vec::new(),
        failed: false,
    };
    let root = Field::root(node);
    if node.as_map().is_none() {
        cx.error(
            &root,
            format!(
                "expected a Kubernetes object (a mapping), found {}",
                node.describe()
            ),
        );
        diagnostics.append(&mut cx.diagnostics);
        return;
    }
    let api_field = root.get("apiVersion");
    let api = cx.string(&api_field);
    let kind_field = root.get("kind");
    let Some(kind_name) = cx.string(&kind_field) else {
        if !cx.failed {
            cx.error(&kind_field, "required (not a Kubernetes object without it)");
        }
        diagnostics.append(&mut cx.diagnostics);
        return;
    };
    if kind_name == "List" {
        if api.as_deref() == Some("v1") {
            let items = cx.seq(&root.get("items"));
            diagnostics.append(&mut cx.diagnostics);
            for item in items.iter().filter_map(|f| f.node) {
                decode_item(file, item, objects, diagnostics);
            }
        } else {
            cx.error(&api_field, "must be v1 for a List");
            diagnostics.append(&mut cx.diagnostics);
        }
        return;
    }
    let Some(&(_, kind, versions)) = KINDS.iter().find(|(name, ..)| *name == kind_name) else {
        tracing::debug!(
            file = &**file,
            line = node.line,
            kind = kind_name,
            "skipping a kind svcnet does not read"
        );
        return;
    };
    cx.object = Some(identity(kind, node));
    match api {
        Some(api) if versions.contains(&api.as_str()) => {}
        Some(api) => {
            let expected = versions.join(" or ");
            cx.error(
                &api_field,
                format!("{api:?} is not served for {kind} (expected {expected})"),
            );
        }
        None if api_field.node.is_none() => cx.error(&api_field, "required"),
        None => {}
    }
    if cx.failed {
        // Another version's schema: its fields would only add noise.
        diagnostics.append(&mut cx.diagnostics);
        return;
    }
    let meta = decode_meta(&mut cx, &root, kind);
    let decoded = match kind {
        Kind::Namespace => vec![Object::Namespace(meta)],
        Kind::ServiceExport => vec![Object::ServiceExport(meta)],
        Kind::Service => vec![Object::Service(decode_service(&mut cx, &root, meta))],
        Kind::Pod => vec![Object::Pod(Box::new(decode_pod(&mut cx, &root, meta)))],
        Kind::Endpoints => decode_endpoints(&mut cx, &root, &meta),
        Kind::EndpointSlice | Kind::ImportedEndpointSlice => {
            decode_endpoint_slice(&mut cx, &root, meta)
                .into_iter()
                .collect()
        }
        Kind::Deployment => vec![decode_workload(
            &mut cx,
            &root,
            meta,
            WorkloadKind::Deployment,
        )],
        Kind::ReplicaSet => vec![decode_workload(
            &mut cx,
            &root,
            meta,
            WorkloadKind::ReplicaSet,
        )],
        Kind::StatefulSet => vec![decode_workload(
            &mut cx,
            &root,
            meta,
            WorkloadKind::StatefulSet,
        )],
        Kind::DaemonSet => vec![decode_workload(
            &mut cx,
            &root,
            meta,
            WorkloadKind::DaemonSet,
        )],
        Kind::ServiceImport => vec![decode_service_import(&mut cx, &root, meta)],
    };
    if !cx.failed {
        objects.extend(decoded);
    }
    diagnostics.append(&mut cx.diagnostics);
}

/// `(kind, namespace, name)` as written, for diagnostics, before validation.
fn identity(kind: Kind, node: &Node) -> (Kind, String, String) {
    let meta = |key| {
        node.get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Node::as_str)
    };
    let namespace = match kind {
        Kind::Namespace => "",
        _ => meta("namespace").unwrap_or("default"),
    };
    (
        kind,
        namespace.to_owned(),
        meta("name").unwrap_or_default().to_owned(),
    )
}

fn decode_meta(cx: &mut Cx<'_>, root: &Field<'_>, kind: Kind) -> Meta {
    let md = cx.map(root.get("metadata"));
    let name_field = md.get("name");
    let name = match cx.string(&name_field) {
        Some(name) => {
            let check = match kind {
                Kind::Service => check_dns1035_label,
                Kind::Namespace => check_dns_label,
                _ => check_dns_subdomain,
            };
            cx.check(&name_field, &name, check);
            name
        }
        None => {
            cx.error(&name_field, "required");
            String::new()
        }
    };
    let namespace = match kind {
        Kind::Namespace => String::new(),
        _ => cx
            .dns_label(&md.get("namespace"))
            .unwrap_or_else(|| "default".to_owned()),
    };
    let labels = cx.labels(&md.get("labels"), "label");
    let origin = Some(Origin {
        file: cx.file.clone(),
        line: root.line,
        column: root.column,
    });
    Meta {
        namespace,
        name,
        labels,
        origin,
    }
}

fn decode_service(cx: &mut Cx<'_>, root: &Field<'_>, meta: Meta) -> Service {
    let spec = cx.map(root.get("spec"));
    let type_field = spec.get("type");
    let service_type = match cx.string(&type_field).as_deref() {
        None | Some("ClusterIP") => ServiceType::ClusterIp,
        Some("NodePort") => ServiceType::NodePort,
        Some("LoadBalancer") => ServiceType::LoadBalancer,
        Some("ExternalName") => ServiceType::ExternalName,
        Some(other) => {
            let expected = "ClusterIP, NodePort, LoadBalancer or ExternalName";
            cx.error(
                &type_field,
                format!("unsupported type {other:?} (expected {expected})"),
            );
            ServiceType::ClusterIp
        }
    };
    let address = if service_type == ServiceType::ExternalName {
        decode_external_name(cx, &spec)
    } else {
        decode_cluster_ips(cx, &spec)
    };
    let port_items = cx.seq(&spec.get("ports"));
    // At its size: a service is kept as long as its file is (one port
    // pushed into an empty vector would leave room for four).
    let mut ports = Vec::with_capacity(port_items.len());
    let mut names = HashSet::new();
    let mut numbers = HashSet::new();
    for item in &port_items {
        let item = cx.map(item.clone());
        let name_field = item.get("name");
        let name = cx.dns_label(&name_field);
        match &name {
            Some(name) if !names.insert(name.clone()) => {
                cx.error(&name_field, format!("duplicate port name {name:?}"));
            }
            None if port_items.len() > 1 => {
                cx.error(&name_field, "required when more than one port")
            }
            _ => {}
        }
        let protocol = cx.protocol(&item.get("protocol"));
        let port_field = item.get("port");
        let Some(port) = cx.port(&port_field, true) else {
            continue;
        };
        if !numbers.insert((port, protocol)) {
            cx.error(
                &port_field,
                format!("duplicate port {port}/{}", protocol_name(protocol)),
            );
        }
        let target_port = decode_target_port(cx, &item.get("targetPort"), port);
        let node_port = cx.port(&item.get("nodePort"), false);
        ports.push(ServicePort {
            name,
            protocol,
            port,
            target_port,
            node_port,
        });
    }
    let selector = cx.labels(&spec.get("selector"), "selector");
    let selector = (!selector.is_empty()).then_some(selector);
    let publish_not_ready = cx
        .bool(&spec.get("publishNotReadyAddresses"))
        .unwrap_or(false);
    Service {
        meta,
        service_type,
        address,
        ports,
        selector,
        publish_not_ready,
    }
}

fn decode_external_name(cx: &mut Cx<'_>, spec: &Field<'_>) -> ServiceAddress {
    for key in ["clusterIP", "clusterIPs"] {
        let field = spec.get(key);
        if field.node.is_some_and(|n| n.as_str() != Some("")) {
            cx.warning(&field, "ignored for an ExternalName service");
        }
    }
    let field = spec.get("externalName");
    let Some(name) = cx.string(&field) else {
        cx.error(&field, "required for an ExternalName service");
        return ServiceAddress::ExternalName(String::new());
    };
    let name = name.strip_suffix('.').unwrap_or(&name).to_ascii_lowercase();
    if name.parse::<IpAddr>().is_err() {
        cx.check(&field, &name, check_dns_subdomain);
    }
    ServiceAddress::ExternalName(name)
}

fn decode_cluster_ips(cx: &mut Cx<'_>, spec: &Field<'_>) -> ServiceAddress {
    let single_field = spec.get("clusterIP");
    let single = cx.string(&single_field).filter(|s| !s.is_empty());
    let mut values: Vec<(Field<'_>, String)> = Vec::new();
    for item in cx.seq(&spec.get("clusterIPs")) {
        if let Some(text) = cx.string(&item).filter(|s| !s.is_empty()) {
            values.push((item, text));
        }
    }
    match (values.first(), single) {
        (Some((field, first)), Some(single)) if *first != single => {
            cx.error(
                field,
                format!("{first:?} must match spec.clusterIP {single:?}"),
            );
        }
        (None, Some(single)) => values.push((single_field, single)),
        _ => {}
    }
    if values.is_empty() {
        return ServiceAddress::Unallocated;
    }
    if values.iter().any(|(_, v)| v == "None") {
        if let Some((field, _)) = values.get(1) {
            cx.error(field, "\"None\" must be the only cluster IP");
        }
        return ServiceAddress::Headless;
    }
    let mut ips = Vec::new();
    for (field, text) in &values {
        match text.parse::<IpAddr>() {
            Ok(ip)
                if ips
                    .first()
                    .is_some_and(|first: &IpAddr| first.is_ipv4() == ip.is_ipv4()) =>
            {
                cx.error(
                    field,
                    "a second cluster IP must be of the other address family",
                );
            }
            Ok(ip) => ips.push(ip),
            Err(_) => cx.error(field, format!("{text:?} is not an IP address")),
        }
    }
    ServiceAddress::ClusterIps(ips)
}

/// `targetPort`: a plain number is a port; anything else (`http`, `"8080"`)
/// is a container port name, as Kubernetes' IntOrString reads it.
fn decode_target_port(cx: &mut Cx<'_>, field: &Field<'_>, port: u16) -> TargetPort {
    let Some(node) = field.node else {
        return TargetPort::Number(port);
    };
    match &node.value {
        Value::Scalar { text, plain: true } if text.parse::<i64>().is_ok() => {
            TargetPort::Number(cx.port(field, true).unwrap_or(port))
        }
        Value::Scalar { text, plain } => {
            if !plain && !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                let problem = "is quoted, so it is a port name, and port names need a letter; \
                               remove the quotes for a port number";
                cx.error(field, format!("{text:?} {problem}"));
            } else {
                cx.check(field, text, check_port_name);
            }
            TargetPort::Name(text.clone())
        }
        _ => {
            cx.error(
                field,
                format!("expected a port number or name, found {}", node.describe()),
            );
            TargetPort::Number(port)
        }
    }
}

fn decode_pod(cx: &mut Cx<'_>, root: &Field<'_>, meta: Meta) -> Pod {
    let spec = cx.map(root.get("spec"));
    let status = cx.map(root.get("status"));
    let template = decode_pod_spec(cx, &spec, meta.labels.clone());
    let node = cx.string(&spec.get("nodeName"));
    let phase = cx.string(&status.get("phase"));
    let mut ready_condition = None;
    for condition in cx.seq(&status.get("conditions")) {
        let condition = cx.map(condition);
        if cx.string(&condition.get("type")).as_deref() != Some("Ready") {
            continue;
        }
        let field = condition.get("status");
        ready_condition = match cx.string(&field).as_deref() {
            Some("True") => Some(true),
            Some("False" | "Unknown") => Some(false),
            Some(other) => {
                cx.error(&field, format!("{other:?} is not True, False or Unknown"));
                None
            }
            None => None,
        };
    }
    let terminating = cx
        .map_quiet(root.get("metadata"))
        .get("deletionTimestamp")
        .node
        .is_some();
    let mut ips = Vec::new();
    let mut ip_fields = vec![status.get("podIP")];
    for item in cx.seq(&status.get("podIPs")) {
        ip_fields.push(cx.map(item).get("ip"));
    }
    for field in &ip_fields {
        if let Some(ip) = cx.ip(field)
            && !ips.contains(&ip)
        {
            ips.push(ip);
        }
    }
    let status = PodStatus {
        phase,
        ready_condition,
        terminating,
        ips,
    };
    Pod {
        meta,
        spec: template,
        status,
        node,
        owner: None,
    }
}

/// The parts of a pod spec DNS needs: hostname, subdomain, container ports
/// (init containers have no Service-reachable ports and are ignored).
fn decode_pod_spec(cx: &mut Cx<'_>, spec: &Field<'_>, labels: Labels) -> PodTemplate {
    let hostname = cx.dns_label(&spec.get("hostname"));
    let subdomain = cx.dns_label(&spec.get("subdomain"));
    let mut container_ports = Vec::new();
    for container in cx.seq(&spec.get("containers")) {
        let container = cx.map(container);
        for port in cx.seq(&container.get("ports")) {
            let port = cx.map(port);
            let name_field = port.get("name");
            let name = cx.string(&name_field).filter(|n| !n.is_empty());
            if let Some(name) = &name {
                cx.check(&name_field, name, check_port_name);
            }
            let protocol = cx.protocol(&port.get("protocol"));
            if let Some(number) = cx.port(&port.get("containerPort"), true) {
                container_ports.push(ContainerPort {
                    name,
                    port: number,
                    protocol,
                });
            }
        }
    }
    PodTemplate {
        labels,
        hostname,
        subdomain,
        container_ports: container_ports.into(),
    }
}

fn decode_workload(cx: &mut Cx<'_>, root: &Field<'_>, meta: Meta, kind: WorkloadKind) -> Object {
    let spec = cx.map(root.get("spec"));
    let replicas = match kind {
        WorkloadKind::DaemonSet => 1,
        _ => cx.count(&spec.get("replicas"), MAX_REPLICAS).unwrap_or(1),
    };
    let ordinals_start = match kind {
        WorkloadKind::StatefulSet => {
            let ordinals = cx.map(spec.get("ordinals"));
            cx.count(&ordinals.get("start"), i64::from(i32::MAX))
                .unwrap_or(0)
        }
        _ => 0,
    };
    let service_name = cx
        .string(&spec.get("serviceName"))
        .filter(|s| !s.is_empty());
    let policy_field = spec.get("podManagementPolicy");
    let ordered_ready = match cx.string(&policy_field).as_deref() {
        None | Some("OrderedReady") => true,
        Some("Parallel") => false,
        Some(other) => {
            cx.error(
                &policy_field,
                format!("{other:?} is not OrderedReady or Parallel"),
            );
            true
        }
    };
    let selector_field = cx.map(spec.get("selector"));
    let selector = cx.labels(&selector_field.get("matchLabels"), "selector");
    let expressions = selector_field.get("matchExpressions");
    let has_expressions = expressions
        .node
        .is_some_and(|n| n.as_seq().is_none_or(|s| !s.is_empty()));
    if has_expressions {
        cx.warning(
            &expressions,
            "matchExpressions are not evaluated (only matchLabels)",
        );
    } else if selector.is_empty() {
        cx.error(
            &selector_field,
            "required (an empty selector matches nothing)",
        );
    }
    let template_field = cx.map(spec.get("template"));
    let template_meta = cx.map(template_field.get("metadata"));
    let labels_field = template_meta.get("labels");
    let labels = cx.labels(&labels_field, "label");
    if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
        cx.error(
            &labels_field,
            "must include every label of spec.selector.matchLabels",
        );
    }
    let template_spec = cx.map(template_field.get("spec"));
    let template = decode_pod_spec(cx, &template_spec, labels);
    let template_hash = template_field
        .node
        .map_or_else(|| fnv1a64(&[]), template_hash);
    Object::Workload(Box::new(Workload {
        meta,
        kind,
        replicas,
        ordinals_start,
        service_name,
        ordered_ready,
        selector,
        template,
        template_hash,
    }))
}

/// core/v1 Endpoints: one slice per subset (an empty one when there are no
/// subsets, so the Service is known to have no endpoints).
fn decode_endpoints(cx: &mut Cx<'_>, root: &Field<'_>, meta: &Meta) -> Vec<Object> {
    let subsets = cx.seq(&root.get("subsets"));
    let mut slices = Vec::new();
    for subset in subsets {
        let subset = cx.map(subset);
        let ports = decode_endpoint_ports(cx, &subset.get("ports"), true);
        let mut endpoints = Vec::new();
        for (key, ready) in [("addresses", true), ("notReadyAddresses", false)] {
            for address in cx.seq(&subset.get(key)) {
                let address = cx.map(address);
                let ip_field = address.get("ip");
                let Some(ip) = cx.ip(&ip_field) else {
                    if ip_field.node.is_none() {
                        cx.error(&ip_field, "required");
                    }
                    continue;
                };
                let target = cx.map(address.get("targetRef"));
                endpoints.push(Endpoint {
                    addresses: [ip].into(),
                    hostname: cx
                        .dns_label(&address.get("hostname"))
                        .map(String::into_boxed_str),
                    ready,
                    serving: ready,
                    terminating: false,
                    pod: cx.string(&target.get("name")).map(String::into_boxed_str),
                    node: cx.string(&address.get("nodeName")).map(Arc::from),
                });
            }
        }
        slices.push((ports, endpoints));
    }
    if slices.is_empty() {
        slices.push((Vec::new(), Vec::new()));
    }
    slices
        .into_iter()
        .map(|(ports, endpoints)| Object::EndpointSlice {
            slice: EndpointSlice {
                meta: meta.clone(),
                service: meta.name.clone(),
                ports,
                endpoints: endpoints.into(),
            },
            from_endpoints: true,
        })
        .collect()
}

fn decode_endpoint_slice(cx: &mut Cx<'_>, root: &Field<'_>, meta: Meta) -> Option<Object> {
    const SERVICE_LABEL: &str = "kubernetes.io/service-name";
    let service = meta
        .labels
        .get(SERVICE_LABEL)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let service = service.unwrap_or_else(|| {
        let labels = cx.map_quiet(root.get("metadata")).get("labels");
        cx.error(&labels, format!("the {SERVICE_LABEL} label is required"));
        String::new()
    });
    let type_field = root.get("addressType");
    let ipv4 = match cx.string(&type_field).as_deref() {
        Some("IPv4") => true,
        Some("IPv6") => false,
        Some("FQDN") => {
            cx.warning(&type_field, "FQDN EndpointSlices are not served; skipped");
            return None;
        }
        Some(other) => {
            cx.error(&type_field, format!("{other:?} is not IPv4, IPv6 or FQDN"));
            true
        }
        None => {
            cx.error(&type_field, "required");
            true
        }
    };
    let ports = decode_endpoint_ports(cx, &root.get("ports"), false);
    let mut endpoints = Vec::new();
    for endpoint in cx.seq(&root.get("endpoints")) {
        let endpoint = cx.map(endpoint);
        let addresses_field = endpoint.get("addresses");
        let mut addresses = Vec::new();
        for field in cx.seq(&addresses_field) {
            match cx.ip(&field) {
                Some(ip) if ip.is_ipv4() != ipv4 => {
                    let family = if ipv4 { "IPv4" } else { "IPv6" };
                    cx.error(
                        &field,
                        format!("{ip} is not an {family} address (addressType {family})"),
                    );
                }
                Some(ip) => addresses.push(ip),
                None => {}
            }
        }
        if addresses_field
            .node
            .and_then(Node::as_seq)
            .is_none_or(<[Node]>::is_empty)
        {
            cx.error(&addresses_field, "required (at least one address)");
        }
        let conditions = cx.map(endpoint.get("conditions"));
        let ready = cx.bool(&conditions.get("ready")).unwrap_or(true);
        let target = cx.map(endpoint.get("targetRef"));
        endpoints.push(Endpoint {
            addresses: addresses.into(),
            hostname: cx
                .dns_label(&endpoint.get("hostname"))
                .map(String::into_boxed_str),
            ready,
            serving: cx.bool(&conditions.get("serving")).unwrap_or(ready),
            terminating: cx.bool(&conditions.get("terminating")).unwrap_or(false),
            pod: cx.string(&target.get("name")).map(String::into_boxed_str),
            node: cx.string(&endpoint.get("nodeName")).map(Arc::from),
        });
    }
    let slice = EndpointSlice {
        meta,
        service,
        ports,
        endpoints: endpoints.into(),
    };
    Some(Object::EndpointSlice {
        slice,
        from_endpoints: false,
    })
}

/// Ports of an Endpoints subset (`port` required) or an EndpointSlice (a
/// missing `port` means "all ports", which svcnet cannot serve: skipped).
fn decode_endpoint_ports(cx: &mut Cx<'_>, field: &Field<'_>, endpoints: bool) -> Vec<EndpointPort> {
    let items = cx.seq(field);
    let mut ports = Vec::new();
    for item in &items {
        let item = cx.map(item.clone());
        let name_field = item.get("name");
        let name = cx.dns_label(&name_field);
        if endpoints && name.is_none() && items.len() > 1 {
            cx.error(&name_field, "required when more than one port");
        }
        let protocol = cx.protocol(&item.get("protocol"));
        let port_field = item.get("port");
        if !endpoints && port_field.node.is_none() {
            cx.warning(
                &port_field,
                "missing (all ports) is not supported; port skipped",
            );
            continue;
        }
        if let Some(port) = cx.port(&port_field, true) {
            ports.push(EndpointPort {
                name,
                protocol,
                port,
            });
        }
    }
    ports
}

fn decode_service_import(cx: &mut Cx<'_>, root: &Field<'_>, meta: Meta) -> Object {
    let spec = cx.map(root.get("spec"));
    let type_field = spec.get("type");
    let import_type = match cx.string(&type_field).as_deref() {
        Some("ClusterSetIP") => ImportType::ClusterSetIp,
        Some("Headless") => ImportType::Headless,
        Some(other) => {
            cx.error(
                &type_field,
                format!("{other:?} is not ClusterSetIP or Headless"),
            );
            ImportType::ClusterSetIp
        }
        None => {
            cx.error(&type_field, "required");
            ImportType::ClusterSetIp
        }
    };
    let ips = cx
        .seq(&spec.get("ips"))
        .iter()
        .filter_map(|f| cx.ip(f))
        .collect();
    let ports = decode_endpoint_ports(cx, &spec.get("ports"), true);
    Object::ServiceImport(ServiceImport {
        meta,
        import_type,
        ips,
        ports,
    })
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

/// A field of the document being decoded: its node (`None` when absent or
/// null), its path for messages (`spec.ports[0].port`), and where to point
/// (the parent's position when absent).
#[derive(Clone)]
struct Field<'n> {
    node: Option<&'n Node>,
    path: String,
    line: u32,
    column: u32,
}

impl<'n> Field<'n> {
    fn root(node: &'n Node) -> Self {
        Self {
            node: Some(node),
            path: String::new(),
            line: node.line,
            column: node.column,
        }
    }

    fn child(&self, node: Option<&'n Node>, path: String) -> Self {
        let (line, column) = node.map_or((self.line, self.column), |n| (n.line, n.column));
        Self {
            node: node.filter(|n| !n.is_null()),
            path,
            line,
            column,
        }
    }

    fn get(&self, key: &str) -> Self {
        self.child(self.node.and_then(|n| n.get(key)), self.path_to(key))
    }

    /// The path of member `key` (`<path>.<key>`, or `key` at the root).
    /// Every field visited has its path, for the messages that may name
    /// it: made at its size, without the formatting machinery.
    fn path_to(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            joined('.', &[&self.path, key])
        }
    }

    /// The path of item `i` (`<path>[i]`).
    fn path_at(&self, i: usize) -> String {
        let mut digits = [0u8; 20];
        let i = svcnet_model::decimal(i as u64, &mut digits);
        let mut path = String::with_capacity(self.path.len() + 2 + i.len());
        path.push_str(&self.path);
        path.push('[');
        path.push_str(i);
        path.push(']');
        path
    }
}

/// Decoding state of one object: who it is and what was found wrong.
struct Cx<'f> {
    file: &'f Arc<str>,
    object: Option<(Kind, String, String)>,
    diagnostics: Vec<Diagnostic>,
    failed: bool,
}

impl Cx<'_> {
    fn report(&mut self, severity: Severity, field: &Field<'_>, problem: impl Display) {
        let problem = if field.path.is_empty() {
            problem.to_string()
        } else {
            format!("{}: {problem}", field.path)
        };
        let origin = Origin {
            file: self.file.clone(),
            line: field.line,
            column: field.column,
        };
        self.failed |= severity == Severity::Error;
        self.diagnostics.push(Diagnostic {
            origin,
            severity,
            object: self.object.clone(),
            problem,
        });
    }

    fn error(&mut self, field: &Field<'_>, problem: impl Display) {
        self.report(Severity::Error, field, problem);
    }

    fn warning(&mut self, field: &Field<'_>, problem: impl Display) {
        self.report(Severity::Warning, field, problem);
    }

    fn wrong_type(&mut self, field: &Field<'_>, expected: &str) {
        let found = field
            .node
            .map_or_else(|| "nothing".to_owned(), Node::describe);
        self.error(field, format!("expected {expected}, found {found}"));
    }

    /// Runs a syntax check on a value, reporting `"value" reason`.
    fn check(&mut self, field: &Field<'_>, value: &str, check: fn(&str) -> Check) {
        if let Err(reason) = check(value) {
            self.error(field, format!("{value:?} {reason}"));
        }
    }

    /// The field as a mapping; anything else is reported and reads as absent.
    fn map<'n>(&mut self, field: Field<'n>) -> Field<'n> {
        match field.node {
            Some(node) if node.as_map().is_none() => {
                self.wrong_type(&field, "a mapping");
                Field {
                    node: None,
                    ..field
                }
            }
            _ => field,
        }
    }

    /// [`Self::map`] for a field already checked (by `decode_meta`): a
    /// second report would only repeat the first.
    fn map_quiet<'n>(&self, field: Field<'n>) -> Field<'n> {
        let node = field.node.filter(|n| n.as_map().is_some());
        Field { node, ..field }
    }

    fn seq<'n>(&mut self, field: &Field<'n>) -> Vec<Field<'n>> {
        match field.node.map(|n| &n.value) {
            None => Vec::new(),
            Some(Value::Seq(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| field.child(Some(item), field.path_at(i)))
                .collect(),
            Some(_) => {
                self.wrong_type(field, "a sequence");
                Vec::new()
            }
        }
    }

    fn string(&mut self, field: &Field<'_>) -> Option<String> {
        let node = field.node?;
        let text = node.as_str();
        if text.is_none() {
            self.wrong_type(field, "a string");
        }
        text.map(str::to_owned)
    }

    fn int(&mut self, field: &Field<'_>) -> Option<i64> {
        let node = field.node?;
        let value = match &node.value {
            Value::Scalar { text, plain: true } => text.parse().ok(),
            _ => None,
        };
        if value.is_none() {
            self.wrong_type(field, "an integer");
        }
        value
    }

    fn bool(&mut self, field: &Field<'_>) -> Option<bool> {
        let node = field.node?;
        let value = match &node.value {
            Value::Scalar { text, plain: true } => match text.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => None,
            },
            _ => None,
        };
        if value.is_none() {
            self.wrong_type(field, "true or false");
        }
        value
    }

    /// A port number 1-65535; `required` reports a missing one.
    fn port(&mut self, field: &Field<'_>, required: bool) -> Option<u16> {
        if field.node.is_none() {
            if required {
                self.error(field, "required");
            }
            return None;
        }
        let value = self.int(field)?;
        let port = u16::try_from(value).ok().filter(|p| *p != 0);
        if port.is_none() {
            self.error(field, format!("{value} is out of range 1-65535"));
        }
        port
    }

    /// A count 0..=`max` (replicas, ordinals).
    fn count(&mut self, field: &Field<'_>, max: i64) -> Option<u32> {
        let value = self.int(field)?;
        let count = u32::try_from(value).ok().filter(|_| value <= max);
        if count.is_none() {
            self.error(field, format!("{value} is out of range 0-{max}"));
        }
        count
    }

    fn protocol(&mut self, field: &Field<'_>) -> Protocol {
        match self.string(field).as_deref() {
            None | Some("TCP") => Protocol::Tcp,
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => Protocol::Sctp,
            Some(other) => {
                self.error(field, format!("{other:?} is not TCP, UDP or SCTP"));
                Protocol::Tcp
            }
        }
    }

    fn ip(&mut self, field: &Field<'_>) -> Option<IpAddr> {
        let text = self.string(field)?;
        let ip = text.parse().ok();
        if ip.is_none() {
            self.error(field, format!("{text:?} is not an IP address"));
        }
        ip
    }

    /// An optional DNS-1123 label; empty reads as absent.
    fn dns_label(&mut self, field: &Field<'_>) -> Option<String> {
        let text = self.string(field).filter(|s| !s.is_empty())?;
        self.check(field, &text, check_dns_label);
        Some(text)
    }

    /// A label map (labels or an equality selector); `noun` names it in messages.
    fn labels(&mut self, field: &Field<'_>, noun: &str) -> Labels {
        let field = self.map(field.clone());
        let mut labels = Vec::new();
        for (key, value) in field.node.and_then(Node::as_map).unwrap_or_default() {
            let key_field = field.child(Some(key), field.path.clone());
            let Some(key) = self.string(&key_field) else {
                continue;
            };
            let value_field = field.child(Some(value), field.path_to(&key));
            let value = if value.is_null() {
                Some(String::new())
            } else {
                self.string(&value_field)
            };
            let Some(value) = value else { continue };
            if let Err(reason) = check_label_key(&key) {
                self.error(&key_field, format!("bad {noun} key {key:?}: {reason}"));
            }
            if let Err(reason) = check_label_value(&value) {
                self.error(
                    &value_field,
                    format!("bad {noun} value {value:?}: {reason}"),
                );
            }
            labels.push((key, value));
        }
        labels.into_iter().collect()
    }
}

type Check = Result<(), &'static str>;

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn check_label_chars(s: &str) -> Check {
    let ok = s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.starts_with(is_lower_alnum)
        && s.ends_with(is_lower_alnum);
    ok.then_some(()).ok_or(
        "must be lowercase letters, digits and '-', starting and ending with a letter or digit",
    )
}

/// RFC 1123 label, as Kubernetes' `IsDNS1123Label`.
/// RFC 1035 label (a letter first), as Kubernetes checks Service names.
fn check_dns1035_label(s: &str) -> Check {
    match s.chars().next() {
        Some(c) if c.is_ascii_digit() => Err("must start with a letter"),
        _ => check_dns_label(s),
    }
}

fn check_dns_label(s: &str) -> Check {
    if s.len() > 63 {
        return Err("must be at most 63 characters");
    }
    check_label_chars(s)
}

/// RFC 1123 subdomain, as Kubernetes' `IsDNS1123Subdomain`.
fn check_dns_subdomain(s: &str) -> Check {
    if s.len() > 253 {
        return Err("must be at most 253 characters");
    }
    s.split('.').try_for_each(check_label_chars).map_err(|_| {
        "must be dot-separated parts of lowercase letters, digits and '-', \
         each starting and ending with a letter or digit"
    })
}

/// IANA service name (RFC 6335 §5.1), as Kubernetes' `IsValidPortName`.
fn check_port_name(s: &str) -> Check {
    if s.is_empty() || s.len() > 15 {
        Err("must be 1-15 characters")
    } else if !s.chars().all(|c| is_lower_alnum(c) || c == '-') {
        Err("must be lowercase letters, digits and '-'")
    } else if !s.chars().any(|c| c.is_ascii_lowercase()) {
        Err("must contain at least one letter")
    } else if s.starts_with('-') || s.ends_with('-') || s.contains("--") {
        Err("must not start or end with '-' or contain '--'")
    } else {
        Ok(())
    }
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

const LABEL_RULE: &str = "must be at most 63 characters of letters, digits, '-', '_' and '.', \
                          starting and ending with a letter or digit";

fn check_label_name(s: &str) -> Check {
    let ok = s.len() <= 63
        && s.chars().all(is_label_char)
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    ok.then_some(()).ok_or(LABEL_RULE)
}

fn check_label_value(s: &str) -> Check {
    if s.is_empty() {
        Ok(())
    } else {
        check_label_name(s)
    }
}

/// `[prefix/]name`, the prefix a DNS subdomain.
fn check_label_key(s: &str) -> Check {
    match s.split_once('/') {
        Some((prefix, name)) => {
            check_dns_subdomain(prefix).map_err(|_| "prefix must be a DNS subdomain")?;
            check_label_name(name)
        }
        None => check_label_name(s),
    }
}

/// FNV-1a 64 over a canonical rendering of the template: mapping keys
/// sorted, and a scalar's quoting only counts where it changes the type
/// (`80` vs `"80"`), so re-indenting or reordering keeps pod names.
fn template_hash(node: &Node) -> u64 {
    let mut bytes = Vec::new();
    render(node, &mut bytes);
    fnv1a64(&bytes)
}

fn render(node: &Node, out: &mut Vec<u8>) {
    // The rendering is what the hash is of, so it stays octet for octet
    // what it was (pod names depend on it); it is written in place: a
    // collection's length is filled in once its body is written, and a
    // map's entries are written once, then reordered by one copy.
    match &node.value {
        Value::Null => out.push(b'~'),
        Value::Scalar { text, plain } => {
            let typed = *plain && (is_number(text) || is_bool(text));
            out.push(if typed { b'n' } else { b's' });
            out.extend_from_slice(&(text.len() as u64).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        Value::Seq(items) => {
            let at = open_frame(b'[', out);
            items.iter().for_each(|item| render(item, out));
            close_frame(at, out);
        }
        Value::Map(entries) => {
            let at = open_frame(b'{', out);
            let start = out.len();
            let mut spans = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let from = out.len();
                render(k, out);
                render(v, out);
                spans.push((from - start, out.len() - start));
            }
            let written = out.split_off(start);
            spans.sort_by(|x, y| written[x.0..x.1].cmp(&written[y.0..y.1]));
            for (from, to) in spans {
                out.extend_from_slice(&written[from..to]);
            }
            close_frame(at, out);
        }
    }
}

/// Writes a collection's tag and room for its length; returns where the
/// length goes.
fn open_frame(tag: u8, out: &mut Vec<u8>) -> usize {
    out.push(tag);
    out.extend_from_slice(&[0; 8]);
    out.len() - 8
}

/// Fills in the length of the body written since [`open_frame`].
fn close_frame(at: usize, out: &mut [u8]) {
    let len = (out.len() - at - 8) as u64;
    out[at..at + 8].copy_from_slice(&len.to_le_bytes());
}

/// Whether Rust reads `text` as an `f64` (its grammar starts with a sign,
/// a digit, a point, `inf` or `nan`; anything else is not tried).
fn is_number(text: &str) -> bool {
    matches!(
        text.as_bytes().first(),
        Some(b'0'..=b'9' | b'+' | b'-' | b'.' | b'i' | b'I' | b'n' | b'N')
    ) && text.parse::<f64>().is_ok()
}

fn is_bool(text: &str) -> bool {
    matches!(text, "true" | "True" | "TRUE" | "false" | "False" | "FALSE")
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::yaml::parse_documents;

    fn decode(text: &str) -> (Vec<Object>, Vec<Diagnostic>) {
        let file: Arc<str> = Arc::from("m.yaml");
        let mut objects = Vec::new();
        let mut diagnostics = Vec::new();
        for doc in parse_documents(text) {
            let (o, d) = decode_document(&file, &doc.unwrap());
            objects.extend(o);
            diagnostics.extend(d);
        }
        (objects, diagnostics)
    }

    /// Diagnostics as `line:column: [W ]problem`.
    fn messages(diagnostics: &[Diagnostic]) -> Vec<String> {
        diagnostics
            .iter()
            .map(|d| {
                let w = if d.severity == Severity::Warning {
                    "W "
                } else {
                    ""
                };
                format!("{}:{}: {w}{}", d.origin.line, d.origin.column, d.problem)
            })
            .collect()
    }

    fn only(text: &str) -> Object {
        let (mut objects, diagnostics) = decode(text);
        assert!(diagnostics.is_empty(), "{:?}", messages(&diagnostics));
        assert_eq!(objects.len(), 1);
        objects.remove(0)
    }

    fn service(text: &str) -> Service {
        match only(text) {
            Object::Service(s) => s,
            other => panic!("{other:?}"),
        }
    }

    const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n";

    #[test]
    fn spec_1_service_fields() {
        let s = service(&format!(
            "{SVC}  namespace: shop\n  labels: {{app: web, tier: 1}}\nspec:\n  clusterIP: None\n  selector: {{app: web}}\n  publishNotReadyAddresses: true\n  ports:\n  - {{name: http, port: 80, targetPort: 8080}}\n  - {{name: dns, port: 53, protocol: UDP, targetPort: dns}}\n  - {{name: q, port: 81, targetPort: \"web\"}}\n  - {{name: r, port: 82}}\n"
        ));
        assert_eq!(s.meta.namespace, "shop");
        assert_eq!(s.meta.labels.get("tier"), Some("1"));
        assert_eq!(
            s.meta.origin,
            Some(Origin {
                file: "m.yaml".into(),
                line: 1,
                column: 1
            })
        );
        assert!(s.is_headless() && s.publish_not_ready);
        assert_eq!(s.selector.unwrap().get("app"), Some("web"));
        let targets: Vec<_> = s.ports.iter().map(|p| p.target_port.clone()).collect();
        assert_eq!(
            targets,
            [
                TargetPort::Number(8080),
                TargetPort::Name("dns".into()),
                TargetPort::Name("web".into()),
                TargetPort::Number(82)
            ]
        );
        assert_eq!(s.ports[1].protocol, Protocol::Udp);
        assert_eq!(s.service_type, ServiceType::ClusterIp);
    }

    #[test]
    fn spec_1_service_addresses() {
        let s = service(&format!("{SVC}spec:\n  selector: {{}}\n"));
        assert_eq!((s.address, s.selector), (ServiceAddress::Unallocated, None));
        let s = service(&format!("{SVC}spec:\n  clusterIP: \"\"\n"));
        assert_eq!(s.address, ServiceAddress::Unallocated);
        let s = service(&format!(
            "{SVC}spec:\n  clusterIP: 10.96.0.10\n  clusterIPs: [10.96.0.10, 'fd00::a']\n"
        ));
        let v6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0xa));
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(s.address, ServiceAddress::ClusterIps(vec![v4, v6]));
        let s = service(&format!(
            "{SVC}spec:\n  type: ExternalName\n  externalName: Example.COM.\n"
        ));
        assert_eq!(
            s.address,
            ServiceAddress::ExternalName("example.com".into())
        );
        assert_eq!(s.service_type, ServiceType::ExternalName);
    }

    #[test]
    fn spec_1_2_service_errors_point_at_the_node() {
        let (objects, d) = decode(&format!(
            "{SVC}spec:\n  clusterIP: 10.0.0.300\n  ports:\n  - name: a\n    port: 70000\n  - port: 81\n    targetPort: \"8080\"\n  - name: a\n    port: {{x: 1}}\n"
        ));
        assert!(objects.is_empty());
        assert_eq!(
            messages(&d),
            [
                "6:14: spec.clusterIP: \"10.0.0.300\" is not an IP address",
                "9:11: spec.ports[0].port: 70000 is out of range 1-65535",
                "10:5: spec.ports[1].name: required when more than one port",
                "11:17: spec.ports[1].targetPort: \"8080\" is quoted, so it is a port name, and port names need a letter; remove the quotes for a port number",
                "12:11: spec.ports[2].name: duplicate port name \"a\"",
                "13:11: spec.ports[2].port: expected an integer, found a mapping",
            ]
        );
        assert_eq!(
            d[0].object,
            Some((Kind::Service, "default".into(), "web".into()))
        );
        let (_, d) = decode(&format!("{SVC}spec:\n  type: ExternalName\n"));
        assert_eq!(
            messages(&d),
            ["6:3: spec.externalName: required for an ExternalName service"]
        );
    }

    #[test]
    fn spec_1_2_names_and_selectors_are_validated() {
        let (objects, d) = decode(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: Web.x\n  namespace: a_b\nspec:\n  selector:\n    app: 'has space'\n    -bad: x\n",
        );
        assert!(objects.is_empty());
        assert_eq!(
            messages(&d),
            [
                "4:9: metadata.name: \"Web.x\" must be lowercase letters, digits and '-', starting and ending with a letter or digit",
                "5:14: metadata.namespace: \"a_b\" must be lowercase letters, digits and '-', starting and ending with a letter or digit",
                "8:10: spec.selector.app: bad selector value \"has space\": must be at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
                "9:5: spec.selector: bad selector key \"-bad\": must be at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
            ]
        );
        assert_eq!(
            d[0].object,
            Some((Kind::Service, "a_b".into(), "Web.x".into()))
        );
        let (_, d) = decode("apiVersion: v1\nkind: Pod\nmetadata: {namespace: x}\n");
        assert_eq!(messages(&d), ["3:11: metadata.name: required"]);
        // Pods are named by DNS subdomains, Services by labels.
        assert!(
            decode("apiVersion: v1\nkind: Pod\nmetadata: {name: a.b}\n")
                .1
                .is_empty()
        );
    }

    #[test]
    fn spec_1_kinds_api_versions_and_unknown_kinds() {
        let (objects, d) = decode(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\n---\napiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: d}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop, namespace: ignored}\n",
        );
        assert_eq!(
            messages(&d),
            [
                "8:13: apiVersion: \"extensions/v1beta1\" is not served for Deployment (expected apps/v1)"
            ]
        );
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].key().to_string(), "Namespace shop");
        let (_, d) = decode("metadata: {name: x}\n---\n- a\n");
        assert_eq!(
            messages(&d),
            [
                "1:1: kind: required (not a Kubernetes object without it)",
                "3:1: expected a Kubernetes object (a mapping), found a sequence"
            ]
        );
    }

    #[test]
    fn spec_1_2_list_items_load_independently() {
        let (objects, d) = decode(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: bad}\n  spec: {ports: [{port: 0}]}\n- apiVersion: v1\n  kind: Service\n  metadata: {name: good}\n- kind: ConfigMap\n",
        );
        assert_eq!(
            messages(&d),
            ["7:25: spec.ports[0].port: 0 is out of range 1-65535"]
        );
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].meta().name, "good");
        assert_eq!(
            objects[0]
                .meta()
                .origin
                .as_ref()
                .map(|o| (o.line, o.column)),
            Some((8, 3))
        );
    }

    #[test]
    fn spec_1_1_pod_fields() {
        let pod = match only(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-0\n  labels: {app: web}\n  deletionTimestamp: 2024-01-01T00:00:00Z\nspec:\n  hostname: web-0\n  subdomain: nginx\n  nodeName: n1\n  initContainers: [{name: i, ports: [{containerPort: 9}]}]\n  containers:\n  - name: c\n    ports: [{name: http, containerPort: 80}, {containerPort: 53, protocol: UDP}]\nstatus:\n  phase: Running\n  conditions: [{type: PodScheduled, status: 'True'}, {type: Ready, status: 'False'}]\n  podIP: 10.244.0.5\n  podIPs: [{ip: 10.244.0.5}, {ip: 'fd00::5'}]\n",
        ) {
            Object::Pod(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(pod.spec.hostname.as_deref(), Some("web-0"));
        assert_eq!(pod.spec.subdomain.as_deref(), Some("nginx"));
        assert_eq!(pod.spec.labels.get("app"), Some("web"));
        assert_eq!(pod.spec.container_ports.len(), 2);
        assert_eq!(pod.spec.container_ports[0].name.as_deref(), Some("http"));
        assert_eq!(pod.node.as_deref(), Some("n1"));
        assert_eq!(pod.status.phase.as_deref(), Some("Running"));
        assert_eq!(pod.status.ready_condition, Some(false));
        assert!(pod.status.terminating);
        assert_eq!(pod.status.ips.len(), 2);
    }

    #[test]
    fn spec_1_endpoints_become_one_slice_per_subset() {
        let (objects, d) = decode(
            "apiVersion: v1\nkind: Endpoints\nmetadata: {name: ext}\nsubsets:\n- addresses: [{ip: 10.0.0.1, hostname: a, targetRef: {kind: Pod, name: p1}}]\n  notReadyAddresses: [{ip: 10.0.0.2, nodeName: n}]\n  ports: [{name: http, port: 80}]\n- addresses: [{ip: 10.0.0.3}]\n  ports: [{port: 53, protocol: UDP}]\n",
        );
        assert!(d.is_empty(), "{:?}", messages(&d));
        assert_eq!(objects.len(), 2);
        let Object::EndpointSlice {
            slice,
            from_endpoints: true,
        } = &objects[0]
        else {
            panic!()
        };
        assert_eq!(slice.service, "ext");
        assert_eq!(slice.ports[0].name.as_deref(), Some("http"));
        let flags: Vec<_> = slice
            .endpoints
            .iter()
            .map(|e| (e.ready, e.serving))
            .collect();
        assert_eq!(flags, [(true, true), (false, false)]);
        assert_eq!(slice.endpoints.get(0).and_then(|e| e.pod), Some("p1"));
        assert_eq!(slice.endpoints.get(1).and_then(|e| e.node), Some("n"));
        assert_eq!(objects[0].key(), objects[1].key());
        assert_eq!(objects[0].meta().origin, objects[1].meta().origin);
        assert_eq!(objects[0].kind(), Kind::Endpoints);
    }

    #[test]
    fn spec_1_endpoint_slices() {
        let head = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: s1\n  labels: {kubernetes.io/service-name: web}\n";
        let (objects, d) = decode(&format!(
            "{head}addressType: IPv4\nports: [{{name: http, port: 80}}, {{name: all}}]\nendpoints:\n- addresses: [10.0.0.1]\n  hostname: h\n- addresses: [10.0.0.2]\n  conditions: {{ready: false, terminating: true}}\n"
        ));
        assert_eq!(
            messages(&d),
            ["7:33: W ports[1].port: missing (all ports) is not supported; port skipped"]
        );
        let Object::EndpointSlice {
            slice,
            from_endpoints: false,
        } = &objects[0]
        else {
            panic!()
        };
        assert_eq!(slice.service, "web");
        assert_eq!(slice.ports.len(), 1);
        let flags: Vec<_> = slice
            .endpoints
            .iter()
            .map(|e| (e.ready, e.serving, e.terminating))
            .collect();
        assert_eq!(flags, [(true, true, false), (false, false, true)]);

        let (objects, d) = decode(&format!(
            "{head}addressType: IPv6\nendpoints:\n- addresses: [10.0.0.1]\n"
        ));
        assert!(objects.is_empty());
        assert_eq!(
            messages(&d),
            ["8:15: endpoints[0].addresses[0]: 10.0.0.1 is not an IPv6 address (addressType IPv6)"]
        );
        let (objects, d) = decode(&format!("{head}addressType: FQDN\n"));
        assert!(objects.is_empty());
        assert_eq!(
            messages(&d),
            ["6:14: W addressType: FQDN EndpointSlices are not served; skipped"]
        );
        let (_, d) = decode(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\n",
        );
        assert_eq!(
            messages(&d),
            ["3:11: metadata.labels: the kubernetes.io/service-name label is required"]
        );
    }

    const STS: &str = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: web}\nspec:\n";

    fn workload(text: &str) -> Workload {
        match only(text) {
            Object::Workload(w) => *w,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn spec_1_1_workloads() {
        let w = workload(&format!(
            "{STS}  serviceName: nginx\n  replicas: 3\n  ordinals: {{start: 5}}\n  podManagementPolicy: Parallel\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web, v: '1'}}}}\n    spec:\n      hostname: h\n      containers: [{{name: c, ports: [{{name: web, containerPort: 80}}]}}]\n"
        ));
        assert_eq!(
            (w.kind, w.replicas, w.ordinals_start, w.ordered_ready),
            (WorkloadKind::StatefulSet, 3, 5, false)
        );
        assert_eq!(w.service_name.as_deref(), Some("nginx"));
        assert_eq!(w.template.labels.len(), 2);
        assert_eq!(w.template.hostname.as_deref(), Some("h"));
        assert_eq!(w.template.container_ports[0].port, 80);
        let w = workload(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: d}}\n  template: {metadata: {labels: {app: d}}}\n",
        );
        assert_eq!(
            (w.kind, w.replicas, w.ordinals_start, w.ordered_ready),
            (WorkloadKind::Deployment, 1, 0, true)
        );
    }

    #[test]
    fn spec_1_2_workload_errors() {
        let (objects, d) = decode(&format!(
            "{STS}  replicas: -1\n  podManagementPolicy: Sometimes\n  selector: {{matchLabels: {{app: web}}}}\n  template: {{metadata: {{labels: {{app: other}}}}}}\n"
        ));
        assert!(objects.is_empty());
        assert_eq!(
            messages(&d),
            [
                "5:13: spec.replicas: -1 is out of range 0-10000",
                "6:24: spec.podManagementPolicy: \"Sometimes\" is not OrderedReady or Parallel",
                "8:33: spec.template.metadata.labels: must include every label of spec.selector.matchLabels",
            ]
        );
        let (objects, d) = decode(&format!(
            "{STS}  selector: {{matchExpressions: [{{key: a, operator: Exists}}]}}\n  template: {{}}\n"
        ));
        assert_eq!(objects.len(), 1);
        assert_eq!(
            messages(&d),
            [
                "5:32: W spec.selector.matchExpressions: matchExpressions are not evaluated (only matchLabels)"
            ]
        );
        let (_, d) = decode(&format!("{STS}  template: {{}}\n"));
        assert_eq!(
            messages(&d),
            ["5:3: spec.selector: required (an empty selector matches nothing)"]
        );
    }

    #[test]
    fn rendering_in_place_is_the_framed_rendering() {
        // The rendering as first written: every collection's body made
        // apart, then framed; every map entry its own vector, sorted.
        fn reference(node: &Node, out: &mut Vec<u8>) {
            fn framed(tag: u8, body: &[u8], out: &mut Vec<u8>) {
                out.push(tag);
                out.extend_from_slice(&(body.len() as u64).to_le_bytes());
                out.extend_from_slice(body);
            }
            match &node.value {
                Value::Null => out.push(b'~'),
                Value::Scalar { text, plain } => {
                    let typed = *plain
                        && (text.parse::<f64>().is_ok()
                            || matches!(
                                text.as_str(),
                                "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
                            ));
                    framed(if typed { b'n' } else { b's' }, text.as_bytes(), out);
                }
                Value::Seq(items) => {
                    let mut body = Vec::new();
                    items.iter().for_each(|item| reference(item, &mut body));
                    framed(b'[', &body, out);
                }
                Value::Map(entries) => {
                    let mut rendered: Vec<Vec<u8>> = entries
                        .iter()
                        .map(|(k, v)| {
                            let mut entry = Vec::new();
                            reference(k, &mut entry);
                            reference(v, &mut entry);
                            entry
                        })
                        .collect();
                    rendered.sort();
                    framed(b'{', &rendered.concat(), out);
                }
            }
        }
        let docs = [
            "metadata: {labels: {app: web, tier: '1'}}\nspec:\n  containers:\n  - name: c\n    image: nginx\n    ports: [{containerPort: 80, name: http}, {containerPort: \"81\"}]\n",
            "[1, 1.5, -2, +3, .5, 1e3, inf, -Infinity, NaN, nan, nginx, info, true, True, 'true', FALSE, ~, null, '', \"\"]",
            "{b: {z: [], y: {}, x: [[], [{}]]}, a: [b, a], '': ~, 10: ten, 9: nine}",
            "{k: v, k2: {k: v}, k3: [{k: v}, {k: v}], z: 0x1F, y: 0o17, x: 1_000, w: '-', v: '+', u: '.'}",
            "plain",
        ];
        for doc in docs {
            for node in parse_documents(doc) {
                let node = node.unwrap();
                let (mut new, mut old) = (Vec::new(), Vec::new());
                render(&node, &mut new);
                reference(&node, &mut old);
                assert_eq!(new, old, "{doc}");
            }
        }
    }

    #[test]
    fn spec_1_1_template_hash_is_stable() {
        let a = workload(&format!(
            "{STS}  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec: {{containers: [{{name: c, image: nginx}}]}}\n"
        ));
        // Same template, other layout, key order and quoting of strings.
        let b = workload(&format!(
            "{STS}  replicas: 2\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    spec:\n      containers:\n      - image: \"nginx\"\n        name: c\n    metadata: {{labels: {{'app': web}}}}\n"
        ));
        let c = workload(&format!(
            "{STS}  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: c, image: nginx:2}}]}}\n"
        ));
        assert_eq!(a.template_hash, b.template_hash);
        assert_ne!(a.template_hash, c.template_hash);
        // Pinned: pod names derive from it and must not change between releases.
        assert_eq!(a.template_hash, 6_814_568_809_523_408_060);
    }

    #[test]
    fn spec_3_service_export_and_import() {
        let (objects, d) = decode(
            "apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {name: web, namespace: shop}\n---\napiVersion: multicluster.x-k8s.io/v1beta1\nkind: ServiceImport\nmetadata: {name: web}\nspec:\n  type: ClusterSetIP\n  ips: [10.112.0.1]\n  ports: [{name: http, port: 80}]\n",
        );
        assert!(d.is_empty(), "{:?}", messages(&d));
        assert!(matches!(&objects[0], Object::ServiceExport(m) if m.namespace == "shop"));
        let Object::ServiceImport(import) = &objects[1] else {
            panic!()
        };
        assert_eq!(import.import_type, ImportType::ClusterSetIp);
        assert_eq!(import.ips, [IpAddr::V4(Ipv4Addr::new(10, 112, 0, 1))]);
        assert_eq!(import.ports[0].port, 80);
    }

    #[test]
    fn validators() {
        assert!(check_dns_label("a-1").is_ok());
        assert!(check_dns_label(&"a".repeat(64)).is_err());
        assert!(check_dns_label("1a").is_ok() && check_dns1035_label("1a").is_err());
        assert!(check_dns_subdomain("a.b-c.d").is_ok());
        assert!(check_dns_subdomain("a..b").is_err());
        assert!(check_port_name("http-2").is_ok());
        for bad in ["8080", "a--b", "-a", "Http", "abcdefghijklmnop"] {
            assert!(check_port_name(bad).is_err(), "{bad}");
        }
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("A_b.c").is_ok());
        assert!(check_label_key("app.kubernetes.io/name").is_ok());
        assert!(check_label_key("Bad_Prefix/name").is_err());
    }
}
