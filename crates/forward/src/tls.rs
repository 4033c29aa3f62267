//! DNS over TLS to an upstream (RFC 7858): one connection per upstream,
//! kept open and shared by every query in flight (pipelined, RFC 7858
//! §3.4), answers matched to their queries by ID by one reader task.
//! A broken connection fails the queries waiting on it and the next query
//! opens a new one; a query that finds its reused connection closed under
//! it is retried once on a fresh connection.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::upstream::{frame, read_frame, with_id};
use crate::{ForwardError, matches_query, random_id};

/// The client configuration for every TLS upstream: the system's roots
/// plus the certificates of `ca_file` (PEM), with the ring provider.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, ForwardError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!("system certificates: {e}");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let ca_error = |source| ForwardError::CaFile {
            path: path.to_owned(),
            source,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(ca_error)?;
        if certs.is_empty() {
            return Err(ca_error(rustls_pki_types::pem::Error::NoItemsFound));
        }
        for cert in certs {
            roots.add(cert).map_err(|source| ForwardError::Tls {
                what: "the --upstream-ca certificate",
                source,
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| ForwardError::Tls {
            what: "the TLS versions",
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The connection to one TLS upstream, opened on first use.
pub(crate) struct TlsPipe {
    connector: TlsConnector,
    name: ServerName<'static>,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
}

#[derive(Default)]
struct Waiting {
    by_id: HashMap<[u8; 2], oneshot::Sender<Vec<u8>>>,
    closed: bool,
}

/// One open connection: a writer shared under a lock, and the queries
/// waiting for their answers from the reader task.
struct Conn {
    writer: tokio::sync::Mutex<WriteHalf<TlsStream<TcpStream>>>,
    waiting: Mutex<Waiting>,
}

fn aborted() -> io::Error {
    io::Error::from(io::ErrorKind::ConnectionAborted)
}

fn timed_out() -> io::Error {
    io::Error::from(io::ErrorKind::TimedOut)
}

impl Conn {
    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_closed(&self) -> bool {
        self.waiting().closed
    }

    /// Fails every waiting query and keeps new ones off this connection.
    fn close(&self) {
        let mut w = self.waiting();
        w.closed = true;
        w.by_id.clear();
    }

    async fn exchange(
        &self,
        query: &[u8],
        question: &[u8],
        deadline: Instant,
    ) -> io::Result<Vec<u8>> {
        let (id, answer) = {
            let mut w = self.waiting();
            if w.closed {
                return Err(aborted());
            }
            // IDs of queries in flight on one connection must differ.
            let mut id = random_id()?;
            while w.by_id.contains_key(&id) {
                id = random_id()?;
            }
            let (tx, rx) = oneshot::channel();
            w.by_id.insert(id, tx);
            (id, rx)
        };
        let _registered = Registered { conn: self, id };
        let message = frame(&with_id(query, id))?;
        let write = async {
            let mut writer = self.writer.lock().await;
            writer.write_all(&message).await?;
            writer.flush().await
        };
        match tokio::time::timeout_at(deadline, write).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                // A half-written frame leaves the stream unusable.
                self.close();
                return Err(aborted());
            }
        }
        let answer = tokio::time::timeout_at(deadline, answer)
            .await
            .map_err(|_| timed_out())?
            .map_err(|_| aborted())?;
        if matches_query(&answer, id, question) {
            Ok(answer)
        } else {
            Err(io::Error::from(io::ErrorKind::InvalidData))
        }
    }
}

/// Takes a query's ID off the waiting list however its exchange ends.
struct Registered<'a> {
    conn: &'a Conn,
    id: [u8; 2],
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.conn.waiting().by_id.remove(&self.id);
    }
}

/// Hands each answer to the query with its ID until the stream ends.
async fn read_answers(mut reader: ReadHalf<TlsStream<TcpStream>>, conn: Weak<Conn>) {
    loop {
        let answer = match read_frame(&mut reader).await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!("DNS over TLS connection ended: {e}");
                break;
            }
        };
        let Some(conn) = conn.upgrade() else { return };
        let Some(id) = answer.get(..2).and_then(|b| <[u8; 2]>::try_from(b).ok()) else {
            continue;
        };
        let waiter = conn.waiting().by_id.remove(&id);
        if let Some(tx) = waiter {
            let _ = tx.send(answer);
        }
    }
    if let Some(conn) = conn.upgrade() {
        conn.close();
    }
}

impl TlsPipe {
    pub(crate) fn new(config: Arc<ClientConfig>, name: ServerName<'static>) -> Self {
        Self {
            connector: TlsConnector::from(config),
            name,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// The open connection, or a new one (`true`: just opened).
    async fn connection(&self, addr: SocketAddr) -> io::Result<(Arc<Conn>, bool)> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok((Arc::clone(conn), false));
        }
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream = self.connector.connect(self.name.clone(), tcp).await?;
        let (reader, writer) = tokio::io::split(stream);
        let conn = Arc::new(Conn {
            writer: tokio::sync::Mutex::new(writer),
            waiting: Mutex::new(Waiting::default()),
        });
        tokio::spawn(read_answers(reader, Arc::downgrade(&conn)));
        *slot = Some(Arc::clone(&conn));
        Ok((conn, true))
    }

    pub(crate) async fn exchange(
        &self,
        addr: SocketAddr,
        query: &[u8],
        question: &[u8],
        timeout: Duration,
    ) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (conn, fresh) = tokio::time::timeout_at(deadline, self.connection(addr))
                .await
                .map_err(|_| timed_out())??;
            match conn.exchange(query, question, deadline).await {
                // The upstream closed an idle connection as we used it.
                Err(e)
                    if !fresh && attempts < 2 && e.kind() == io::ErrorKind::ConnectionAborted => {}
                result => return result,
            }
        }
    }
}
