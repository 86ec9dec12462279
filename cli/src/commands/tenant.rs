//! `backtrack tenant create|list`.

use backtrack_proto::v1;
use serde_json::json;

use crate::args::{GlobalArgs, OutputFormat, TenantCommand};
use crate::client::connect;
use crate::output::outln;
use crate::output::{print_json, table};

pub async fn run(g: &GlobalArgs, command: TenantCommand) -> anyhow::Result<()> {
    let mut client = connect(g).await?;
    match command {
        TenantCommand::Create { name, display_name } => {
            let t = client
                .create_tenant(v1::CreateTenantRequest {
                    id: name,
                    display_name,
                })
                .await?
                .into_inner();
            match g.output {
                OutputFormat::Json => print_json(&tenant_json(&t)),
                OutputFormat::Table => outln!("created tenant {} ({})", t.id, t.display_name),
            }
        }
        TenantCommand::List => {
            let tenants = client
                .list_tenants(v1::ListTenantsRequest {})
                .await?
                .into_inner()
                .tenants;
            match g.output {
                OutputFormat::Json => {
                    print_json(&json!(tenants.iter().map(tenant_json).collect::<Vec<_>>()))
                }
                OutputFormat::Table => table(
                    &["TENANT", "DISPLAY NAME", "CREATED"],
                    &tenants
                        .iter()
                        .map(|t| {
                            vec![
                                t.id.clone(),
                                t.display_name.clone(),
                                backtrack_domain::time::rfc3339_ms(t.created_at_ms),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
    }
    Ok(())
}

fn tenant_json(t: &v1::Tenant) -> serde_json::Value {
    json!({"id": t.id, "displayName": t.display_name, "createdDateTime": backtrack_domain::time::rfc3339_ms(t.created_at_ms)})
}
