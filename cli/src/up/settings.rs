//! What the services of `backtrack up` / `serve` get from the flags: the identity provider,
//! the default backup policy and the alerter's thresholds.

use std::time::Duration;

use backtrack_platform::auth::JwksSource;
use backtrack_snapshotter::alerter::AlertSettings;

use crate::args::UpArgs;

/// The identity provider `backtrack up` trusts besides its own key.
pub(crate) struct OidcSettings {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) source: JwksSource,
    pub(crate) refresh: Duration,
}

/// `--jwt-issuer`, `--jwt-audience` and one of `--jwks-file` / `--jwks-url`, all or none.
pub(crate) fn oidc_settings(args: &UpArgs) -> Result<Option<OidcSettings>, String> {
    let source = match (&args.jwks_file, &args.jwks_url) {
        (Some(_), Some(_)) => return Err("give --jwks-file or --jwks-url, not both".into()),
        (Some(path), None) => Some(JwksSource::File(path.clone())),
        (None, Some(url)) => Some(JwksSource::Url(url.clone())),
        (None, None) => None,
    };
    match (&args.jwt_issuer, &args.jwt_audience, source) {
        (None, None, None) => Ok(None),
        (Some(issuer), Some(audience), Some(source))
            if !issuer.trim().is_empty() && !audience.trim().is_empty() =>
        {
            Ok(Some(OidcSettings {
                issuer: issuer.trim().to_string(),
                audience: audience.trim().to_string(),
                source,
                refresh: Duration::from_secs(args.jwks_refresh_secs.max(10)),
            }))
        }
        _ => Err(
            "an identity provider needs --jwt-issuer, --jwt-audience and one of --jwks-file / --jwks-url"
                .into(),
        ),
    }
}

/// The backup policy of tenants without one of their own.
pub(crate) fn default_policy(args: &UpArgs) -> backtrack_snapshotter::policy::Policy {
    backtrack_snapshotter::policy::Policy {
        schedule: args.backup_schedule.trim().to_string(),
        retention_days: args.backup_retention_days,
        ..Default::default()
    }
}

/// The alerter's thresholds and window from `up`'s flags.
pub(crate) fn alert_settings(args: &UpArgs) -> AlertSettings {
    let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    AlertSettings {
        limits: backtrack_domain::alerts::BurstLimits {
            thresholds: backtrack_domain::alerts::Thresholds {
                deletions: count(args.alert_mass_deletions),
                link_removals: count(args.alert_mass_link_removals),
            },
            window_ms: i64::try_from(args.alert_window_mins * 60_000).unwrap_or(i64::MAX),
        },
    }
}
