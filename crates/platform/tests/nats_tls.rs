//! `connect` over TLS to a real nats-server that requires it: with the CA bundle it
//! connects; without it, or trusting another CA, it fails naming the URL.
#![allow(clippy::unwrap_used)]

use backtrack_platform::nats::{connect, NatsOptions};
use std::time::Duration;

use backtrack_test_support::{eventually, free_port, nats_server_binary};

fn options(url: String, ca: Option<std::path::PathBuf>) -> NatsOptions {
    NatsOptions {
        url,
        creds: None,
        name: "tls-test".into(),
        tls_ca: ca,
        tls_client: None,
    }
}

/// A nats-server started from `config` (its own readiness is up to the test: the
/// fixture's probe cannot log in or speak TLS).
fn spawn_nats(dir: &std::path::Path, config: String) -> std::process::Child {
    let path = dir.join("server.conf");
    std::fs::write(&path, config).unwrap();
    std::process::Command::new(nats_server_binary())
        .arg("-c")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn connects_over_tls_only_when_it_trusts_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_file = dir.path().join("server.pem");
    let key_file = dir.path().join("server.key");
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key_pair.serialize_pem()).unwrap();
    // The fixture's readiness probe speaks plain NATS, so this server is started here.
    let port = free_port();
    let mut server = spawn_nats(
        dir.path(),
        format!(
            "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: \"{}\" }}\ntls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
            dir.path().join("store").display(),
            cert_file.display(),
            key_file.display()
        ),
    );
    let url = format!("tls://127.0.0.1:{port}");
    let trusted = options(url.clone(), Some(cert_file.clone()));
    let client = eventually(
        "nats-server to answer over TLS",
        Duration::from_secs(20),
        || {
            let trusted = &trusted;
            async move { connect(trusted).await.ok() }
        },
    )
    .await;
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            let _ = server.kill();
            panic!("{e}");
        }
    };
    let account = async_nats::jetstream::new(client).query_account().await;
    assert!(account.is_ok(), "{account:?}");

    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other_ca = dir.path().join("other.pem");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let refused = connect(&options(url.clone(), Some(other_ca))).await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    let plain = connect(&options(url.replace("tls://", "nats://"), None)).await;
    let _ = server.kill();
    let _ = server.wait();
    assert!(message.contains(&url), "{message}");
    assert!(
        plain.is_err(),
        "a plain connection to a TLS-only server must fail"
    );
}

/// A user and password in the URL log in (as the Kubernetes manifests pass them); a wrong
/// password is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_and_password_in_the_url_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = spawn_nats(
        dir.path(),
        format!(
            "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: \"{}\" }}\nauthorization {{ users: [ {{ user: backtrack, password: s3cretpass }} ] }}\n",
            dir.path().join("store").display()
        ),
    );
    let good = options(
        format!("nats://backtrack:s3cretpass@127.0.0.1:{port}"),
        None,
    );
    let client = eventually(
        "nats-server to accept the login",
        Duration::from_secs(20),
        || {
            let good = &good;
            async move { connect(good).await.ok() }
        },
    )
    .await;
    let bad = connect(&options(
        format!("nats://backtrack:wrong@127.0.0.1:{port}"),
        None,
    ))
    .await;
    let account = match &client {
        Ok(client) => Some(
            async_nats::jetstream::new(client.clone())
                .query_account()
                .await
                .is_ok(),
        ),
        Err(_) => None,
    };
    let _ = server.kill();
    let _ = server.wait();
    assert!(client.is_ok(), "{:?}", client.err());
    assert_eq!(account, Some(true));
    assert!(bad.is_err(), "a wrong password must be refused");
}
