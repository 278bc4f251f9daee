//! The one error type of the HTTP edge. Clients get `{"code": "...", "message": "..."}` with a
//! stable code and a fixed short message; the detail (never a secret) goes to the log only.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use signward_auth::Denied;
use signward_core::CoreError;
use signward_slashing::Refusal;

/// An error answered to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiError {
    /// The path's public key is not 48 bytes of hex.
    InvalidPubkey,
    /// No loaded key has this public key.
    UnknownKey,
    /// The body is not JSON, or not the body this endpoint takes (named by [`BodyKind`]).
    MalformedBody(BodyKind),
    /// The body lacks what its type needs, or holds contradictory fields.
    InvalidRequest,
    /// A list, bitlist or bitvector breaks its SSZ bound.
    SszBounds,
    /// BLOCK_V2 with a full block after Altair, or a body that does not match its version.
    UnsupportedBlockFormat,
    /// The client's `signingRoot` differs from the one the server computed.
    SigningRootMismatch,
    /// A payload field its container does not have (e.g. `committee_bits` before Electra).
    UnexpectedField,
    /// The message's fork differs from the network's fork at its slot.
    ForkMismatch,
    /// No credential, or one that is not valid.
    Unauthorized,
    /// A credential was presented to the Keymanager API and is not valid: the Keymanager spec
    /// answers 403 here ("a token is found but is invalid") and 401 only when none is found.
    InvalidCredential,
    /// A valid credential outside its policy (scope, key, operation, network, expiry).
    Forbidden(Denied),
    /// Too many failed attempts from this source.
    TooManyFailures,
    /// Slashing protection refused the message (HTTP 412, code per reason).
    Refused(Refusal),
    /// The slashing database could not decide; nothing was signed.
    SlashingUnavailable,
    /// Too many requests in flight; retry shortly.
    Overloaded,
    /// The audit record could not be written; nothing was released.
    AuditUnavailable,
    /// Keys are still loading.
    NotReady,
    /// The vault is sealed: nothing is signed until a quorum of shares unseals it.
    Sealed,
    /// An operator (or a canary) halted signing.
    Halted,
    /// A canary key was requested: never signed with; the alarm has been raised.
    Canary,
    /// A vault or key-management failure, by its stable code (see [`signward_vault::VaultError::code`]).
    Vault(&'static str),
    /// The `slashing_protection` of an import is not a valid EIP-3076 document.
    HistoryInvalid,
    /// The `slashing_protection` of an import is for another chain.
    HistoryWrongChain,
    /// The `slashing_protection` of an import holds a record beyond the chain clock's window.
    HistoryTooFarInFuture,
    /// The request body exceeds the limit.
    BodyTooLarge,
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
    /// Anything else; details are in the server log.
    Internal,
}

/// Which body an endpoint expected, so a parse error names the endpoint's own input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `POST /api/v1/eth2/sign/{identifier}`
    SignRequest,
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
}

impl BodyKind {
    fn message(self) -> &'static str {
        match self {
            BodyKind::SignRequest => "the request body is not a valid sign request",
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
        }
    }
}

