//! Model objects back into the JSON a Kubernetes API server serves, so the
//! state the emulated control plane computes from manifests can be loaded
//! into a fake API server and served in API mode: the same state, through
//! the other source, must give the same answers.
//!
//! Kubernetes' own controllers are followed where the model is looser than
//! the API: an EndpointSlice holds one address family (`addressType`), so a
//! slice whose endpoints have addresses of both families becomes one slice
//! per family, as the endpoints controller makes them; slices that came
//! from core/v1 Endpoints (one per subset, all named after the Endpoints)
//! get distinct names, as the endpoint mirroring controller gives them.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::{Map, Value, json};
use svcnet_model::{
    Endpoint, EndpointPort, EndpointSlice, ImportType, Labels, Meta, Object, Pod, Protocol,
    Service, ServiceAddress, ServiceImport, ServiceType, TargetPort,
};

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The API version of the multi-cluster kinds the fake serves.
const MCS_API_VERSION: &str = "multicluster.x-k8s.io/v1alpha1";

/// Every object of one cluster's resolved state (a `ClusterView`'s
/// objects), as API objects. Workloads have no API form here (their pods
/// and slices are already in the view) and are skipped.
pub fn kube_objects(objects: &[Object]) -> Vec<Value> {
    let mut slice_names: BTreeSet<(String, String)> = objects
        .iter()
        .filter_map(|o| match o {
            Object::EndpointSlice {
                slice,
                from_endpoints: false,
            } => Some((slice.meta.namespace.clone(), slice.meta.name.clone())),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for obj in objects {
        match obj {
            Object::Namespace(m) => out.push(json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": metadata(m, true),
            })),
            Object::Service(s) => out.push(service(s)),
            Object::Pod(p) => out.push(pod(p)),
            Object::EndpointSlice {
                slice,
                from_endpoints,
            } => out.extend(endpoint_slices(slice, *from_endpoints, &mut slice_names)),
            Object::ServiceExport(m) => out.push(json!({
                "apiVersion": MCS_API_VERSION, "kind": "ServiceExport", "metadata": metadata(m, true),
            })),
            Object::ServiceImport(i) => out.push(service_import(i)),
            Object::Workload(_) => {}
        }
    }
    out
}

fn metadata(m: &Meta, labels: bool) -> Value {
    let mut meta = Map::new();
    if !m.namespace.is_empty() {
        meta.insert("namespace".into(), json!(m.namespace));
    }
    meta.insert("name".into(), json!(m.name));
    if labels && !m.labels.is_empty() {
        meta.insert("labels".into(), json!(m.labels));
    }
    Value::Object(meta)
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

fn service(s: &Service) -> Value {
    let mut spec = Map::new();
    spec.insert(
        "type".into(),
        json!(match s.service_type {
            ServiceType::ClusterIp => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
            ServiceType::ExternalName => "ExternalName",
        }),
    );
    match &s.address {
        ServiceAddress::ClusterIps(ips) if !ips.is_empty() => {
            let texts: Vec<String> = ips.iter().map(ToString::to_string).collect();
            let families: Vec<&str> = ips.iter().map(family).collect();
            spec.insert("clusterIP".into(), json!(texts[0]));
            spec.insert("clusterIPs".into(), json!(texts));
            spec.insert("ipFamilies".into(), json!(families));
        }
        // The allocator ran out: the API server would have refused the
        // Service, the emulation keeps it without an address.
        ServiceAddress::ClusterIps(_) => {}
        ServiceAddress::Headless => {
            spec.insert("clusterIP".into(), json!("None"));
            spec.insert("clusterIPs".into(), json!(["None"]));
        }
        ServiceAddress::ExternalName(name) => {
            spec.insert("externalName".into(), json!(name));
        }
        ServiceAddress::Unallocated => {
            panic!(
                "Service {}/{} has no allocated address: convert the emulated view, not the manifests",
                s.meta.namespace, s.meta.name
            )
        }
    }
    let ports: Vec<Value> = s
        .ports
        .iter()
        .map(|p| {
            let mut port = Map::new();
            if let Some(n) = &p.name {
                port.insert("name".into(), json!(n));
            }
            port.insert("protocol".into(), json!(protocol(p.protocol)));
            port.insert("port".into(), json!(p.port));
            port.insert(
                "targetPort".into(),
                match &p.target_port {
                    TargetPort::Number(n) => json!(n),
                    TargetPort::Name(n) => json!(n),
                },
            );
            if let Some(n) = p.node_port {
                port.insert("nodePort".into(), json!(n));
            }
            Value::Object(port)
        })
        .collect();
    if !ports.is_empty() {
        spec.insert("ports".into(), json!(ports));
    }
    if let Some(sel) = &s.selector {
        spec.insert("selector".into(), json!(sel));
    }
    if s.publish_not_ready {
        spec.insert("publishNotReadyAddresses".into(), json!(true));
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata(&s.meta, true), "spec": spec})
}

