//! A change that changes nothing says so: through the CLI (an administrator adding a
//! member who already is one) and through the gRPC response headers (a client retrying a
//! mutation id), and either way the log stays as it was.
#![allow(clippy::unwrap_used)]

use backtrack_directory::api::{EVENTS_HEADER, OUTCOME_HEADER};
use backtrack_e2e::{id, last_sequence, Backtrack};
use backtrack_proto::v1;
use backtrack_proto::v1::directory_service_client::DirectoryServiceClient;
use backtrack_test_support::NatsServer;

/// Runs the CLI with table output; returns (first line of stdout, stderr), failing the test if it fails.
fn run(b: &Backtrack, args: &[&str]) -> (String, String) {
    let out = b.cli(&[&["-o", "table"], args].concat());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{args:?}: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    (stdout.lines().next().unwrap_or("").to_string(), stderr)
}

/// A running Backtrack with tenant `c` holding one user, and that user's id.
async fn tenant_with_a_user() -> (NatsServer, Backtrack, String) {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "c"]).unwrap();
    let user = b
        .create(
            "c",
            "user",
            &["displayName=U", "userPrincipalName=u@c.test"],
        )
        .unwrap();
    (nats, b, id(&user))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_says_when_a_change_changed_nothing() {
    let (_nats, b, user) = tenant_with_a_user().await;
    let group = id(&b.create("c", "group", &["displayName=G"]).unwrap());
    let before = last_sequence(&b).unwrap();

    let update = ["dir", "update", "--tenant", "c", &user, "--set"];
    let (head, _) = run(&b, &[&update[..], &["jobTitle=Chef"]].concat());
    assert!(head.starts_with("updated user"), "{head}");
    let (head, stderr) = run(&b, &[&update[..], &["jobTitle=Chef"]].concat());
    assert!(head.starts_with("unchanged user"), "{head}");
    assert!(stderr.contains("already has these values"), "{stderr}");

    let link = |verb: &str| {
        run(
            &b,
            &[
                "dir",
                "link",
                verb,
                "--tenant",
                "c",
                "--relation",
                "members",
                &group,
                &user,
            ],
        )
    };
    assert!(link("add").0.starts_with("linked group"));
    let (head, stderr) = link("add");
    assert!(head.starts_with("unchanged group"), "{head}");
    assert!(stderr.contains("already links to every target"), "{stderr}");
    assert!(link("remove").0.starts_with("unlinked group"));
    let (head, stderr) = link("remove");
    assert!(head.starts_with("unchanged group"), "{head}");
    assert!(stderr.contains("links to none of the targets"), "{stderr}");

    // One update, one link added, one removed: the three no-ops stored nothing.
    assert_eq!(last_sequence(&b).unwrap(), before + 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn change_responses_say_what_the_call_stored() {
    let (_nats, b, user) = tenant_with_a_user().await;
    let address = format!("http://127.0.0.1:{}", b.grpc_port);
    let client = DirectoryServiceClient::connect(address).await.unwrap();
    let token = b.token().unwrap();
    let update = |mutation_id: &str, title: &str| {
        let mut request = tonic::Request::new(v1::UpdateObjectRequest {
            tenant: "c".into(),
            id: user.clone(),
            set_json: format!(r#"{{"jobTitle": "{title}"}}"#),
            unset: vec![],
            mutation_id: mutation_id.into(),
        });
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let mut client = client.clone();
        async move {
            let response = client.update_object(request).await.unwrap();
            let header = |name| {
                response
                    .metadata()
                    .get(name)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string()
            };
            let attributes: serde_json::Value =
                serde_json::from_str(&response.get_ref().attributes_json).unwrap();
            (
                header(OUTCOME_HEADER),
                header(EVENTS_HEADER),
                attributes["jobTitle"].clone(),
            )
        }
    };
    let (outcome, events, title) = update("m-1", "Chef").await;
    assert_eq!((outcome.as_str(), events.as_str()), ("changed", "1"));
    assert_eq!(title, "Chef");
    let before = last_sequence(&b).unwrap();
    // The same mutation id again, even with another value: the first call's result.
    let (outcome, events, title) = update("m-1", "Cook").await;
    assert_eq!(
        (outcome.as_str(), events.as_str()),
        ("already-applied", "0")
    );
    assert_eq!(title, "Chef");
    // A new mutation that asks for what is already there.
    let (outcome, events, _) = update("m-2", "Chef").await;
    assert_eq!((outcome.as_str(), events.as_str()), ("unchanged", "0"));
    assert_eq!(last_sequence(&b).unwrap(), before);
}