#[derive(Serialize)]
struct Body {
    code: &'static str,
    message: &'static str,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidPubkey
            | ApiError::MalformedBody(_)
            | ApiError::InvalidRequest
            | ApiError::SszBounds
            | ApiError::UnsupportedBlockFormat
            | ApiError::SigningRootMismatch
            | ApiError::UnexpectedField
            | ApiError::ForkMismatch
            | ApiError::HistoryInvalid
            | ApiError::HistoryWrongChain
            | ApiError::HistoryTooFarInFuture => StatusCode::BAD_REQUEST,
            ApiError::UnknownKey | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest => StatusCode::BAD_REQUEST,
            ApiError::ReloadInProgress => StatusCode::CONFLICT,
            ApiError::ReloadUnavailable => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::InvalidCredential => StatusCode::FORBIDDEN,
            ApiError::TooManyFailures => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Refused(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::Vault(code) => vault_status(code),
            ApiError::Canary => StatusCode::FORBIDDEN,
            ApiError::NotReady
            | ApiError::Sealed
            | ApiError::Halted
            | ApiError::SlashingUnavailable
            | ApiError::AuditUnavailable
            | ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidPubkey => "invalid_pubkey",
            ApiError::UnknownKey => "unknown_key",
            ApiError::MalformedBody(_) => "malformed_body",
            ApiError::InvalidRequest => "invalid_request",
            ApiError::SszBounds => "ssz_bounds",
            ApiError::UnsupportedBlockFormat => "unsupported_block_format",
            ApiError::SigningRootMismatch => "signing_root_mismatch",
            ApiError::UnexpectedField => "unexpected_field",
            ApiError::ForkMismatch => "fork_mismatch",
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidCredential => "invalid_credential",
            ApiError::Forbidden(d) => d.code(),
            ApiError::TooManyFailures => "too_many_auth_failures",
            ApiError::Refused(r) => r.code(),
            ApiError::SlashingUnavailable => "slashing_db_unavailable",
            ApiError::AuditUnavailable => "audit_unavailable",
            ApiError::Overloaded => "overloaded",
            ApiError::NotReady => "not_ready",
            ApiError::Sealed => "sealed",
            ApiError::Halted => "halted",
            ApiError::Canary => "canary_key",
            ApiError::Vault(code) => code,
            ApiError::HistoryInvalid => "invalid_slashing_protection",
            ApiError::HistoryWrongChain => "slashing_protection_genesis_mismatch",
            ApiError::HistoryTooFarInFuture => "slashing_protection_too_far_in_future",
            ApiError::BodyTooLarge => "body_too_large",
            ApiError::Timeout => "timeout",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::BadRequest => "bad_request",
            ApiError::ReloadInProgress => "reload_in_progress",
            ApiError::ReloadUnavailable => "reload_unavailable",
            ApiError::Internal => "internal_error",
        }
    }

    /// A fixed, human-readable message (never built from request or internal data).
    pub fn message(&self) -> &'static str {
        match self {
            ApiError::InvalidPubkey => "the public key in the path is not 48 bytes of hex",
            ApiError::UnknownKey => "no key with this public key is loaded",
            ApiError::MalformedBody(kind) => kind.message(),
            ApiError::InvalidRequest => {
                "the sign request lacks a field its type requires or is inconsistent"
            }
            ApiError::SszBounds => "a list or bitfield in the request exceeds its bound",
            ApiError::UnsupportedBlockFormat => {
                "block format not accepted for this fork; from BELLATRIX on send BLOCK_V2 with block_header"
            }
            ApiError::SigningRootMismatch => {
                "the signingRoot sent does not match the signing root computed by the server"
            }
            ApiError::UnexpectedField => {
                "the payload holds a field its container does not have (the container is chosen by the type, and for BLOCK and AGGREGATE_AND_PROOF by the fork of the slot); nothing was signed"
            }
            ApiError::ForkMismatch => {
                "the request's fork (version or fork_info) is not the network's fork at the message's slot; check --network"
            }
            ApiError::Unauthorized => "missing or invalid credentials",
            ApiError::InvalidCredential => "the credential presented is not valid",
            ApiError::Forbidden(d) => match d {
                Denied::Scope => "the credential does not grant this endpoint",
                Denied::Key => "the credential does not grant this key",
                Denied::Operation => "the credential does not grant this operation",
                Denied::Network => "the credential may not be used from this address",
                Denied::Expired => "the credential has expired",
                Denied::FeeRecipient => "the credential does not grant this fee recipient",
                Denied::Suspended => "the credential is suspended; an operator must reinstate it",
            },
            ApiError::TooManyFailures => "too many failed authentication attempts; retry later",
            ApiError::Refused(r) => match r {
                Refusal::DoubleProposal => "refused by slashing protection: another block was signed at this slot",
                Refusal::DoubleVote => "refused by slashing protection: another attestation was signed for this target epoch",
                Refusal::SurroundVote => "refused by slashing protection: the attestation surrounds or is surrounded by a signed one",
                Refusal::BelowWatermark => "refused by slashing protection: at or below the validator's low watermark",
                Refusal::SourceAfterTarget => "refused by slashing protection: source epoch is after target epoch",
                Refusal::GenesisMismatch => "refused by slashing protection: genesis validators root differs from the database's",
                Refusal::TooFarInFuture => "refused by slashing protection: slot or epoch too far ahead of the chain clock",
                Refusal::Disabled => "refused by slashing protection: the validator is disabled (its key was deleted); import it again to sign",
            },
            ApiError::SlashingUnavailable => "slashing protection database unavailable; nothing was signed",
            ApiError::AuditUnavailable => "the audit log could not be written; nothing was released",
            ApiError::Overloaded => "too many requests in flight; retry shortly",
            ApiError::NotReady => "the signer is not ready; keys are still loading",
            ApiError::Sealed => "the vault is sealed; submit unseal shares (signward unseal)",
            ApiError::Halted => "signing is halted by an operator; nothing is signed until `signward resume`",
            ApiError::Canary => "this key may not be used",
            ApiError::Vault(code) => vault_message(code),
            ApiError::HistoryInvalid => "slashing_protection is not a valid EIP-3076 interchange document",
            ApiError::HistoryWrongChain => "slashing_protection is for another chain (genesis validators root) than this signer",
            ApiError::HistoryTooFarInFuture => "slashing_protection holds a record beyond the chain clock's window",
            ApiError::BodyTooLarge => "the request body is too large",
            ApiError::Timeout => "the request timed out",
            ApiError::NotFound => "no such endpoint",
            ApiError::MethodNotAllowed => "this endpoint does not accept this HTTP method",
            ApiError::BadRequest => "the request could not be read",
            ApiError::ReloadInProgress => "a reload is already running; check GET /reload",
            ApiError::ReloadUnavailable => "this server has no key sources to reload",
            ApiError::Internal => "internal error",
        }
    }
}

