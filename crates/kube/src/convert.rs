//! Kubernetes API objects → the compact model, at the source (ARCHITECTURE:
//! "Kubernetes types stop at the source"). Only what DNS needs is kept; a
//! malformed field is dropped with a debug log, never a panic.

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice as KubeSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::DynamicObject;
use svcnet_model::{
    Endpoint, EndpointPort, EndpointSlice, ImportType, Kind, Labels, Meta, Object, ObjectKey,
    PodStatus, PodTemplate, Protocol, ServiceAddress, ServiceImport, ServicePort, ServiceType,
    TargetPort,
};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub use svcnet_model::{MC_SERVICE_NAME_LABEL, MC_SOURCE_CLUSTER_LABEL};

fn meta(m: &ObjectMeta, keep_labels: bool) -> Option<Meta> {
    Some(Meta {
        namespace: m.namespace.clone().unwrap_or_default(),
        name: m.name.clone()?,
        labels: if keep_labels {
            m.labels.clone().unwrap_or_default().into()
        } else {
            Labels::new()
        },
        origin: None,
    })
}

/// The key an object of `kind` with metadata `m` has in the model.
pub fn key(kind: Kind, m: &ObjectMeta) -> Option<ObjectKey> {
    Some(ObjectKey {
        kind,
        namespace: m.namespace.clone().unwrap_or_default(),
        name: m.name.clone()?,
    })
}

fn protocol(p: Option<&str>) -> Protocol {
    match p {
        Some("UDP") => Protocol::Udp,
        Some("SCTP") => Protocol::Sctp,
        _ => Protocol::Tcp,
    }
}

fn port(n: i32) -> Option<u16> {
    u16::try_from(n).ok().filter(|p| *p != 0)
}

fn ips<'a>(texts: impl IntoIterator<Item = &'a String>, what: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for t in texts {
        match t.parse::<IpAddr>() {
            Ok(ip) if !out.contains(&ip) => out.push(ip),
            Ok(_) => {}
            Err(_) => tracing::debug!(address = %t, "{what}: not an IP address, ignored"),
        }
    }
    out
}

/// A core/v1 Service.
pub fn service(s: &Service) -> Option<Object> {
    let meta = meta(&s.metadata, false)?;
    let spec = s.spec.as_ref()?;
    let service_type = match spec.type_.as_deref() {
        Some("NodePort") => ServiceType::NodePort,
        Some("LoadBalancer") => ServiceType::LoadBalancer,
        Some("ExternalName") => ServiceType::ExternalName,
        _ => ServiceType::ClusterIp,
    };
    let cluster_ips: Vec<&String> = match (&spec.cluster_ips, &spec.cluster_ip) {
        (Some(list), _) if !list.is_empty() => list.iter().collect(),
        (_, Some(one)) => vec![one],
        _ => Vec::new(),
    };
    let address = if service_type == ServiceType::ExternalName {
        let target = spec
            .external_name
            .as_deref()?
            .trim_end_matches('.')
            .to_ascii_lowercase();
        ServiceAddress::ExternalName(target)
    } else if cluster_ips.first().is_some_and(|ip| ip.as_str() == "None") {
        ServiceAddress::Headless
    } else {
        ServiceAddress::ClusterIps(ips(cluster_ips, "spec.clusterIPs"))
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let number = port(p.port)?;
            let target_port = match &p.target_port {
                Some(IntOrString::Int(n)) => TargetPort::Number(port(*n).unwrap_or(number)),
                Some(IntOrString::String(name)) => TargetPort::Name(name.clone()),
                None => TargetPort::Number(number),
            };
            Some(ServicePort {
                name: p.name.clone().filter(|n| !n.is_empty()),
                protocol: protocol(p.protocol.as_deref()),
                port: number,
                target_port,
                node_port: p.node_port.and_then(port),
            })
        })
        .collect();
    Some(Object::Service(svcnet_model::Service {
        meta,
        service_type,
        address,
        ports,
        selector: spec
            .selector
            .clone()
            .filter(|s| !s.is_empty())
            .map(Labels::from),
        publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
    }))
}

