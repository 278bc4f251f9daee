//! The engine's errors, each with a stable code.

/// Why the engine could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A setting names an environment variable that is not set.
    #[error("environment variable {var} (named by {setting}) is not set")]
    MissingEnv {
        /// The variable.
        var: String,
        /// The setting that named it.
        setting: &'static str,
    },
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server secret could not be read or created.
    #[error("server secret: {0}")]
    Secret(#[from] signward_auth::AuthError),
    /// The slashing protection database could not be opened.
    #[error("opening the slashing protection database: {0}")]
    Slashing(#[from] signward_slashing::SlashingError),
    /// The slashing database belongs to another network (genesis validators root).
    #[error("the slashing database belongs to another network than {network}: {cause}")]
    WrongNetwork {
        /// The network the server was started for.
        network: String,
        /// What the database said.
        cause: signward_slashing::SlashingError,
    },
    /// The vault database could not be opened or read.
    #[error("opening the vault: {0}")]
    Vault(signward_vault::VaultError),
    /// A boot share (`--unseal-shares-from`) was refused.
    #[error("unattended unseal: {0}")]
    Unseal(signward_vault::VaultError),
    /// The EVM spend ledger could not be opened.
    #[error("opening the EVM spend ledger: {0}")]
    Ledger(signward_evm::EvmError),
    /// The audit log could not be opened.
    #[error("opening the audit log: {0}")]
    Audit(signward_audit::AuditError),
    /// The credential file could not be opened.
    #[error("opening the credentials: {0}")]
    Credentials(signward_auth::AuthError),
}

impl EngineError {
    /// Stable code for logs.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::MissingEnv { .. } => "missing_env",
            EngineError::DataDir { .. } => "data_dir",
            EngineError::Secret(_) => "server_secret",
            EngineError::Slashing(e) => e.class(),
            EngineError::WrongNetwork { .. } => "wrong_network",
            EngineError::Vault(e) | EngineError::Unseal(e) => e.code(),
            EngineError::Ledger(_) => "spend_ledger",
            EngineError::Audit(_) => "audit",
            EngineError::Credentials(_) => "credentials",
        }
    }
}

/// Why the engine did not carry out a request. Each has a stable code (the one clients see)
/// and a fixed message that is never built from request or internal data; the HTTP and
/// JSON-RPC edges map these to their own answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The key identifier is not 48 bytes of hex.
    InvalidPubkey,
    /// No loaded key has this public key.
    UnknownKey,
    /// The sign request is not JSON, or not a sign request.
    MalformedSignRequest,
    /// The body lacks what its type needs, or holds contradictory fields.
    InvalidRequest,
    /// A list, bitlist or bitvector breaks its SSZ bound.
    SszBounds,
    /// BLOCK_V2 with a full block after Altair, or a body that does not match its version.
    UnsupportedBlockFormat,
    /// The client's `signingRoot` differs from the one the engine computed.
    SigningRootMismatch,
    /// A payload field its container does not have (e.g. `committee_bits` before Electra).
    UnexpectedField,
    /// The message's fork differs from the network's fork at its slot.
    ForkMismatch,
    /// A valid credential outside its policy (scope, key, operation, network, expiry).
    Forbidden(signward_auth::Denied),
    /// Slashing protection refused the message.
    Refused(signward_slashing::Refusal),
    /// The slashing database could not decide; nothing was signed.
    SlashingUnavailable,
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
    /// A vault or key-management failure, by its stable code (see
    /// [`signward_vault::VaultError::code`]).
    Vault(&'static str),
    /// The `slashing_protection` of an import is not a valid EIP-3076 document.
    HistoryInvalid,
    /// The `slashing_protection` of an import is for another chain.
    HistoryWrongChain,
    /// The `slashing_protection` of an import holds a record beyond the chain clock's window.
    HistoryTooFarInFuture,
    /// The request body exceeds the limit.
    BodyTooLarge,
    /// A threshold key: fewer than the threshold of peers released a valid partial signature in
    /// time. Nothing was signed.
    GroupUnavailable,
    /// Anything else; details are in the log.
    Internal,
}

