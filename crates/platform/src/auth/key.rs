//! The deployment's HS256 signing secret, kept in a hex file readable only by its owner.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rand::TryRngCore;

use super::{AuthError, Claims, Role, AUDIENCE, LOCAL_ISSUER};

/// Length of a generated secret; also the shortest secret accepted from a file.
const SECRET_LEN: usize = 32;

/// A freshly minted token and its claims. `Debug` never shows the token.
#[derive(Clone)]
pub struct IssuedToken {
    pub token: String,
    pub claims: Claims,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

/// The HS256 secret that signs and verifies this deployment's tokens.
///
/// `Debug` never shows the secret.
#[derive(Clone)]
pub struct SigningKey {
    secret: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key of 32 bytes from the operating system's random source.
    pub fn generate() -> Result<Self, AuthError> {
        let mut secret = vec![0u8; SECRET_LEN];
        rand::rngs::OsRng
            .try_fill_bytes(&mut secret)
            .map_err(|e| AuthError::Random(e.to_string()))?;
        Ok(Self { secret })
    }

    /// Loads the key at `path`, or creates it (mode 0600, parent directories included) when the
    /// file does not exist yet. The flag is `true` when the key was created.
    ///
    /// Creation is atomic: a concurrent process either sees the complete file or none.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), AuthError> {
        match Self::load(path) {
            Ok(key) => return Ok((key, false)),
            Err(AuthError::KeyFile { source, .. }) if source.kind() == ErrorKind::NotFound => {}
            Err(other) => return Err(other),
        }
        let key = Self::generate()?;
        match key.write_new(path) {
            Ok(()) => Ok((key, true)),
            // Someone else created it between our read and our link: theirs wins.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok((Self::load(path)?, false)),
            Err(source) => Err(AuthError::KeyFile {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Loads a hex-encoded key of at least 32 bytes from `path`.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let key_file_error = |source| AuthError::KeyFile {
            path: path.to_owned(),
            source,
        };
        let text = fs::read_to_string(path).map_err(key_file_error)?;
        let secret = hex::decode(text.trim()).map_err(|e| AuthError::KeyFormat {
            path: path.to_owned(),
            reason: format!("expected hex digits ({e})"),
        })?;
        if secret.len() < SECRET_LEN {
            return Err(AuthError::KeyFormat {
                path: path.to_owned(),
                reason: format!(
                    "the secret has {} bytes, at least {SECRET_LEN} are needed",
                    secret.len()
                ),
            });
        }
        let mode = fs::metadata(path)
            .map_err(key_file_error)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "signing key file is readable by group or others; chmod 600 it"
            );
        }
        Ok(Self { secret })
    }

    /// Writes the key to a temporary file, then hard-links it into place so that `path`
    /// appears complete or not at all, and fails with `AlreadyExists` if it is already there.
    fn write_new(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(format!(".tmp-{}", uuid::Uuid::new_v4()));
        let tmp = PathBuf::from(tmp_name);
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            writeln!(file, "{}", hex::encode(&self.secret))?;
            file.sync_all()?;
            fs::hard_link(&tmp, path)
        })();
        // The temporary name is ours alone; failing to remove it leaves only litter.
        let _ = fs::remove_file(&tmp);
        written
    }

    /// Mints a token for `subject` valid for `ttl`, issued by [`LOCAL_ISSUER`] for [`AUDIENCE`].
    pub fn mint(
        &self,
        subject: &str,
        tenants: &[String],
        roles: &[Role],
        kinds: &[String],
        ttl: Duration,
    ) -> Result<String, AuthError> {
        Ok(self.issue(subject, tenants, roles, kinds, ttl)?.token)
    }

    /// [`SigningKey::mint`], also returning the claims the token carries (for the audit
    /// record of its issue).
    pub fn issue(
        &self,
        subject: &str,
        tenants: &[String],
        roles: &[Role],
        kinds: &[String],
        ttl: Duration,
    ) -> Result<IssuedToken, AuthError> {
        if subject.is_empty() {
            return Err(AuthError::Mint("the subject must not be empty".into()));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| AuthError::Mint("the system clock is before 1970".into()))?
            .as_secs();
        let claims = Claims {
            sub: subject.to_owned(),
            tenants: tenants.to_vec(),
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            kinds: kinds.to_vec(),
            iss: LOCAL_ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            exp: now.saturating_add(ttl.as_secs()),
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        Ok(IssuedToken {
            token: self.sign(&claims)?,
            claims,
        })
    }

    /// Signs arbitrary claims as they are. Meant for tests that need tokens `mint` refuses to
    /// make (expired, foreign audience, ...); services mint with [`SigningKey::mint`].
    pub fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(&self.secret),
        )
        .map_err(|e| AuthError::Mint(e.to_string()))
    }

    pub(super) fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_secret(&self.secret)
    }

    #[cfg(test)]
    pub(super) fn encoding_key(&self) -> EncodingKey {
        EncodingKey::from_secret(&self.secret)
    }
}
