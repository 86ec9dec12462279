//! `backtrack token create`: a token signed with the deployment's local key — issued and
//! audited by the server, or with `--offline` minted from the key file. `backtrack token
//! revoke`: every process refuses it from then on.

use std::time::Duration;

use anyhow::Context;
use backtrack_domain::time::rfc3339_ms;
use backtrack_platform::auth::{Role, SigningKey};
use backtrack_proto::v1;
use base64::Engine;

use crate::args::{GlobalArgs, OutputFormat, TokenCommand};
use crate::client::connect_channel;
use crate::output::{outln, print_json, refuse, refused, table};

pub async fn run(g: &GlobalArgs, command: TokenCommand) -> anyhow::Result<()> {
    let (tenants, roles, kinds, subject, ttl, offline) = match command {
        TokenCommand::Create {
            tenants,
            roles,
            kinds,
            subject,
            ttl,
            offline,
        } => (tenants, roles, kinds, subject, ttl, offline),
        TokenCommand::Revoke { id, reason } => return revoke(g, &id, reason).await,
        TokenCommand::List { tenant, all } => return list(g, tenant, all).await,
    };
    let ttl = parse_duration(&ttl)?;
    let (token, token_id, expires_at) = if offline {
        mint_offline(g, &tenants, &roles, &kinds, &subject, ttl)?
    } else {
        let connection = connect_channel(g).await.map_err(|e| {
            anyhow::anyhow!("{e:#}\nTo mint a token without a server (and without an audit record), pass --offline.")
        })?;
        let issued = connection
            .tokens()
            .issue_token(v1::IssueTokenRequest {
                subject,
                tenants,
                roles,
                kinds,
                ttl_secs: ttl.as_secs(),
            })
            .await?
            .into_inner();
        (issued.token, issued.token_id, issued.expires_at)
    };
    outln!("{token}");
    let expires = seconds_text(expires_at);
    eprintln!("token id {token_id}, expires {expires}; revoke it with `backtrack token revoke {token_id}`");
    Ok(())
}

async fn revoke(g: &GlobalArgs, token: &str, reason: String) -> anyhow::Result<()> {
    let token_id = token_id_of(token)?;
    let revoked = connect_channel(g)
        .await?
        .tokens()
        .revoke_token(v1::RevokeTokenRequest { token_id, reason })
        .await?
        .into_inner();
    let at = rfc3339_ms(revoked.revoked_at_ms);
    match g.output {
        OutputFormat::Json => outln!(
            "{}",
            serde_json::json!({
                "tokenId": revoked.token_id,
                "revokedAt": at,
                "alreadyRevoked": revoked.already_revoked,
            })
        ),
        OutputFormat::Table if revoked.already_revoked => {
            outln!("token {} was already revoked at {at}", revoked.token_id)
        }
        OutputFormat::Table => outln!("revoked token {} at {at}", revoked.token_id),
    }
    Ok(())
}

async fn list(g: &GlobalArgs, tenant: String, all: bool) -> anyhow::Result<()> {
    let tokens = connect_channel(g)
        .await?
        .tokens()
        .list_tokens(v1::ListTokensRequest {
            tenant,
            include_expired: all,
        })
        .await?
        .into_inner()
        .tokens;
    let time = seconds_text;
    let revoked_at = |t: &v1::TokenInfo| t.revoked.then(|| rfc3339_ms(t.revoked_at_ms));
    if g.output == OutputFormat::Json {
        let rows: Vec<serde_json::Value> = tokens
            .iter()
            .map(|t| {
                serde_json::json!({
                    "tokenId": t.token_id,
                    "subject": t.subject,
                    "tenants": t.tenants,
                    "roles": t.roles,
                    "kinds": t.kinds,
                    "issuedAt": time(t.issued_at),
                    "expiresAt": time(t.expires_at),
                    "issuedBy": t.issued_by,
                    "revoked": t.revoked,
                    "revokedAt": revoked_at(t),
                })
            })
            .collect();
        print_json(&serde_json::Value::Array(rows));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.token_id.clone(),
                t.subject.clone(),
                t.roles.join(","),
                if t.kinds.is_empty() {
                    "all".into()
                } else {
                    t.kinds.join(",")
                },
                t.tenants.join(","),
                time(t.expires_at),
                revoked_at(t).unwrap_or_default(),
                t.issued_by.clone(),
            ]
        })
        .collect();
    table(
        &[
            "TOKEN ID",
            "SUBJECT",
            "ROLES",
            "KINDS",
            "TENANTS",
            "EXPIRES",
            "REVOKED",
            "ISSUED BY",
        ],
        &rows,
    );
    outln!("{} tokens", rows.len());
    Ok(())
}