/// A discovery/v1 EndpointSlice; `label` names the label that carries the
/// service name (`kubernetes.io/service-name`, or the multi-cluster one).
pub fn endpoint_slice(s: &KubeSlice, label: &str) -> Option<Object> {
    let meta = meta(&s.metadata, true)?;
    let service = meta.labels.get(label)?.to_owned();
    if s.address_type == "FQDN" {
        return None;
    }
    let ports = s
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(EndpointPort {
                name: p.name.clone().filter(|n| !n.is_empty()),
                protocol: protocol(p.protocol.as_deref()),
                port: port(p.port?)?,
            })
        })
        .collect();
    let endpoints = s
        .endpoints
        .iter()
        .map(|e| {
            let c = e.conditions.as_ref();
            // KEP-1672: an unknown `ready` is taken as ready; `serving`
            // defaults to `ready`.
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            Endpoint {
                addresses: ips(&e.addresses, "endpoints[].addresses").into(),
                hostname: e
                    .hostname
                    .as_deref()
                    .filter(|h| !h.is_empty())
                    .map(Box::from),
                ready,
                serving: c.and_then(|c| c.serving).unwrap_or(ready),
                terminating: c.and_then(|c| c.terminating).unwrap_or(false),
                pod: e
                    .target_ref
                    .as_ref()
                    .and_then(|r| r.name.as_deref().map(Box::from)),
                node: e.node_name.as_deref().map(Arc::from),
            }
        })
        .collect();
    // Only the labels the index reads are kept: which service, and for an
    // imported slice which cluster it came from.
    let mut labels = Labels::new();
    labels.insert(label, service.as_str());
    if let Some(source) = meta.labels.get(MC_SOURCE_CLUSTER_LABEL) {
        labels.insert(MC_SOURCE_CLUSTER_LABEL, source);
    }
    Some(Object::EndpointSlice {
        slice: EndpointSlice {
            meta: Meta { labels, ..meta },
            service,
            ports,
            endpoints,
        },
        from_endpoints: false,
    })
}

/// A core/v1 Namespace.
pub fn namespace(n: &Namespace) -> Option<Object> {
    let mut m = meta(&n.metadata, false)?;
    m.namespace.clear();
    Some(Object::Namespace(m))
}

/// A core/v1 Pod, trimmed to what pod records and readiness need.
pub fn pod(p: &Pod) -> Option<Object> {
    let meta = meta(&p.metadata, false)?;
    let status = p.status.as_ref();
    let mut ip_texts: Vec<&String> = Vec::new();
    if let Some(s) = status {
        ip_texts.extend(s.pod_ip.iter());
        ip_texts.extend(s.pod_ips.iter().flatten().map(|i| &i.ip));
    }
    let ready_condition = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status == "True");
    let spec = p.spec.as_ref();
    Some(Object::Pod(Box::new(svcnet_model::Pod {
        meta,
        spec: PodTemplate {
            hostname: spec.and_then(|s| s.hostname.clone()),
            subdomain: spec.and_then(|s| s.subdomain.clone()),
            ..PodTemplate::default()
        },
        status: PodStatus {
            phase: status.and_then(|s| s.phase.clone()),
            ready_condition,
            terminating: p.metadata.deletion_timestamp.is_some(),
            ips: ips(ip_texts, "status.podIPs"),
        },
        node: spec.and_then(|s| s.node_name.clone()),
        owner: None,
    })))
}

/// A multicluster.x-k8s.io ServiceImport (a dynamic object: the CRD may be absent).
pub fn service_import(o: &DynamicObject) -> Option<Object> {
    let meta = meta(&o.metadata, false)?;
    let spec = o.data.get("spec")?;
    let import_type = match spec.get("type").and_then(|t| t.as_str()) {
        Some("Headless") => ImportType::Headless,
        _ => ImportType::ClusterSetIp,
    };
    let ip_texts: Vec<String> = spec
        .get("ips")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let ports = spec
        .get("ports")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(EndpointPort {
                name: p.get("name").and_then(|n| n.as_str()).map(str::to_owned),
                protocol: protocol(p.get("protocol").and_then(|v| v.as_str())),
                port: port(i32::try_from(p.get("port")?.as_i64()?).ok()?)?,
            })
        })
        .collect();
    Some(Object::ServiceImport(ServiceImport {
        meta,
        import_type,
        ips: ips(&ip_texts, "spec.ips"),
        ports,
    }))
}

/// A multicluster.x-k8s.io ServiceExport: the Service of the same name is
/// offered to the clusterset (SPEC §3).
pub fn service_export(o: &DynamicObject) -> Option<Object> {
    Some(Object::ServiceExport(meta(&o.metadata, false)?))
}