impl Rejection {
    /// The audit outcome of this rejection: refused by a rule, denied to the caller, or an
    /// error.
    pub fn outcome(&self) -> signward_audit::Outcome {
        match self {
            Rejection::Refused(_) | Rejection::Canary => signward_audit::Outcome::Refused,
            Rejection::Forbidden(_) => signward_audit::Outcome::Denied,
            _ => signward_audit::Outcome::Error,
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::InvalidPubkey => "invalid_pubkey",
            Rejection::UnknownKey => "unknown_key",
            Rejection::MalformedSignRequest => "malformed_body",
            Rejection::InvalidRequest => "invalid_request",
            Rejection::SszBounds => "ssz_bounds",
            Rejection::UnsupportedBlockFormat => "unsupported_block_format",
            Rejection::SigningRootMismatch => "signing_root_mismatch",
            Rejection::UnexpectedField => "unexpected_field",
            Rejection::ForkMismatch => "fork_mismatch",
            Rejection::Forbidden(d) => d.code(),
            Rejection::Refused(r) => r.code(),
            Rejection::SlashingUnavailable => "slashing_db_unavailable",
            Rejection::AuditUnavailable => "audit_unavailable",
            Rejection::NotReady => "not_ready",
            Rejection::Sealed => "sealed",
            Rejection::Halted => "halted",
            Rejection::Canary => "canary_key",
            Rejection::Vault(code) => code,
            Rejection::HistoryInvalid => "invalid_slashing_protection",
            Rejection::HistoryWrongChain => "slashing_protection_genesis_mismatch",
            Rejection::HistoryTooFarInFuture => "slashing_protection_too_far_in_future",
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::GroupUnavailable => "group_unavailable",
            Rejection::Internal => "internal_error",
        }
    }

    /// A fixed, human-readable message.
    pub fn message(&self) -> &'static str {
        use signward_auth::Denied;
        use signward_slashing::Refusal;
        match self {
            Rejection::InvalidPubkey => "the public key in the path is not 48 bytes of hex",
            Rejection::UnknownKey => "no key with this public key is loaded",
            Rejection::MalformedSignRequest => "the request body is not a valid sign request",
            Rejection::InvalidRequest => {
                "the sign request lacks a field its type requires or is inconsistent"
            }
            Rejection::SszBounds => "a list or bitfield in the request exceeds its bound",
            Rejection::UnsupportedBlockFormat => {
                "block format not accepted for this fork; from BELLATRIX on send BLOCK_V2 with block_header"
            }
            Rejection::SigningRootMismatch => {
                "the signingRoot sent does not match the signing root computed by the server"
            }
            Rejection::UnexpectedField => {
                "the payload holds a field its container does not have (the container is chosen by the type, and for BLOCK and AGGREGATE_AND_PROOF by the fork of the slot); nothing was signed"
            }
            Rejection::ForkMismatch => {
                "the request's fork (version or fork_info) is not the network's fork at the message's slot; check --network"
            }
            Rejection::Forbidden(d) => match d {
                Denied::Scope => "the credential does not grant this endpoint",
                Denied::Key => "the credential does not grant this key",
                Denied::Operation => "the credential does not grant this operation",
                Denied::Network => "the credential may not be used from this address",
                Denied::Expired => "the credential has expired",
                Denied::FeeRecipient => "the credential does not grant this fee recipient",
                Denied::Suspended => "the credential is suspended; an operator must reinstate it",
            },
            Rejection::Refused(r) => match r {
                Refusal::DoubleProposal => "refused by slashing protection: another block was signed at this slot",
                Refusal::DoubleVote => "refused by slashing protection: another attestation was signed for this target epoch",
                Refusal::SurroundVote => "refused by slashing protection: the attestation surrounds or is surrounded by a signed one",
                Refusal::BelowWatermark => "refused by slashing protection: at or below the validator's low watermark",
                Refusal::SourceAfterTarget => "refused by slashing protection: source epoch is after target epoch",
                Refusal::GenesisMismatch => "refused by slashing protection: genesis validators root differs from the database's",
                Refusal::TooFarInFuture => "refused by slashing protection: slot or epoch too far ahead of the chain clock",
                Refusal::Disabled => "refused by slashing protection: the validator is disabled (its key was deleted); import it again to sign",
            },
            Rejection::SlashingUnavailable => "slashing protection database unavailable; nothing was signed",
            Rejection::AuditUnavailable => "the audit log could not be written; nothing was released",
            Rejection::NotReady => "the signer is not ready; keys are still loading",
            Rejection::Sealed => "the vault is sealed; submit unseal shares (signward unseal)",
            Rejection::Halted => "signing is halted by an operator; nothing is signed until `signward resume`",
            Rejection::Canary => "this key may not be used",
            Rejection::Vault(code) => vault_message(code),
            Rejection::HistoryInvalid => "slashing_protection is not a valid EIP-3076 interchange document",
            Rejection::HistoryWrongChain => "slashing_protection is for another chain (genesis validators root) than this signer",
            Rejection::HistoryTooFarInFuture => "slashing_protection holds a record beyond the chain clock's window",
            Rejection::BodyTooLarge => "the request body is too large",
            Rejection::GroupUnavailable => "fewer than the threshold of signing-group peers released a valid partial signature in time (down, slow, or refusing by their own slashing protection); nothing was signed",
            Rejection::Internal => "internal error",
        }
    }
}