/// A token time (seconds since the epoch, as in its claims) as RFC 3339.
fn seconds_text(secs: u64) -> String {
    rfc3339_ms(
        i64::try_from(secs)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000),
    )
}

/// The claims of a JWT, read, not verified (the server decides what they are worth);
/// `None` when `token` is no JWT or its claims cannot be read.
pub(super) fn unverified_claims(token: &str) -> Option<serde_json::Value> {
    claims_of_payload(token.trim().split('.').nth(1)?)
}

/// A JWT's middle part, decoded.
fn claims_of_payload(payload: &str) -> Option<serde_json::Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The id to revoke: `text` itself, or the `jti` of the JWT `text` is (read, not
/// verified: a token signed with another key names an id no process accepts anyway).
fn token_id_of(text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    let Some(payload) = text.split('.').nth(1) else {
        return Ok(text.to_string());
    };
    let claims = claims_of_payload(payload).ok_or_else(|| {
            refused(
                "that looks like a token (it has dots), but its claims cannot be read: pass the token id instead",
            )
        })?;
    match claims.get("jti").and_then(serde_json::Value::as_str) {
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => refuse!("the token has no `jti` claim, so it cannot be revoked by id: for a provider's token, ask the provider to revoke it"),
    }
}

fn mint_offline(
    g: &GlobalArgs,
    tenants: &[String],
    roles: &[String],
    kinds: &[String],
    subject: &str,
    ttl: Duration,
) -> anyhow::Result<(String, String, u64)> {
    let key_path = g.data_dir.join("signing.key");
    let key = SigningKey::load(&key_path).with_context(|| {
        format!(
            "cannot read the local signing key {}: run `backtrack up` first or pass --data-dir",
            key_path.display()
        )
    })?;
    let roles = roles
        .iter()
        .map(|r| r.parse::<Role>().map_err(|e| refused(e.to_string())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for t in tenants.iter().filter(|t| t.as_str() != "*") {
        backtrack_domain::validate::tenant_id(t)?;
    }
    let issued = key.issue(subject, tenants, &roles, kinds, ttl)?;
    Ok((issued.token, issued.claims.jti, issued.claims.exp))
}

/// `90s`, `15m`, `12h`, `30d`.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let invalid = || {
        refused(format!(
            "invalid duration '{text}': use e.g. 90s, 15m, 12h, 30d"
        ))
    };
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number.parse().map_err(|_| invalid())?;
    let scale = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(invalid()),
    };
    n.checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_too_long_or_malformed_are_refused() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        for bad in [
            "99999999999999999999d",
            "999999999999999999d",
            "5x",
            "h",
            "",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert_eq!(crate::output::exit_code(&e), 2, "{bad}");
            assert!(e.to_string().contains("invalid duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_token_id_is_taken_as_it_is() {
        let id = "0b9e2c7e-41a2-4c0e-9a55-0d7f1e3c2b10";
        assert_eq!(token_id_of(&format!(" {id}\n")).unwrap(), id);
    }

    #[test]
    fn a_token_gives_its_jti_and_is_not_echoed_when_unreadable() {
        let key = SigningKey::generate().unwrap();
        let issued = key
            .issue(
                "ci",
                &["t".into()],
                &[Role::BackupReader],
                &[],
                Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(token_id_of(&issued.token).unwrap(), issued.claims.jti);
        let e = token_id_of("eyJhbGciOi.not-base64!.sig")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pass the token id"), "{e}");
        assert!(!e.contains("not-base64"), "{e}");
        let no_jti = format!(
            "h.{}.s",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#)
        );
        assert!(token_id_of(&no_jti)
            .unwrap_err()
            .to_string()
            .contains("no `jti`"));
    }
}