fn pod(p: &Pod) -> Value {
    let mut meta = metadata(&p.meta, true);
    if p.status.terminating {
        meta["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    }
    let mut spec = Map::new();
    if let Some(h) = &p.spec.hostname {
        spec.insert("hostname".into(), json!(h));
    }
    if let Some(s) = &p.spec.subdomain {
        spec.insert("subdomain".into(), json!(s));
    }
    if let Some(n) = &p.node {
        spec.insert("nodeName".into(), json!(n));
    }
    let ports: Vec<Value> = p
        .spec
        .container_ports
        .iter()
        .map(|c| {
            let mut port = json!({"containerPort": c.port, "protocol": protocol(c.protocol)});
            if let Some(n) = &c.name {
                port["name"] = json!(n);
            }
            port
        })
        .collect();
    spec.insert(
        "containers".into(),
        json!([{"name": "c", "image": "c", "ports": ports}]),
    );
    let mut status = Map::new();
    if let Some(phase) = &p.status.phase {
        status.insert("phase".into(), json!(phase));
    }
    if let Some(ready) = p.status.ready_condition {
        status.insert(
            "conditions".into(),
            json!([{"type": "Ready", "status": if ready { "True" } else { "False" }}]),
        );
    }
    if let Some(first) = p.status.ips.first() {
        status.insert("podIP".into(), json!(first.to_string()));
        let ips: Vec<Value> = p
            .status
            .ips
            .iter()
            .map(|ip| json!({"ip": ip.to_string()}))
            .collect();
        status.insert("podIPs".into(), json!(ips));
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status})
}

/// A name not yet taken in the namespace, from `base`.
fn unique_name(taken: &mut BTreeSet<(String, String)>, ns: &str, base: &str) -> String {
    let mut name = base.to_owned();
    let mut n = 1;
    while !taken.insert((ns.to_owned(), name.clone())) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

fn endpoint_slices(
    slice: &EndpointSlice,
    from_endpoints: bool,
    taken: &mut BTreeSet<(String, String)>,
) -> Vec<Value> {
    let ns = &slice.meta.namespace;
    // One slice per family; endpoints without an address (none in a real
    // cluster) stay in the IPv4 one so the state is the same.
    let v4: Vec<Endpoint> = slice
        .endpoints
        .iter()
        .filter(|e| e.addresses.is_empty() || e.addresses.iter().any(IpAddr::is_ipv4))
        .map(|e| Endpoint {
            addresses: e
                .addresses
                .iter()
                .copied()
                .filter(IpAddr::is_ipv4)
                .collect(),
            ..e.to_endpoint()
        })
        .collect();
    let v6: Vec<Endpoint> = slice
        .endpoints
        .iter()
        .filter(|e| e.addresses.iter().any(IpAddr::is_ipv6))
        .map(|e| Endpoint {
            addresses: e
                .addresses
                .iter()
                .copied()
                .filter(IpAddr::is_ipv6)
                .collect(),
            ..e.to_endpoint()
        })
        .collect();
    let mut parts = Vec::new();
    if !v4.is_empty() || v6.is_empty() {
        parts.push(("IPv4", v4));
    }
    if !v6.is_empty() {
        parts.push(("IPv6", v6));
    }
    let split = parts.len() > 1;
    let mut labels: Labels = slice.meta.labels.clone();
    labels.insert(SERVICE_NAME_LABEL.to_owned(), slice.service.clone());
    if from_endpoints {
        labels.insert(
            "endpointslice.kubernetes.io/managed-by".to_owned(),
            "endpointslicemirroring-controller.k8s.io".to_owned(),
        );
    }
    parts
        .into_iter()
        .map(|(address_type, endpoints)| {
            let name = match (from_endpoints, split, address_type) {
                (true, _, _) => {
                    let base = format!("{}-mirror", slice.meta.name);
                    unique_name(taken, ns, &base)
                }
                (false, true, "IPv6") => {
                    unique_name(taken, ns, &format!("{}-ipv6", slice.meta.name))
                }
                _ => slice.meta.name.clone(),
            };
            let meta = Meta {
                name,
                labels: labels.clone(),
                ..slice.meta.clone()
            };
            json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": metadata(&meta, true),
                "addressType": address_type,
                "ports": slice.ports.iter().map(endpoint_port).collect::<Vec<_>>(),
                "endpoints": endpoints.iter().map(|e| endpoint(e, ns)).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn endpoint_port(p: &EndpointPort) -> Value {
    let mut port = json!({"protocol": protocol(p.protocol), "port": p.port});
    if let Some(n) = &p.name {
        port["name"] = json!(n);
    }
    port
}

fn endpoint(e: &Endpoint, ns: &str) -> Value {
    let addresses: Vec<String> = e.addresses.iter().map(ToString::to_string).collect();
    let mut v = json!({
        "addresses": addresses,
        "conditions": {"ready": e.ready, "serving": e.serving, "terminating": e.terminating},
    });
    if let Some(h) = &e.hostname {
        v["hostname"] = json!(h);
    }
    if let Some(p) = &e.pod {
        v["targetRef"] = json!({"kind": "Pod", "namespace": ns, "name": p});
    }
    if let Some(n) = &e.node {
        v["nodeName"] = json!(n);
    }
    v
}

fn service_import(i: &ServiceImport) -> Value {
    let ips: Vec<String> = i.ips.iter().map(ToString::to_string).collect();
    let mut spec = json!({
        "type": match i.import_type {
            ImportType::ClusterSetIp => "ClusterSetIP",
            ImportType::Headless => "Headless",
        },
        "ports": i.ports.iter().map(endpoint_port).collect::<Vec<_>>(),
    });
    if !ips.is_empty() {
        spec["ips"] = json!(ips);
    }
    json!({"apiVersion": MCS_API_VERSION, "kind": "ServiceImport", "metadata": metadata(&i.meta, true), "spec": spec})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Setup;

    #[test]
    fn mixed_family_slices_split_and_mirrored_slices_get_names() {
        let p = Setup::yaml(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIP: None\n  selector: {app: web}\n  ports: [{name: http, port: 80}]\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {name: web-0, labels: {app: web}}\nspec: {hostname: web-0, subdomain: web}\n\
             status: {podIPs: [{ip: 10.244.0.5}, {ip: 'fd00::5'}]}\n---\n\
             apiVersion: v1\nkind: Endpoints\nmetadata: {name: ext}\nsubsets:\n- addresses: [{ip: 10.0.0.1}]\n- addresses: [{ip: 10.0.0.2}]\n",
        )
        .pipeline()
        .unwrap();
        let objects = kube_objects(&p.loads[0].1.view.all());
        let slices: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "EndpointSlice")
            .collect();
        let web: Vec<&&Value> = slices
            .iter()
            .filter(|s| s["metadata"]["labels"][SERVICE_NAME_LABEL] == "web")
            .collect();
        assert_eq!(web.len(), 2, "{web:#?}");
        assert_eq!(web[0]["addressType"], "IPv4");
        assert_eq!(web[1]["addressType"], "IPv6");
        assert_eq!(web[1]["endpoints"][0]["addresses"], json!(["fd00::5"]));
        assert_eq!(web[1]["endpoints"][0]["hostname"], "web-0");
        let ext: BTreeSet<&str> = slices
            .iter()
            .filter(|s| s["metadata"]["labels"][SERVICE_NAME_LABEL] == "ext")
            .map(|s| s["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(ext.len(), 2, "{ext:?}");
        let svc = objects
            .iter()
            .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == "kubernetes")
            .unwrap();
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
    }
}
