//! DNS over TLS to an upstream (RFC 7858): one connection per upstream,
//! kept open and shared by every query in flight (pipelined, RFC 7858
//! §3.4), answers matched to their queries by ID by one reader task.
//! A broken connection fails the queries waiting on it and the next query
//! opens a new one; a query that finds its reused connection closed under
//! it is retried once on a fresh connection. A connection closed or dropped
//! (the forwarder replaced on reload) stops its reader task and lets go of
//! its socket at once.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
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

/// One open connection: a writer shared under a lock (`None` once
/// closed), the queries waiting for their answers from the reader task,
/// and that task, stopped when the connection closes or goes away (it holds
/// the read half, so the socket lives as long as it runs).
struct Conn {
    writer: tokio::sync::Mutex<Option<WriteHalf<TlsStream<TcpStream>>>>,
    waiting: Mutex<Waiting>,
    reader: OnceLock<AbortHandle>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.get() {
            reader.abort();
        }
    }
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

    /// Fails every waiting query, keeps new ones off this connection, stops
    /// its reader and drops the write half (unless a write holds it: then
    /// it goes with the connection), which closes the socket.
    fn close(&self) {
        {
            let mut w = self.waiting();
            w.closed = true;
            w.by_id.clear();
        }
        if let Some(reader) = self.reader.get() {
            reader.abort();
        }
        if let Ok(mut writer) = self.writer.try_lock() {
            writer.take();
        }
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
            let writer = writer.as_mut().ok_or_else(aborted)?;
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
            writer: tokio::sync::Mutex::new(Some(writer)),
            waiting: Mutex::new(Waiting::default()),
            reader: OnceLock::new(),
        });
        let task = tokio::spawn(read_answers(reader, Arc::downgrade(&conn)));
        // Set once, here, before anyone else can see the connection.
        let _ = conn.reader.set(task.abort_handle());
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::PrivateKeyDer;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;
    use tokio_rustls::TlsAcceptor;

    /// A self-signed certificate for 127.0.0.1 (valid for a century), and
    /// its key, made for these tests.
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBtTCCAVygAwIBAgIUYl5Z3xtbYOZlhhAFPvE7cZjahw0wCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTc3ZjbmV0IGZvcndhcmQgdGVzdDAgFw0yNjExMjMwMTI0MDFa
GA8yMTI2MTAzMDAxMjQwMVowHjEcMBoGA1UEAwwTc3ZjbmV0IGZvcndhcmQgdGVz
dDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABPysO41gRHTw12+NJD0qJUW4P6tB
i+CC87VoSoS4ksLq/hzrAL+xO2vp4oF6QTLN2UTNbp71jjQD5L/UjCxpoYmjdjB0
MB0GA1UdDgQWBBQkQjqKeMV6GM+F+g6m0qHeOePjgjAfBgNVHSMEGDAWgBQkQjqK
eMV6GM+F+g6m0qHeOePjgjAPBgNVHREECDAGhwR/AAABMAwGA1UdEwEB/wQCMAAw
EwYDVR0lBAwwCgYIKwYBBQUHAwEwCgYIKoZIzj0EAwIDRwAwRAIgCN/6LwqsZ6wa
DDjF13gCjUfrwVqxxCGTkV4uuXqdJosCIBONy4quA+jyTuhwWfFwoVUqK7pqnpe9
ksJgmW6uuAKp
-----END CERTIFICATE-----
";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKqMwbjDaqzdju4qd
PJL8x52Tn5f1WtJw/EPzvwOpLk6hRANCAAT8rDuNYER08NdvjSQ9KiVFuD+rQYvg
gvO1aEqEuJLC6v4c6wC/sTtr6eKBekEyzdlEzW6e9Y40A+S/1IwsaaGJ
-----END PRIVATE KEY-----
";

    /// A DNS-over-TLS server on loopback that echoes each query as its
    /// answer and reports on the channel when a client's connection ends.
    async fn dot_server() -> (SocketAddr, mpsc::UnboundedReceiver<()>) {
        let cert = CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(KEY.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ended, ends) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, ended) = (acceptor.clone(), ended.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    while let Ok(mut message) = read_frame(&mut tls).await {
                        message[2] |= 0x80;
                        let reply = frame(&message).unwrap();
                        if tls.write_all(&reply).await.is_err() || tls.flush().await.is_err() {
                            break;
                        }
                    }
                    let _ = ended.send(());
                });
            }
        });
        (addr, ends)
    }

    fn pipe() -> TlsPipe {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        TlsPipe::new(Arc::new(config), name)
    }

    const QUERY: [u8; 29] = [
        0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c',
        b'o', b'm', 0, 0, 1, 0, 1,
    ];

    async fn ended(ends: &mut mpsc::UnboundedReceiver<()>) -> bool {
        tokio::time::timeout(Duration::from_secs(5), ends.recv())
            .await
            .is_ok_and(|e| e.is_some())
    }

    #[tokio::test]
    async fn dropping_the_pipe_closes_its_connection() {
        let (addr, mut ends) = dot_server().await;
        let pipe = pipe();
        let timeout = Duration::from_secs(5);
        let answer = pipe
            .exchange(addr, &QUERY, &QUERY[12..], timeout)
            .await
            .unwrap();
        assert_eq!(answer[12..], QUERY[12..]);
        drop(pipe);
        assert!(
            ended(&mut ends).await,
            "the upstream saw the connection end"
        );
    }

    #[tokio::test]
    async fn closing_a_connection_closes_its_socket() {
        let (addr, mut ends) = dot_server().await;
        let pipe = pipe();
        let (conn, fresh) = pipe.connection(addr).await.unwrap();
        assert!(fresh);
        conn.close();
        assert!(
            ended(&mut ends).await,
            "the upstream saw the connection end"
        );
        // The pipe, still holding it, opens a new one for the next query.
        let answer = pipe
            .exchange(addr, &QUERY, &QUERY[12..], Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(answer[12..], QUERY[12..]);
        drop(conn);
    }
}
