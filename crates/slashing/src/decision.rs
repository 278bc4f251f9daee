//! What is asked (a [`Check`]) and what is answered (a [`Decision`]).

use signward_core::bytes::{PublicKeyBytes, Root};
/// The slashable message about to be signed: the signing job's own type, so what is checked is
/// exactly what was computed from the request.
pub use signward_core::signing::Slashable;

/// One check-and-record request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The validator.
    pub pubkey: PublicKeyBytes,
    /// The chain the message is for.
    pub genesis_validators_root: Root,
    /// The block slot, or the attestation's source and target.
    pub slashable: Slashable,
    /// The signing root (an identical message is a safe repeat).
    pub signing_root: Root,
}

/// Why a message was refused. Each has a stable code for the API, logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Another block at the same slot was signed (or one whose root is unknown).
    DoubleProposal,
    /// Another attestation with the same target was signed.
    DoubleVote,
    /// The attestation surrounds, or is surrounded by, one already signed.
    SurroundVote,
    /// At or below the low watermark (EIP-3076 conditions 2, 4 and 5, or pruned history).
    BelowWatermark,
    /// Attestation source epoch after its target epoch.
    SourceAfterTarget,
    /// The request is for another chain than the database is pinned to.
    GenesisMismatch,
    /// The slot or epoch is further ahead of the chain clock than allowed (or beyond any real
    /// slot or epoch).
    TooFarInFuture,
    /// The validator was disabled (its key deleted, its history exported): nothing more is
    /// signed for it, by any instance sharing the database, until it is imported again.
    Disabled,
}

impl Refusal {
    /// Every refusal, in a fixed order.
    pub const ALL: [Refusal; 8] = [
        Refusal::DoubleProposal,
        Refusal::DoubleVote,
        Refusal::SurroundVote,
        Refusal::BelowWatermark,
        Refusal::SourceAfterTarget,
        Refusal::GenesisMismatch,
        Refusal::TooFarInFuture,
        Refusal::Disabled,
    ];

    /// The stable code for the API, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::DoubleProposal => "double_proposal",
            Refusal::DoubleVote => "double_vote",
            Refusal::SurroundVote => "surround_vote",
            Refusal::BelowWatermark => "below_watermark",
            Refusal::SourceAfterTarget => "source_after_target",
            Refusal::GenesisMismatch => "genesis_mismatch",
            Refusal::TooFarInFuture => "too_far_in_future",
            Refusal::Disabled => "validator_disabled",
        }
    }

    /// The refusal with code `code`.
    pub fn from_code(code: &str) -> Option<Self> {
        Refusal::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// The answer to a [`Check`]. `Allowed` means the message is now durably recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// New and safe; recorded and committed.
    Allowed,
    /// The identical message (same signing root) was signed before; signing it again is safe.
    Repeat,
    /// Refused, for this reason.
    Refused(Refusal),
}

impl Decision {
    /// Allowed or a repeat: the message may be signed.
    pub fn may_sign(&self) -> bool {
        matches!(self, Decision::Allowed | Decision::Repeat)
    }
}
