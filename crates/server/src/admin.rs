//! The admin listener (`--admin`): `/health` (liveness) and `/ready`
//! (readiness: the first complete state is being served). A deliberately
//! small HTTP/1.1 responder: one request per connection, nothing on the DNS
//! path depends on it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What `/ready` reports, kept current by the index thread.
#[derive(Debug, Default)]
pub struct Status {
    inner: Mutex<StatusInner>,
}

#[derive(Debug, Default, Clone)]
struct StatusInner {
    ready: bool,
    /// Why not ready / what is degraded, per cluster: `(cluster, words)`.
    detail: Vec<(String, String)>,
    generation: u64,
}

impl Status {
    /// Records readiness and the details to show.
    pub fn set(&self, ready: bool, generation: u64, detail: Vec<(String, String)>) {
        let mut s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        *s = StatusInner {
            ready,
            detail,
            generation,
        };
    }

    /// Whether `/ready` answers 200.
    pub fn is_ready(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ready
    }

    fn json(&self) -> (bool, String) {
        let s = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut body = format!(
            "{{\"ready\":{},\"generation\":{},\"clusters\":{{",
            s.ready, s.generation
        );
        for (i, (cluster, words)) in s.detail.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(body, "{sep}\"{}\":\"{}\"", escape(cluster), escape(words));
        }
        body.push_str("}}\n");
        (s.ready, body)
    }
}

fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if c.is_control() => vec![' '],
            c => vec![c],
        })
        .collect()
}

/// Binds the admin listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `/health` and `/ready` until the runtime stops.
pub async fn serve(listener: TcpListener, status: Arc<Status>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let status = Arc::clone(&status);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await;
            let Ok(Ok(n)) = read else { return };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (code, body) = match path {
                "/health" | "/healthz" => ("200 OK", "ok\n".to_owned()),
                "/ready" | "/readyz" => match status.json() {
                    (true, body) => ("200 OK", body),
                    (false, body) => ("503 Service Unavailable", body),
                },
                _ => ("404 Not Found", "not found\n".to_owned()),
            };
            let kind = if body.starts_with('{') {
                "application/json"
            } else {
                "text/plain"
            };
            let head = format!(
                "HTTP/1.1 {code}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
        });
    }
}
