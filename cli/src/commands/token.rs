//! `backtrack token create`: mint a token with the local signing key.

use std::time::Duration;

use anyhow::{bail, Context};
use backtrack_platform::auth::{Role, SigningKey};

use crate::args::{GlobalArgs, TokenCommand};

pub fn run(g: &GlobalArgs, command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Create {
        tenants,
        roles,
        kinds,
        subject,
        ttl,
    } = command;
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
    let token = key.mint(&subject, &tenants, &roles, &kinds, parse_duration(&ttl)?)?;
    println!("{token}");
    Ok(())
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
