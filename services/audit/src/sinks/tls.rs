//! Connections to receivers: plain TCP or TLS (rustls, ring provider), behind one
//! [`Connection`] type, plus the `host:port` parsing both transports share.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_rustls::TlsConnector;

use super::TlsConfig;

/// Splits `host:port` (or `[v6]:port`) into its host (brackets removed) and port.
pub(crate) fn split_host_port(address: &str) -> Result<(String, u16), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("'{address}' has no port; expected host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("'{address}' has no valid port; expected host:port"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || port == 0 {
        return Err(format!("'{address}' is not host:port"));
    }
    Ok((host.to_string(), port))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

/// A rustls client config from the sink's TLS settings; errors say which file is wrong.
pub(crate) fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
    } else {
        let mut roots = RootCertStore::empty();
        match &tls.ca_file {
            Some(path) => {
                for cert in read_certs(path, "ca_file")? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
                if roots.is_empty() {
                    return Err(
                        "no ca_file given and the system trust store is empty; set ca_file".into(),
                    );
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "cert_file")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("key_file {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("cert_file / key_file: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("cert_file and key_file go together".into()),
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &Path, field: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{field} {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{field} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{field} {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// How a transport reaches its receiver.
#[derive(Clone)]
pub(crate) struct Dialer {
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
}

impl Dialer {
    pub(crate) fn new(
        host: String,
        port: u16,
        tls: Option<&TlsConfig>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let tls = match tls {
            Some(tls) => {
                let config = client_config(tls)?;
                let name = tls.server_name.clone().unwrap_or_else(|| host.clone());
                let name = ServerName::try_from(name.clone())
                    .map_err(|_| format!("'{name}' is not a valid TLS server name"))?;
                Some((TlsConnector::from(config), name))
            }
            None => None,
        };
        Ok(Self {
            host,
            port,
            tls,
            timeout,
        })
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Connects (and handshakes) within the timeout.
    pub(crate) async fn connect(&self) -> io::Result<Connection> {
        let attempt = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
            tcp.set_nodelay(true)?;
            match &self.tls {
                None => Ok(Connection::Plain(tcp)),
                Some((connector, name)) => {
                    let stream = connector.connect(name.clone(), tcp).await?;
                    Ok(Connection::Tls(Box::new(stream)))
                }
            }
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.is_tls() { "tls" } else { "tcp" },
            self.host,
            self.port
        )
    }
}

/// A plain or TLS connection to a receiver.
pub(crate) enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection {
    /// Whether the receiver has not closed or reset the connection, judged without waiting:
    /// a syslog receiver never sends anything, so readable means closed (EOF) or reset.
    pub(crate) fn is_open(&mut self) -> bool {
        let mut scratch = [0u8; 512];
        loop {
            match self.read(&mut scratch).now_or_never() {
                None => return true,
                Some(Ok(0)) | Some(Err(_)) => return false,
                // Unexpected bytes from the receiver: ignore them and look again.
                Some(Ok(_)) => continue,
            }
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_flush(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// `insecure_skip_verify`: any certificate is accepted, but handshake signatures are still
/// checked so the session keys belong to whoever holds the presented certificate.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
