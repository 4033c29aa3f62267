//! The HTTP side: accept loop, outages, routing, list, get, watch, discovery.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{Either, Full};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::resources::{MCS_GROUP, RESOURCES, Res, ResourceDef, Route, route};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Change, ChangeKind, Key, WatchMsg};
use crate::{OutageMode, RequestRecord, Shared};

type Resp = Response<Either<Full<Bytes>, ChannelBody>>;

/// Returned by the service to make hyper drop the connection unanswered.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("outage: connection dropped")
    }
}

impl std::error::Error for Dropped {}

/// A streamed response body fed by a channel (watch streams).
#[derive(Debug)]
pub(crate) struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// Serves until `shutdown` turns true.
pub(crate) async fn run(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let addr = listener.local_addr().expect("local address");
    let mut listener = Some(TcpListener::from_std(listener).expect("tokio listener"));
    tokio::spawn(bookmark_loop(shared.clone()));
    let mut changed = shared.outage_changed.subscribe();
    loop {
        let refuse = {
            let s = shared.lock();
            s.outage && s.outage_mode == OutageMode::Refuse
        };
        if refuse {
            listener = None;
        } else if listener.is_none() {
            listener = Some(rebind(addr).await);
        }
        let accept = async {
            match &listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = accept => {
                if let Ok((stream, _)) = accepted {
                    serve_connection(&shared, stream);
                }
            }
            _ = changed.changed() => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn rebind(addr: SocketAddr) -> TcpListener {
    for _ in 0..1000 {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("fake API: cannot bind {addr} again after the outage");
}

fn serve_connection(shared: &Arc<Shared>, stream: TcpStream) {
    let epoch = {
        let s = shared.lock();
        if s.outage && s.outage_mode != OutageMode::Unavailable {
            return; // dropping the stream closes it
        }
        s.outage_epoch
    };
    let _ = stream.set_nodelay(true);
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut changed = shared.outage_changed.subscribe();
        let svc_shared = shared.clone();
        let service = hyper::service::service_fn(move |req| handle(svc_shared.clone(), req));
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service);
        tokio::select! {
            _ = conn => {}
            () = cut(&shared, &mut changed, epoch) => {}
        }
    });
}

/// Resolves when an outage starts after the connection's `epoch`.
async fn cut(shared: &Shared, changed: &mut watch::Receiver<u64>, epoch: u64) {
    loop {
        if shared.lock().outage_epoch != epoch {
            return;
        }
        if changed.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

async fn bookmark_loop(shared: Arc<Shared>) {
    loop {
        let interval = shared.lock().bookmark_interval;
        match interval {
            Some(d) => {
                tokio::time::sleep(d).await;
                let mut s = shared.lock();
                if s.bookmark_interval.is_some() {
                    let rv = s.rv;
                    s.tell_watchers(|_| true, || WatchMsg::Bookmark(rv));
                }
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Resp, Dropped> {
    let header = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut record = RequestRecord {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or_default().to_string(),
        authorization: header(header::AUTHORIZATION),
        accept: header(header::ACCEPT),
        status: 0,
    };
    let delay = {
        let mut s = shared.lock();
        if s.outage {
            if s.outage_mode != OutageMode::Unavailable {
                return Err(Dropped);
            }
            let resp = status(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the server is currently unable to handle the request (fake outage)",
                None,
            );
            record.status = resp.status().as_u16();
            s.log.push(record);
            return Ok(resp);
        }
        s.response_delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let params = Params(
        form_urlencoded::parse(record.query.as_bytes())
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    );
    let resp = respond(
        &shared,
        &record.method,
        &record.path,
        &params,
        record.accept.as_deref(),
    );
    record.status = resp.status().as_u16();
    shared.lock().log.push(record);
    Ok(resp)
}

/// Decoded query parameters.
#[derive(Debug)]
struct Params(Vec<(String, String)>);

impl Params {
    /// The first non-empty value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn is_true(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }
}

fn respond(
    shared: &Arc<Shared>,
    method: &str,
    path: &str,
    params: &Params,
    accept: Option<&str>,
) -> Resp {
    let (route, forbidden) = {
        let s = shared.lock();
        let route = match route(path) {
            Route::Collection { res, .. } | Route::Object { res, .. } if !s.served(res) => {
                Route::NotFound
            }
            Route::Group(g) | Route::Resources { group: g, .. }
                if g == MCS_GROUP && !s.mcs_crds =>
            {
                Route::NotFound
            }
            r => r,
        };
        let forbidden = match &route {
            Route::Collection { res, .. } | Route::Object { res, .. } => s.forbidden.contains(res),
            _ => false,
        };
        (route, forbidden)
    };
    if route == Route::NotFound {
        return not_found();
    }
    if method != "GET" {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("the fake API server does not support {method}"),
            None,
        );
    }
    let meta_only = accept.is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let crds = shared.lock().mcs_crds;
    match route {
        Route::Version => json_response(StatusCode::OK, &version_info()),
        Route::Health => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Either::Left(Full::new(Bytes::from_static(b"ok"))))
            .expect("response"),
        Route::CoreVersions => json_response(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        ),
        Route::Groups => {
            let groups: Vec<Value> = group_versions(crds)
                .into_iter()
                .filter(|(g, _)| !g.is_empty())
                .map(|(g, vs)| api_group(g, &vs))
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            )
        }
        Route::Group(g) => match group_versions(crds).remove(g.as_str()) {
            Some(vs) if !g.is_empty() => {
                let mut doc = api_group(&g, &vs);
                doc["kind"] = "APIGroup".into();
                doc["apiVersion"] = "v1".into();
                json_response(StatusCode::OK, &doc)
            }
            _ => not_found(),
        },
        Route::Resources { group, version } => {
            let gv = if group.is_empty() {
                version.clone()
            } else {
                format!("{group}/{version}")
            };
            let resources: Vec<Value> = RESOURCES
                .iter()
                .filter(|d| d.group == group && d.version == version)
                .map(|d| {
                    json!({"name": d.plural, "singularName": d.kind.to_ascii_lowercase(),
                           "namespaced": d.namespaced, "kind": d.kind,
                           "verbs": ["get", "list", "watch"]})
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"kind": "APIResourceList", "apiVersion": "v1",
                        "groupVersion": gv, "resources": resources}),
            )
        }
        Route::Collection { res, ns } => {
            let verb = if params.is_true("watch") {
                "watch"
            } else {
                "list"
            };
            if forbidden {
                return forbidden_status(res, verb, ns.as_deref());
            }
            if verb == "watch" {
                start_watch(shared, res, ns, params, meta_only)
            } else {
                list(shared, res, ns.as_deref(), params, meta_only)
            }
        }
        Route::Object { res, ns, name } => {
            if forbidden {
                return forbidden_status(res, "get", ns.as_deref());
            }
            let key = (ns.unwrap_or_default(), name);
            let obj = shared.lock().objects[res].get(&key).cloned();
            match obj {
                Some(obj) => {
                    let mut out = Vec::new();
                    write_object(&mut out, &obj, false, meta_only);
                    bytes_response(StatusCode::OK, out)
                }
                None => {
                    let d = &RESOURCES[res];
                    status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        &format!("{} {:?} not found", d.plural, key.1),
                        Some(json!({"name": key.1, "group": d.group, "kind": d.plural})),
                    )
                }
            }
        }
        Route::NotFound => not_found(),
    }
}

/// Served API groups and their versions (the core group is `""`).
fn group_versions(crds: bool) -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut groups: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    for d in &RESOURCES {
        if d.crd && !crds {
            continue;
        }
        let vs = groups.entry(d.group).or_default();
        if !vs.contains(&d.version) {
            vs.push(d.version);
        }
    }
    groups
}

fn api_group(group: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs[0]})
}

