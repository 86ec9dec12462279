//! Connecting to NATS with the options every service shares.

use std::path::PathBuf;

use crate::PlatformError;

/// Where and as whom to connect to NATS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsOptions {
    /// Server URL(s), e.g. `nats://127.0.0.1:4222` (comma-separated for a cluster).
    pub url: String,
    /// A `.creds` file (user JWT + NKey seed) for decentralised auth, if the server needs one.
    pub creds: Option<PathBuf>,
    /// The connection name shown by `nats server report connections`, e.g. `backtrack-directory`.
    pub name: String,
    /// TLS: the CA bundle (PEM) the server's certificate must chain to; setting it
    /// requires TLS.
    pub tls_ca: Option<PathBuf>,
    /// TLS client certificate and key (PEM), for servers that verify clients.
    pub tls_client: Option<(PathBuf, PathBuf)>,
}

/// Connects once; fails fast (no retry loop) if the server cannot be reached at start-up.
/// Once connected, the client reconnects by itself.
pub async fn connect(opts: &NatsOptions) -> Result<async_nats::Client, PlatformError> {
    let mut options = async_nats::ConnectOptions::new()
        .name(&opts.name)
        .event_callback(|event| async move { note_event(&event) });
    if let Some(creds) = &opts.creds {
        options = options.credentials_file(creds).await.map_err(|source| {
            PlatformError::NatsCredentials {
                path: creds.clone(),
                source,
            }
        })?;
    }
    if let Some(ca) = &opts.tls_ca {
        options = options.require_tls(true).add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &opts.tls_client {
        options = options
            .require_tls(true)
            .add_client_certificate(cert.clone(), key.clone());
    }
    // A cluster is given as a comma-separated list; the client fails over between them.
    let servers = opts
        .url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<async_nats::ServerAddr>()
                .map_err(|e| PlatformError::NatsConnect {
                    url: opts.url.clone(),
                    reason: format!("'{u}' is not a NATS URL: {e}"),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // A user and password in a URL (`nats://user:pass@host:4222`) log in; the client does
    // not take them from the server list by itself.
    if let Some(addr) = servers.iter().find(|a| a.username().is_some()) {
        options = options.user_and_password(
            addr.username().unwrap_or_default().to_string(),
            addr.password().unwrap_or_default().to_string(),
        );
    }
    options
        .connect(servers)
        .await
        .map_err(|source| PlatformError::NatsConnect {
            url: opts.url.clone(),
            reason: source.to_string(),
        })
}

/// Logs a client's connection event and counts it (`backtrack_nats_client_events_total`).
/// A slow consumer is the one to watch: the client dropped messages of a subscription
/// whose reader fell behind (an ordered consumer then restarts from the last one it saw).
fn note_event(event: &async_nats::Event) {
    use async_nats::Event;
    let name = match event {
        Event::Connected => "connected",
        Event::Disconnected => "disconnected",
        Event::LameDuckMode => "lame_duck",
        Event::Draining => "draining",
        Event::Closed => "closed",
        Event::SlowConsumer(_) => "slow_consumer",
        Event::ServerError(_) => "server_error",
        Event::ClientError(_) => "client_error",
    };
    crate::metrics::NATS_CLIENT_EVENTS.inc_by(&[("event", name)], 1);
    match event {
        Event::Connected | Event::Draining | Event::Closed => {
            tracing::info!(event = %event, "NATS connection");
        }
        _ => tracing::warn!(event = %event, "NATS connection"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_server_names_the_url() {
        // Bind and drop a listener to get a port that nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let url = format!("nats://127.0.0.1:{port}");
        let err = connect(&NatsOptions {
            tls_ca: None,
            tls_client: None,
            url: url.clone(),
            creds: None,
            name: "test".into(),
        })
        .await
        .expect_err("nothing listens there");
        let msg = err.to_string();
        assert!(msg.contains(&url), "{msg}");
        assert!(msg.contains("nats-server"), "{msg}");
    }

    #[tokio::test]
    async fn missing_creds_file_names_the_path() {
        let err = connect(&NatsOptions {
            tls_ca: None,
            tls_client: None,
            url: "nats://127.0.0.1:4222".into(),
            creds: Some("/nonexistent/backtrack.creds".into()),
            name: "test".into(),
        })
        .await
        .expect_err("no such file");
        assert!(err.to_string().contains("/nonexistent/backtrack.creds"));
    }
}
