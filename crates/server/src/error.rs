//! The one error type of the HTTP edge. Clients get `{"code": "...", "message": "..."}` with a
//! stable code and a fixed short message; the detail (never a secret) goes to the log only.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use signward_engine::Rejection;

/// An error answered to a client: the engine's [`Rejection`]s, and what only the edge can
/// refuse (a body it cannot read, a missing credential, a route that does not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiError {
    /// The engine did not carry out the request.
    Engine(Rejection),
    /// The body is not JSON, or not the body this endpoint takes (named by [`BodyKind`]).
    MalformedBody(BodyKind),
    /// No credential, or one that is not valid.
    Unauthorized,
    /// A credential was presented to the Keymanager API and is not valid: the Keymanager spec
    /// answers 403 here ("a token is found but is invalid") and 401 only when none is found.
    InvalidCredential,
    /// Too many failed attempts from this source.
    TooManyFailures,
    /// Too many requests in flight; retry shortly.
    Overloaded,
    /// The request took longer than the server allows.
    Timeout,
    /// No such route.
    NotFound,
    /// The route exists, but not with this method.
    MethodNotAllowed,
    /// The framework refused the request before a handler saw it (a path or header it could
    /// not read).
    BadRequest,
    /// A reload is already running (`POST /reload`).
    ReloadInProgress,
    /// This server has no key sources to reload (`POST /reload`).
    ReloadUnavailable,
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        ApiError::Engine(r)
    }
}

impl From<&signward_vault::VaultError> for ApiError {
    fn from(e: &signward_vault::VaultError) -> Self {
        ApiError::Engine(Rejection::from(e))
    }
}

/// Which body an endpoint expected, so a parse error names the endpoint's own input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `POST /eth/v1/keystores`
    KeystoreImport,
    /// `DELETE /eth/v1/keystores`
    KeystoreDelete,
    /// `POST /eth/v1/remotekeys`
    RemoteKeysImport,
    /// `DELETE /eth/v1/remotekeys`
    RemoteKeysDelete,
    /// `POST /admin/v1/keys/import`
    AdminImport,
    /// `POST /admin/v1/keys/generate`
    AdminGenerate,
    /// `POST /admin/v1/halt`
    AdminHalt,
    /// `POST /admin/v1/group/shares`
    GroupShare,
    /// `POST /admin/v1/group/refresh` and `POST /admin/v1/group/split`
    GroupDeal,
}

impl BodyKind {
    fn message(self) -> &'static str {
        match self {
            BodyKind::KeystoreImport => {
                "the request body is not a valid keystore import: a JSON object with keystores (array of strings), passwords (array of strings) and optional slashing_protection (string)"
            }
            BodyKind::KeystoreDelete => {
                "the request body is not a valid keystore delete: a JSON object with pubkeys (array of strings)"
            }
            BodyKind::RemoteKeysImport => {
                "the request body is not a valid remote key import: a JSON object with remote_keys (array)"
            }
            BodyKind::RemoteKeysDelete => {
                "the request body is not a valid remote key delete: a JSON object with pubkeys (array)"
            }
            BodyKind::AdminImport => {
                "the request body is not a valid key import: a JSON object with keystores and passwords (arrays of strings)"
            }
            BodyKind::AdminGenerate => {
                "the request body is not a valid key generation request: a JSON object with type, count and optional backup_to"
            }
            BodyKind::AdminHalt => "the request body is not a valid halt request: a JSON object with an optional reason (string)",
            BodyKind::GroupShare => "the request body is not a valid share import: a JSON object with share (a share document), and slashing_protection (string) or new_key (boolean)",
            BodyKind::GroupDeal => "the request body is not a valid split or refresh: a JSON object with group_public_key, threshold, optional tolerate_compromised and peers (array of index and age_recipient)",
        }
    }
}

#[derive(Serialize)]
struct Body {
    code: &'static str,
    message: &'static str,
}

impl ApiError {
    /// The HTTP status of this answer.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Engine(r) => match r {
                Rejection::InvalidPubkey
                | Rejection::MalformedSignRequest
                | Rejection::InvalidRequest
                | Rejection::SszBounds
                | Rejection::UnsupportedBlockFormat
                | Rejection::SigningRootMismatch
                | Rejection::UnexpectedField
                | Rejection::ForkMismatch
                | Rejection::HistoryInvalid
                | Rejection::HistoryWrongChain
                | Rejection::HistoryTooFarInFuture => StatusCode::BAD_REQUEST,
                Rejection::UnknownKey => StatusCode::NOT_FOUND,
                Rejection::Forbidden(_) | Rejection::Canary => StatusCode::FORBIDDEN,
                Rejection::Refused(_) => StatusCode::PRECONDITION_FAILED,
                Rejection::Vault(code) => vault_status(code),
                Rejection::NotReady
                | Rejection::Sealed
                | Rejection::Halted
                | Rejection::SlashingUnavailable
                | Rejection::GroupUnavailable
                | Rejection::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                Rejection::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                Rejection::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::MalformedBody(_) | ApiError::BadRequest => StatusCode::BAD_REQUEST,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::ReloadInProgress => StatusCode::CONFLICT,
            ApiError::ReloadUnavailable => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::InvalidCredential => StatusCode::FORBIDDEN,
            ApiError::TooManyFailures => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Engine(r) => r.code(),
            ApiError::MalformedBody(_) => "malformed_body",
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidCredential => "invalid_credential",
            ApiError::TooManyFailures => "too_many_auth_failures",
            ApiError::Overloaded => "overloaded",
            ApiError::Timeout => "timeout",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::BadRequest => "bad_request",
            ApiError::ReloadInProgress => "reload_in_progress",
            ApiError::ReloadUnavailable => "reload_unavailable",
        }
    }

    /// A fixed, human-readable message (never built from request or internal data).
    pub fn message(&self) -> &'static str {
        match self {
            ApiError::Engine(r) => r.message(),
            ApiError::MalformedBody(kind) => kind.message(),
            ApiError::Unauthorized => "missing or invalid credentials",
            ApiError::InvalidCredential => "the credential presented is not valid",
            ApiError::TooManyFailures => "too many failed authentication attempts; retry later",
            ApiError::Overloaded => "too many requests in flight; retry shortly",
            ApiError::Timeout => "the request timed out",
            ApiError::NotFound => "no such endpoint",
            ApiError::MethodNotAllowed => "this endpoint does not accept this HTTP method",
            ApiError::BadRequest => "the request could not be read",
            ApiError::ReloadInProgress => "a reload is already running; check GET /reload",
            ApiError::ReloadUnavailable => "this server has no key sources to reload",
        }
    }
}

/// The status of a vault failure: the caller's faults (`signward_engine::caller_fault`) are
/// 4xx, the rest 5xx.
fn vault_status(code: &str) -> StatusCode {
    match code {
        "vault_uninitialized"
        | "already_unsealed"
        | "vault_generation_changed"
        | "read_only_key"
        | "no_signing_group"
        | "key_held_here"
        | "key_disabled" => StatusCode::CONFLICT,
        "key_not_found" => StatusCode::NOT_FOUND,
        _ if signward_engine::caller_fault(code) => StatusCode::BAD_REQUEST,
        "sealed" | "vault_storage" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            code: self.code(),
            message: self.message(),
        };
        (self.status(), axum::Json(body)).into_response()
    }
}