fn version_info() -> Value {
    json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-svcnet-fakeapi",
           "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
           "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
           "platform": "linux/amd64"})
}

fn bytes_response(code: StatusCode, body: Vec<u8>) -> Resp {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Either::Left(Full::new(Bytes::from(body))))
        .expect("response")
}

fn json_response(code: StatusCode, body: &Value) -> Resp {
    bytes_response(code, serde_json::to_vec(body).expect("serialize JSON"))
}

fn status_value(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut v = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "code": code});
    if let Some(details) = details {
        v["details"] = details;
    }
    v
}

fn status(code: StatusCode, reason: &str, message: &str, details: Option<Value>) -> Resp {
    json_response(code, &status_value(code.as_u16(), reason, message, details))
}

fn not_found() -> Resp {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

fn bad_request(message: &str) -> Resp {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, None)
}

fn invalid(message: &str) -> Resp {
    status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message, None)
}

fn expired(message: &str) -> Resp {
    status(StatusCode::GONE, "Expired", message, None)
}

fn too_large(rv: u64) -> Resp {
    status(
        StatusCode::GATEWAY_TIMEOUT,
        "Timeout",
        &format!("Too large resource version: {rv}"),
        Some(json!({"causes": [{"reason": "ResourceVersionTooLarge",
                                "message": "Too large resource version"}],
                    "retryAfterSeconds": 1})),
    )
}

