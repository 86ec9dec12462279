//! Bearer tokens on the wire: the server-side [`AuthInterceptor`] and the client-side
//! [`BearerToken`].

use std::sync::Arc;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use super::{AuthError, Caller, TokenValidator};
use crate::audit::layer::CallerSlot;

const AUTHORIZATION: &str = "authorization";
const MISSING_TOKEN: &str = "missing bearer token: pass --token or set BACKTRACK_TOKEN";

/// Server-side interceptor: validates the `authorization: Bearer <jwt>` header and puts the
/// resulting [`Caller`] into the request's extensions for handlers to read with [`caller`].
#[derive(Clone)]
pub struct AuthInterceptor {
    validator: Arc<TokenValidator>,
}

impl AuthInterceptor {
    /// An interceptor that accepts what `validator` accepts.
    pub fn new(validator: Arc<TokenValidator>) -> Self {
        Self { validator }
    }

    fn authenticate(&self, request: &Request<()>) -> Result<Caller, Status> {
        let header = request
            .metadata()
            .get(AUTHORIZATION)
            .ok_or_else(|| Status::unauthenticated(MISSING_TOKEN))?;
        let value = header.to_str().map_err(|_| {
            Status::unauthenticated("malformed authorization header: it is not printable ASCII")
        })?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(Status::unauthenticated(
                    "malformed authorization header: expected 'Bearer <token>'",
                ))
            }
        };
        if token.is_empty() {
            return Err(Status::unauthenticated(MISSING_TOKEN));
        }
        self.validator.validate(token).map_err(|err| {
            tracing::debug!(reason = %err, "rejected bearer token");
            Status::unauthenticated(format!("invalid bearer token: {err}"))
        })
    }
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.authenticate(&request)?;
        // Behind an `AuditLayer`, tell it who called, so a refusal further in is recorded
        // with the caller's identity.
        if let Some(slot) = request.extensions().get::<CallerSlot>() {
            slot.fill(&caller);
        }
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// The [`Caller`] that [`AuthInterceptor`] attached to `request`.
///
/// `UNAUTHENTICATED` when there is none, i.e. the service was mounted without the interceptor.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("request was not authenticated"))
}

/// The `authorization` metadata value for `token`, marked sensitive so it is not logged.
pub fn bearer(token: &str) -> Result<MetadataValue<Ascii>, AuthError> {
    let mut value: MetadataValue<Ascii> =
        format!("Bearer {}", token.trim()).parse().map_err(|_| {
            AuthError::Malformed("the token contains characters not allowed in a header")
        })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Client-side interceptor that adds `authorization: Bearer <token>` to every request.
///
/// With a generated client: `DirectoryClient::with_interceptor(channel, BearerToken::new(&token)?)`.
///
/// ```
/// use tonic::service::Interceptor;
///
/// let mut auth = backtrack_platform::auth::BearerToken::new("header.claims.signature")?;
/// let request = auth.call(tonic::Request::new(()))?;
/// assert!(request.metadata().contains_key("authorization"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct BearerToken {
    value: MetadataValue<Ascii>,
}

impl BearerToken {
    /// Checks once that `token` fits in a header, so that sending never fails.
    pub fn new(token: &str) -> Result<Self, AuthError> {
        Ok(Self {
            value: bearer(token)?,
        })
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert(AUTHORIZATION, self.value.clone());
        crate::telemetry::inject_metadata(request.metadata_mut());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tonic::Code;

    use super::*;
    use crate::auth::{Role, SigningKey};

    fn setup() -> (SigningKey, AuthInterceptor) {
        let key = SigningKey::generate().expect("key");
        let interceptor = AuthInterceptor::new(Arc::new(TokenValidator::local(&key)));
        (key, interceptor)
    }

    fn token(key: &SigningKey) -> String {
        key.mint(
            "alice",
            &["contoso".into()],
            &[Role::BackupReader],
            &[],
            Duration::from_secs(60),
        )
        .expect("mint")
    }

    #[test]
    fn missing_header_is_unauthenticated_with_a_hint() {
        let (_, mut interceptor) = setup();
        let status = interceptor.call(Request::new(())).expect_err("rejected");
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), MISSING_TOKEN);
    }

    #[test]
    fn valid_token_puts_caller_into_extensions() {
        let (key, mut interceptor) = setup();
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert(AUTHORIZATION, bearer(&token(&key)).expect("header"));
        let request = interceptor.call(request).expect("accepted");
        let caller = caller(&request).expect("caller");
        assert_eq!(caller.subject, "alice");
        assert_eq!(caller.roles, vec![Role::BackupReader]);
    }

    #[test]
    fn client_interceptor_output_passes_server_interceptor() {
        let (key, mut server) = setup();
        let mut client = BearerToken::new(&token(&key)).expect("token fits a header");
        let request = client.call(Request::new(())).expect("client");
        let request = server.call(request).expect("server");
        assert!(caller(&request).is_ok());
    }

    #[test]
    fn invalid_token_gives_reason_without_echoing_it() {
        let (_, mut interceptor) = setup();
        let foreign = token(&SigningKey::generate().expect("key"));
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert(AUTHORIZATION, bearer(&foreign).expect("header"));
        let status = interceptor.call(request).expect_err("rejected");
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(
            status.message().contains("signature"),
            "{}",
            status.message()
        );
        for part in foreign.split('.') {
            assert!(!status.message().contains(part));
        }
    }

    #[test]
    fn non_bearer_scheme_is_rejected() {
        let (_, mut interceptor) = setup();
        let mut request = Request::new(());
        request.metadata_mut().insert(
            AUTHORIZATION,
            MetadataValue::from_static("Basic YWxpY2U6c2VjcmV0"),
        );
        let status = interceptor.call(request).expect_err("rejected");
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(!status.message().contains("YWxpY2U6c2VjcmV0"));
    }

    #[test]
    fn caller_is_unauthenticated_without_interceptor() {
        let status = caller(&Request::new(())).expect_err("no caller");
        assert_eq!(status.code(), Code::Unauthenticated);
    }

    #[test]
    fn bearer_rejects_header_breaking_tokens() {
        assert!(bearer("abc\r\nx-evil: 1").is_err());
    }
}