/// What a vault failure means to the operator, by its code.
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
        "no_signing_group" => "this server is not in a signing group; start it with --group-config",
        "invalid_share" => "not a signing-group share document, or its share does not match its commitments",
        "share_refused" => "the share is not this peer's, or its threshold does not suit this group (see the server log)",
        "key_held_here" => "this key is already held here whole or from a share file",
        "recipient_not_pinned" => "every recipient must be one of the group configuration's share_recipients, each once",
        "key_disabled" => "the vault holds this key disabled; enable or delete it first",
        "history_required" => "a new key's share needs its slashing history (slashing_protection) or new_key: true",
        "sealed" => "the vault is sealed",
        "vault_storage" => "the vault database is unavailable",
        "record_tampered" => "a vault record failed authentication; see the server log",
        _ => "vault error; see the server log",
    }
}

/// The vault failures that are the caller's doing (a wrong share, a read-only key); the rest
/// are ours and logged as errors.
pub fn caller_fault(code: &str) -> bool {
    matches!(
        code,
        "share_wrong_vault"
            | "share_stale"
            | "share_duplicate"
            | "share_malformed"
            | "quorum_mismatch"
            | "invalid_parameters"
            | "invalid_keystore"
            | "vault_uninitialized"
            | "already_unsealed"
            | "vault_generation_changed"
            | "read_only_key"
            | "key_not_found"
            | "no_signing_group"
            | "invalid_share"
            | "share_refused"
            | "key_held_here"
            | "recipient_not_pinned"
            | "key_disabled"
            | "history_required"
    )
}

/// A vault failure as the engine answers it (logged here: the code alone leaves).
impl From<&signward_vault::VaultError> for Rejection {
    fn from(e: &signward_vault::VaultError) -> Self {
        match e {
            signward_vault::VaultError::Sealed => Rejection::Sealed,
            other => {
                let code = other.code();
                if caller_fault(code) {
                    tracing::warn!(error = %other, "vault request refused");
                } else {
                    tracing::error!(error = %other, "vault error");
                }
                Rejection::Vault(code)
            }
        }
    }
}

impl From<crate::admission::Refused> for Rejection {
    fn from(r: crate::admission::Refused) -> Self {
        match r {
            crate::admission::Refused::Canary => Rejection::Canary,
            crate::admission::Refused::Sealed => Rejection::Sealed,
            crate::admission::Refused::Halted => Rejection::Halted,
        }
    }
}

impl From<&signward_core::CoreError> for Rejection {
    fn from(e: &signward_core::CoreError) -> Self {
        use signward_core::CoreError;
        match e {
            CoreError::SszBounds(_) => Rejection::SszBounds,
            CoreError::UnsupportedBlockFormat(_) => Rejection::UnsupportedBlockFormat,
            CoreError::InvalidRequest(_) => Rejection::InvalidRequest,
            CoreError::SigningRootMismatch => Rejection::SigningRootMismatch,
            CoreError::UnexpectedField(_) => Rejection::UnexpectedField,
            CoreError::ForkMismatch => Rejection::ForkMismatch,
            CoreError::InvalidNetwork(_) => Rejection::Internal,
        }
    }
}