fn forbidden_status(res: Res, verb: &str, ns: Option<&str>) -> Resp {
    let d = &RESOURCES[res];
    let scope = match ns {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".to_string(),
    };
    status(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &format!(
            "{plural} is forbidden: User \"system:serviceaccount:kube-system:svcnet\" cannot {verb} \
             resource {plural:?} in API group {group:?} {scope}",
            plural = d.plural,
            group = d.group
        ),
        Some(json!({"kind": d.plural, "group": d.group})),
    )
}

const CONTINUE_TOO_OLD: &str = "The provided continue parameter is too old to display a consistent \
     list result. You can start a new list without the continue parameter, or use the continue \
     value from the response to start a new list at a later resource version.";

fn encode_token(rv: u64, key: &Key) -> String {
    let raw = format!("{rv}\0{}\0{}", key.0, key.1);
    let mut out = String::with_capacity(raw.len() * 2);
    for b in raw.bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn decode_token(token: &str) -> Option<(u64, Key)> {
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
        .collect();
    let raw = String::from_utf8(bytes?).ok()?;
    let mut parts = raw.split('\0');
    let rv = parts.next()?.parse().ok()?;
    let ns = parts.next()?.to_string();
    let name = parts.next()?.to_string();
    parts.next().is_none().then_some((rv, (ns, name)))
}

fn selectors(params: &Params) -> Result<(LabelSelector, FieldSelector), String> {
    let labels = LabelSelector::parse(params.get("labelSelector").unwrap_or_default())?;
    let fields = FieldSelector::parse(params.get("fieldSelector").unwrap_or_default())?;
    Ok((labels, fields))
}

fn list(shared: &Shared, res: Res, ns: Option<&str>, params: &Params, meta_only: bool) -> Resp {
    let (labels, fields) = match selectors(params) {
        Ok(s) => s,
        Err(e) => return bad_request(&e),
    };
    let limit = match params.get("limit").map(str::parse::<usize>) {
        None => None,
        Some(Ok(n)) => Some(n).filter(|&n| n > 0),
        Some(Err(_)) => return bad_request("invalid limit"),
    };
    let state = shared.lock();
    let limit = match (limit, state.page_limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let (rv, after) = if let Some(token) = params.get("continue") {
        let Some((rv, key)) = decode_token(token) else {
            return bad_request("continue key is not valid");
        };
        if rv < state.compacted {
            return expired(CONTINUE_TOO_OLD);
        }
        (rv, Some(key))
    } else {
        match params.get("resourceVersion") {
            None | Some("0") => (state.rv, None),
            Some(s) => {
                let Ok(x) = s.parse::<u64>() else {
                    return bad_request(&format!("invalid resource version {s:?}"));
                };
                if x > state.rv {
                    return too_large(x);
                }
                if params.get("resourceVersionMatch") == Some("Exact") {
                    if x < state.compacted {
                        return expired(&format!(
                            "too old resource version: {x} ({})",
                            state.compacted
                        ));
                    }
                    (x, None)
                } else {
                    (state.rv, None)
                }
            }
        }
    };
    let Some(items) = state.snapshot(res, rv, ns, after.as_ref()) else {
        return expired(CONTINUE_TOO_OLD);
    };
    drop(state);

    let mut matching = items
        .into_iter()
        .filter(|(_, o)| labels.matches(o) && fields.matches(o));
    let (page, rest): (Vec<_>, usize) = match limit {
        None => (matching.collect(), 0),
        Some(n) => {
            let page: Vec<_> = matching.by_ref().take(n).collect();
            (page, matching.count())
        }
    };
    let d = &RESOURCES[res];
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if rest > 0
        && let Some((last, _)) = page.last()
    {
        meta["continue"] = encode_token(rv, last).into();
        if labels.is_empty() && fields.is_empty() {
            meta["remainingItemCount"] = rest.into();
        }
    }
    let (api_version, kind) = if meta_only {
        (
            "meta.k8s.io/v1".to_string(),
            "PartialObjectMetadataList".to_string(),
        )
    } else {
        (d.api_version(), d.list_kind())
    };
    let mut out = Vec::with_capacity(256 + page.len() * 512);
    out.extend_from_slice(b"{\"apiVersion\":");
    serde_json::to_writer(&mut out, &api_version).expect("serialize JSON");
    out.extend_from_slice(b",\"kind\":");
    serde_json::to_writer(&mut out, &kind).expect("serialize JSON");
    out.extend_from_slice(b",\"metadata\":");
    serde_json::to_writer(&mut out, &meta).expect("serialize JSON");
    out.extend_from_slice(b",\"items\":[");
    for (i, (_, obj)) in page.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_object(&mut out, obj, !d.crd, meta_only);
    }
    out.extend_from_slice(b"]}");
    bytes_response(StatusCode::OK, out)
}

/// Writes an object; `strip_type` drops `apiVersion`/`kind` (list items of
/// built-in types); `meta_only` writes it as a `PartialObjectMetadata`.
fn write_object(out: &mut Vec<u8>, obj: &Value, strip_type: bool, meta_only: bool) {
    if meta_only {
        let partial = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                             "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({}))});
        serde_json::to_writer(out, &partial).expect("serialize JSON");
        return;
    }
    match obj {
        Value::Object(map) if strip_type => {
            out.push(b'{');
            let mut first = true;
            for (k, v) in map {
                if k == "apiVersion" || k == "kind" {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                serde_json::to_writer(&mut *out, k).expect("serialize JSON");
                out.push(b':');
                serde_json::to_writer(&mut *out, v).expect("serialize JSON");
            }
            out.push(b'}');
        }
        _ => serde_json::to_writer(out, obj).expect("serialize JSON"),
    }
}

/// What a watch sends before its live events.
#[derive(Debug)]
enum Initial {
    /// A synthetic ADDED for a current object.
    Added(Arc<Value>),
    /// A retained change after the requested resourceVersion.
    Change(Arc<Change>),
}

/// One open watch's filter and options.
#[derive(Debug)]
struct WatchCtx {
    res: Res,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    bookmarks: bool,
    meta_only: bool,
}

impl WatchCtx {
    fn def(&self) -> &'static ResourceDef {
        &RESOURCES[self.res]
    }

    fn selects(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    fn write_event(&self, out: &mut Vec<u8>, kind: &str, obj: &Value) {
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        write_object(out, obj, false, self.meta_only);
        out.extend_from_slice(b"}\n");
    }

    fn write_change(&self, out: &mut Vec<u8>, c: &Change) {
        if self.ns.as_ref().is_some_and(|ns| *ns != c.key.0) {
            return;
        }
        let now = self.selects(&c.obj);
        let before = c.prev.as_ref().is_some_and(|p| self.selects(p));
        match (c.kind, before, now) {
            (ChangeKind::Added, _, true) | (ChangeKind::Modified, false, true) => {
                self.write_event(out, "ADDED", &c.obj);
            }
            (ChangeKind::Modified, true, true) => self.write_event(out, "MODIFIED", &c.obj),
            (ChangeKind::Modified, true, false) => {
                // Moved out of the selector: the real server sends the old
                // object stamped with the change's resourceVersion.
                let mut old = c.prev.as_deref().cloned().unwrap_or_default();
                old["metadata"]["resourceVersion"] = Value::String(c.rv.to_string());
                self.write_event(out, "DELETED", &old);
            }
            (ChangeKind::Deleted, true, _) => self.write_event(out, "DELETED", &c.obj),
            _ => {}
        }
    }

    fn write_bookmark(&self, out: &mut Vec<u8>, rv: u64, initial_end: bool) {
        let d = self.def();
        let (api_version, kind) = if self.meta_only {
            ("meta.k8s.io/v1".to_string(), "PartialObjectMetadata")
        } else {
            (d.api_version(), d.kind)
        };
        let mut metadata = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let event = json!({"type": "BOOKMARK",
                           "object": {"kind": kind, "apiVersion": api_version, "metadata": metadata}});
        serde_json::to_writer(&mut *out, &event).expect("serialize JSON");
        out.push(b'\n');
    }
}

fn write_expired(out: &mut Vec<u8>, message: &str) {
    let event = json!({"type": "ERROR", "object": status_value(410, "Expired", message, None)});
    serde_json::to_writer(&mut *out, &event).expect("serialize JSON");
    out.push(b'\n');
}

fn start_watch(
    shared: &Arc<Shared>,
    res: Res,
    ns: Option<String>,
    params: &Params,
    meta_only: bool,
) -> Resp {
    let (labels, fields) = match selectors(params) {
        Ok(s) => s,
        Err(e) => return bad_request(&e),
    };
    let send_initial = params.is_true("sendInitialEvents");
    let bookmarks = params.is_true("allowWatchBookmarks");
    let version_match = params.get("resourceVersionMatch");
    if send_initial && !bookmarks {
        return invalid(
            "allowWatchBookmarks: Required value: sendInitialEvents requires setting allowWatchBookmarks to true",
        );
    }
    if send_initial && version_match != Some("NotOlderThan") {
        return invalid(
            "resourceVersionMatch: Unsupported value: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        );
    }
    if !send_initial && version_match.is_some() {
        return invalid(
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        );
    }
    let timeout = match params.get("timeoutSeconds").map(str::parse::<u64>) {
        None => Duration::from_secs(1800),
        Some(Ok(s)) => Duration::from_secs(s),
        Some(Err(_)) => return bad_request("invalid timeoutSeconds"),
    };
    let from = match params.get("resourceVersion") {
        None | Some("0") => None,
        Some(s) => match s.parse::<u64>() {
            Ok(x) => Some(x),
            Err(_) => return bad_request(&format!("invalid resource version {s:?}")),
        },
    };

    let mut state = shared.lock();
    let timeout = state
        .watch_timeout_cap
        .map_or(timeout, |cap| timeout.min(cap));
    let mut initial = Vec::new();
    let mut end_bookmark = None;
    let mut gone = None;
    match from {
        Some(x) if !send_initial => {
            if x < state.compacted {
                gone = Some(format!(
                    "too old resource version: {x} ({})",
                    state.compacted
                ));
            } else {
                initial.extend(state.changes_since(res, x).into_iter().map(Initial::Change));
            }
        }
        _ => {
            let rv = state.rv;
            let now = state
                .snapshot(res, rv, ns.as_deref(), None)
                .unwrap_or_default();
            initial.extend(now.into_iter().map(|(_, o)| Initial::Added(o)));
            if send_initial {
                end_bookmark = Some(rv);
            }
        }
    }
    let registration = gone.is_none().then(|| state.register_watcher(res));
    drop(state);

    let ctx = WatchCtx {
        res,
        ns,
        labels,
        fields,
        bookmarks,
        meta_only,
    };
    let (tx, rx) = mpsc::channel(16);
    let shared = shared.clone();
    tokio::spawn(async move {
        let id = registration.as_ref().map(|(id, _)| *id);
        pump(
            ctx,
            initial,
            end_bookmark,
            gone,
            registration.map(|(_, rx)| rx),
            tx,
            timeout,
        )
        .await;
        if let Some(id) = id {
            shared.lock().unregister_watcher(id);
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Either::Right(ChannelBody { rx }))
        .expect("response")
}

const CHUNK: usize = 64 * 1024;

/// Sends what `buf` holds; false once the client is gone.
async fn flush(tx: &mpsc::Sender<Bytes>, buf: &mut Vec<u8>) -> bool {
    if buf.is_empty() {
        return !tx.is_closed();
    }
    tx.send(Bytes::from(std::mem::take(buf))).await.is_ok()
}

/// Streams one watch until its timeout, its end, or the client leaving.
async fn pump(
    ctx: WatchCtx,
    initial: Vec<Initial>,
    end_bookmark: Option<u64>,
    gone: Option<String>,
    rx: Option<mpsc::UnboundedReceiver<WatchMsg>>,
    tx: mpsc::Sender<Bytes>,
    timeout: Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = Vec::new();
    for item in initial {
        match item {
            Initial::Added(obj) => {
                if ctx.selects(&obj) {
                    ctx.write_event(&mut buf, "ADDED", &obj);
                }
            }
            Initial::Change(c) => ctx.write_change(&mut buf, &c),
        }
        if buf.len() >= CHUNK && !flush(&tx, &mut buf).await {
            return;
        }
    }
    if let Some(rv) = end_bookmark {
        ctx.write_bookmark(&mut buf, rv, true);
    }
    if let Some(message) = gone {
        write_expired(&mut buf, &message);
        flush(&tx, &mut buf).await;
        return;
    }
    if !flush(&tx, &mut buf).await {
        return;
    }
    let Some(mut rx) = rx else { return };
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            () = tokio::time::sleep_until(deadline) => return,
            () = tx.closed() => return,
        };
        let mut next = msg;
        let mut end = next.is_none();
        while let Some(msg) = next {
            match msg {
                WatchMsg::Change(c) => ctx.write_change(&mut buf, &c),
                WatchMsg::Bookmark(rv) => {
                    if ctx.bookmarks {
                        ctx.write_bookmark(&mut buf, rv, false);
                    }
                }
                WatchMsg::Expire => {
                    write_expired(&mut buf, "too old resource version");
                    end = true;
                    break;
                }
                WatchMsg::Close => {
                    end = true;
                    break;
                }
            }
            if buf.len() >= CHUNK {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !flush(&tx, &mut buf).await || end {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let key = ("kube-system".to_string(), "web-0".to_string());
        let t = encode_token(123, &key);
        assert_eq!(decode_token(&t), Some((123, key)));
        assert_eq!(decode_token("zz"), None);
        assert_eq!(decode_token("abc"), None);
        assert_eq!(decode_token(""), None);
    }
}
