//! Microsoft Graph's own JSON through the real binary: response pages imported as Graph
//! returns them, links given as Graph gives them (expanded, bound), kinds from
//! `@odata.type`, and create / update documents read from files.
#![allow(clippy::unwrap_used)]

use backtrack_e2e::{last_sequence, Backtrack};
use backtrack_test_support::NatsServer;
use serde_json::{json, Value};

/// One example object of Graph's docs, from `shared/fixtures/graph`.
fn graph_fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/graph")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn graph_response_bodies_import_as_graph_returns_them() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "g"]).unwrap();
    let write = |name: &str, value: &Value| {
        let file = b.data().join(name);
        std::fs::write(&file, serde_json::to_string_pretty(value).unwrap()).unwrap();
        file.to_str().unwrap().to_string()
    };
    // `dir import --tenant g FILE [--kind KIND]`: its summary, or its error when it fails.
    let import = |file: &str, kind: Option<&str>| -> Result<Value, String> {
        let mut args = vec!["-o", "json", "dir", "import", "--tenant", "g", file];
        args.extend(kind.iter().flat_map(|k| ["--kind", *k]));
        let out = b.cli(&args);
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };
    let user = graph_fixture("user");
    let user_id = user["id"].as_str().unwrap().to_string();
    let mut second = user.clone();
    let second_id = "5b7f1c5e-0c1a-4c57-9f43-0f6f4bb1d0b2";
    second["id"] = json!(second_id);
    second["userPrincipalName"] = json!("second@contoso.com");
    // A page of `GET /users` as Graph returns it: no kind on the objects.
    let users = write(
        "users.json",
        &json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
            "value": [user, second],
            "@odata.nextLink": "https://graph.microsoft.com/v1.0/users?$skiptoken=X",
        }),
    );
    let before = last_sequence(&b).unwrap();
    let err = import(&users, None).unwrap_err();
    assert!(
        err.contains("object 1 names no kind") && err.contains("--kind"),
        "{err}"
    );
    assert_eq!(
        last_sequence(&b).unwrap(),
        before,
        "nothing may be imported"
    );
    let summary = import(&users, Some("user")).unwrap();
    assert_eq!(summary["created"], 2, "{summary}");
    let adele = b.json(&["dir", "get", "--tenant", "g", &user_id]).unwrap();
    assert_eq!(adele["jobTitle"], "Retail Manager");

    // Two pages one after another, the kinds in `@odata.type`; a group with its members
    // expanded (`$expand=members`) and an owner bound as Graph's create requests bind one.
    let mut group = graph_fixture("group");
    let group_id = group["id"].as_str().unwrap().to_string();
    group["@odata.type"] = json!("#microsoft.graph.group");
    group["members"] = json!([{"@odata.type": "#microsoft.graph.user", "id": user_id}]);
    group["owners@odata.bind"] = json!([format!(
        "https://graph.microsoft.com/v1.0/users/{second_id}"
    )]);
    let locations =
        json!({"value": [graph_fixture("ipNamedLocation"), graph_fixture("countryNamedLocation")]});
    let file = b.data().join("mixed.json");
    let pages = [json!({"value": [group]}), locations];
    let text: Vec<String> = pages
        .iter()
        .map(|p| serde_json::to_string_pretty(p).unwrap())
        .collect();
    std::fs::write(&file, text.join("\n")).unwrap();
    let summary = import(file.to_str().unwrap(), None).unwrap();
    assert_eq!(
        (summary["created"].as_u64(), summary["rejected"].as_u64()),
        (Some(3), Some(0)),
        "{summary}"
    );
    let got = b.json(&["dir", "get", "--tenant", "g", &group_id]).unwrap();
    assert_eq!(got["@kind"], "group");
    assert_eq!(got["@links"]["members"], json!([user_id]), "{got}");
    assert_eq!(got["@links"]["owners"], json!([second_id]), "{got}");
    assert!(
        got.get("members").is_none() && got.get("owners@odata.bind").is_none(),
        "{got}"
    );
    let listed = b
        .json(&["dir", "list", "--tenant", "g", "--kind", "namedLocation"])
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

    // `dir update --json` takes a Graph PATCH body: null removes an attribute.
    let update = |name: &str, doc: Value| {
        let file = format!("@{}", write(name, &doc));
        b.cli(&["dir", "update", "--tenant", "g", &user_id, "--json", &file])
    };
    let out = update(
        "patch.json",
        json!({"id": user_id, "jobTitle": null, "department": "Sales"}),
    );
    let patched: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(patched.get("jobTitle").is_none(), "{patched}");
    assert_eq!(patched["department"], "Sales", "{patched}");
    let out = update("links.json", json!({"@links": {"manager": [second_id]}}));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("link add"), "{err}");

    // `dir create --json @FILE` takes the same document; the kind may come from it.
    let mut bound = json!({
        "@odata.type": "#microsoft.graph.group",
        "displayName": "Bound",
        "mailEnabled": false,
        "mailNickname": "bound",
        "securityEnabled": true,
        "members@odata.bind": [format!("https://graph.microsoft.com/v1.0/directoryObjects/{second_id}")],
    });
    let created = b
        .json(&[
            "dir",
            "create",
            "--tenant",
            "g",
            "--json",
            &format!("@{}", write("bound.json", &bound)),
        ])
        .unwrap();
    assert_eq!(created["@kind"], "group", "{created}");
    assert_eq!(
        created["@links"]["members"],
        json!([second_id]),
        "{created}"
    );
    bound["@odata.type"] = json!("#microsoft.graph.device");
    let out = b.cli(&[
        "dir",
        "create",
        "--tenant",
        "g",
        "--json",
        &format!("@{}", write("device.json", &bound)),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--kind"), "{err}");

    // A kind given for the file is checked against the object's own type; a delta page's
    // removal is no object.
    let mut other = graph_fixture("group");
    other["id"] = json!("5b7f1c5e-0c1a-4c57-9f43-0f6f4bb1d0c3");
    other["@odata.type"] = json!("#microsoft.graph.group");
    let wrong = write("wrong.json", &json!([other]));
    let out = b.cli(&[
        "-o", "json", "dir", "import", "--tenant", "g", &wrong, "--kind", "user",
    ]);
    // An import that rejected objects fails after its summary.
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 of 1 objects were rejected"), "{err}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rejected"], 1, "{summary}");
    let message = summary["problems"][0]["message"].as_str().unwrap();
    assert!(message.contains("#microsoft.graph.user"), "{message}");
    let before = last_sequence(&b).unwrap();
    let delta = write("delta.json", &graph_fixture("user-delta-page"));
    let err = import(&delta, Some("user")).unwrap_err();
    assert!(err.contains("@removed"), "{err}");
    assert_eq!(
        last_sequence(&b).unwrap(),
        before,
        "nothing may be imported"
    );
}
