//! `backtrack status`.

use backtrack_proto::v1;
use serde_json::json;

use crate::args::{GlobalArgs, OutputFormat};
use crate::client::connect;
use crate::output::outln;
use crate::output::{print_json, table};

pub async fn run(g: &GlobalArgs, tenant: Option<String>) -> anyhow::Result<()> {
    let mut client = connect(g).await?;
    let s = client
        .status(v1::StatusRequest {
            tenant: tenant.unwrap_or_default(),
        })
        .await?
        .into_inner();
    match g.output {
        OutputFormat::Json => print_json(&json!({
            "version": s.version,
            "services": s.services,
            "stream": s.stream,
            "lastSequence": s.last_sequence,
            "messages": s.messages,
            "projections": s.projections.iter().map(|p| json!({"name": p.name, "position": p.position, "lag": p.lag})).collect::<Vec<_>>(),
            "tenant": s.tenant.as_ref().map(|t| json!({"id": t.tenant, "objects": t.objects, "digest": t.digest})),
        })),
        OutputFormat::Table => {
            outln!("version   {}", s.version);
            outln!("services  {}", s.services.join(", "));
            outln!(
                "stream    {} (last sequence {}, {} messages)",
                s.stream,
                s.last_sequence,
                s.messages
            );
            if let Some(t) = &s.tenant {
                outln!(
                    "tenant    {} ({} objects, {})",
                    t.tenant,
                    t.objects,
                    t.digest
                );
            }
            outln!();
            table(
                &["PROJECTION", "POSITION", "LAG"],
                &s.projections
                    .iter()
                    .map(|p| vec![p.name.clone(), p.position.to_string(), p.lag.to_string()])
                    .collect::<Vec<_>>(),
            );
        }
    }
    Ok(())
}
