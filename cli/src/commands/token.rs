//! `backtrack token create`: a token signed with the deployment's local key — issued and
//! audited by the server, or with `--offline` minted from the key file.

use std::time::Duration;

use anyhow::{bail, Context};
use backtrack_platform::auth::{Role, SigningKey};
use backtrack_proto::v1;

use crate::args::{GlobalArgs, TokenCommand};
use crate::client::connect_channel;
use crate::output::outln;

pub async fn run(g: &GlobalArgs, command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Create {
        tenants,
        roles,
        kinds,
        subject,
        ttl,
        offline,
    } = command;
    let ttl = parse_duration(&ttl)?;
    let token = if offline {
        mint_offline(g, &tenants, &roles, &kinds, &subject, ttl)?
    } else {
        let connection = connect_channel(g).await.map_err(|e| {
            anyhow::anyhow!("{e:#}\nTo mint a token without a server (and without an audit record), pass --offline.")
        })?;
        connection
            .tokens()
            .issue_token(v1::IssueTokenRequest {
                subject,
                tenants,
                roles,
                kinds,
                ttl_secs: ttl.as_secs(),
            })
            .await?
            .into_inner()
            .token
    };
    outln!("{token}");
    Ok(())
}

fn mint_offline(
    g: &GlobalArgs,
    tenants: &[String],
    roles: &[String],
    kinds: &[String],
    subject: &str,
    ttl: Duration,
) -> anyhow::Result<String> {
    let key_path = g.data_dir.join("signing.key");
    let key = SigningKey::load(&key_path).with_context(|| {
        format!(
            "cannot read the local signing key {}: run `backtrack up` first or pass --data-dir",
            key_path.display()
        )
    })?;
    let roles = roles
        .iter()
        .map(|r| r.parse::<Role>().map_err(|e| anyhow::anyhow!("{e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for t in tenants.iter().filter(|t| t.as_str() != "*") {
        backtrack_domain::validate::tenant_id(t)?;
    }
    Ok(key.mint(subject, tenants, &roles, kinds, ttl)?)
}

/// `90s`, `15m`, `12h`, `30d`.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .with_context(|| format!("invalid duration '{text}': use e.g. 90s, 15m, 12h, 30d"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("invalid duration '{text}': use e.g. 90s, 15m, 12h, 30d"),
    };
    Ok(Duration::from_secs(secs))
}