fn vault_status(code: &str) -> StatusCode {
    match code {
        "share_wrong_vault" | "share_stale" | "share_duplicate" | "share_malformed"
        | "quorum_mismatch" | "invalid_parameters" | "invalid_keystore" => StatusCode::BAD_REQUEST,
        "vault_uninitialized"
        | "already_unsealed"
        | "vault_generation_changed"
        | "read_only_key" => StatusCode::CONFLICT,
        "key_not_found" => StatusCode::NOT_FOUND,
        "sealed" | "vault_storage" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn vault_message(code: &str) -> &'static str {
    match code {
        "share_wrong_vault" => "the share belongs to another vault",
        "share_stale" => "the share belongs to a share set replaced by rekey or rotate",
        "share_duplicate" => "a share with this index was already submitted",
        "share_malformed" => "the share is malformed",
        "quorum_mismatch" => {
            "the submitted shares do not reconstruct the master key; unseal progress was reset"
        }
        "invalid_parameters" => "invalid parameters",
        "invalid_keystore" => "the keystores or passwords are malformed",
        "vault_uninitialized" => "no vault exists; run signward init",
        "already_unsealed" => "the vault is already unsealed",
        "vault_generation_changed" => {
            "the vault was rotated by another process; seal and unseal with the new shares"
        }
        "read_only_key" => "the key was loaded from files and cannot be changed through the API",
        "key_not_found" => "no such key",
        "sealed" => "the vault is sealed",
        "vault_storage" => "the vault database is unavailable",
        "record_tampered" => "a vault record failed authentication; see the server log",
        _ => "vault error; see the server log",
    }
}

impl From<&signward_vault::VaultError> for ApiError {
    fn from(e: &signward_vault::VaultError) -> Self {
        match e {
            signward_vault::VaultError::Sealed => ApiError::Sealed,
            other => {
                let code = other.code();
                if vault_status(code).is_server_error() {
                    tracing::error!(error = %other, "vault error");
                } else {
                    tracing::warn!(error = %other, "vault request refused");
                }
                ApiError::Vault(code)
            }
        }
    }
}

impl From<crate::admission::Refused> for ApiError {
    fn from(r: crate::admission::Refused) -> Self {
        match r {
            crate::admission::Refused::Canary => ApiError::Canary,
            crate::admission::Refused::Sealed => ApiError::Sealed,
            crate::admission::Refused::Halted => ApiError::Halted,
        }
    }
}

impl From<&CoreError> for ApiError {
    fn from(e: &CoreError) -> Self {
        match e {
            CoreError::SszBounds(_) => ApiError::SszBounds,
            CoreError::UnsupportedBlockFormat(_) => ApiError::UnsupportedBlockFormat,
            CoreError::InvalidRequest(_) => ApiError::InvalidRequest,
            CoreError::SigningRootMismatch => ApiError::SigningRootMismatch,
            CoreError::UnexpectedField(_) => ApiError::UnexpectedField,
            CoreError::ForkMismatch => ApiError::ForkMismatch,
            CoreError::InvalidNetwork(_) => ApiError::Internal,
        }
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
