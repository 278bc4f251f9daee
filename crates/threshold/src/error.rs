use thiserror::Error;

/// Everything that can go wrong in threshold arithmetic. Messages name share indexes, never
/// secret values.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ThresholdError {
    /// A threshold and group size that cannot be used.
    #[error("invalid threshold parameters: t = {t}, n = {n} (need 2 <= t <= n <= 255)")]
    InvalidParameters {
        /// The threshold asked for.
        t: u32,
        /// The group size asked for.
        n: u32,
    },
    /// A share index outside 1..=255.
    #[error("share index {0} is outside 1..=255")]
    InvalidIndex(u32),
    /// The same index twice where distinct peers are required.
    #[error("share index {0} appears twice")]
    DuplicateIndex(u32),
    /// A secret key that is not a non-zero scalar below the group order.
    #[error("the secret key is not a valid BLS12-381 secret key")]
    InvalidSecret,
    /// A point that does not decode, is not in the subgroup, or is the identity.
    #[error("invalid point: {0}")]
    InvalidPoint(&'static str),
    /// Commitments with no coefficient, or more than the largest threshold.
    #[error("commitments have {0} coefficients (need 2..=255)")]
    InvalidCommitments(usize),
    /// Commitments for another threshold than expected.
    #[error("commitments are for threshold {got}, expected {expected}")]
    ThresholdMismatch {
        /// The threshold expected.
        expected: u32,
        /// The threshold the commitments describe.
        got: u32,
    },
    /// A secret share that its commitments do not vouch for (a dishonest or broken dealer).
    #[error("the share from dealer {dealer} does not match its commitments")]
    ShareMismatch {
        /// The dealer (or, for a share checked alone, the share's own index).
        dealer: u32,
    },
    /// A share addressed to another index than the receiver's.
    #[error("a share for index {got} was given to index {expected}")]
    WrongRecipient {
        /// The receiver's index.
        expected: u32,
        /// The index the share is for.
        got: u32,
    },
    /// A resharing dealer whose dealt secret is not its share of the group key.
    #[error("dealer {0} did not reshare its own share of the group key")]
    NotAHolder(u32),
    /// Too few dealers (key generation) or not exactly `t` old holders (resharing).
    #[error("{got} dealers given, {needed} required")]
    DealerCount {
        /// How many are required.
        needed: usize,
        /// How many were given.
        got: usize,
    },
    /// Fewer valid partial signatures than the threshold.
    #[error("{valid} valid partial signatures, {needed} required")]
    NotEnoughPartials {
        /// The threshold.
        needed: usize,
        /// How many verified.
        valid: usize,
    },
    /// The interpolated signature or key does not match the group key (a bug, never expected).
    #[error("the combined result does not verify under the group public key")]
    CombinedInvalid,
}

impl ThresholdError {
    /// A stable code for APIs, logs and audit records.
    pub fn code(&self) -> &'static str {
        match self {
            ThresholdError::InvalidParameters { .. } => "threshold_parameters",
            ThresholdError::InvalidIndex(_) => "threshold_index",
            ThresholdError::DuplicateIndex(_) => "threshold_duplicate_index",
            ThresholdError::InvalidSecret => "threshold_secret",
            ThresholdError::InvalidPoint(_) => "threshold_point",
            ThresholdError::InvalidCommitments(_) => "threshold_commitments",
            ThresholdError::ThresholdMismatch { .. } => "threshold_mismatch",
            ThresholdError::ShareMismatch { .. } => "threshold_share_mismatch",
            ThresholdError::WrongRecipient { .. } => "threshold_wrong_recipient",
            ThresholdError::NotAHolder(_) => "threshold_not_a_holder",
            ThresholdError::DealerCount { .. } => "threshold_dealer_count",
            ThresholdError::NotEnoughPartials { .. } => "threshold_not_enough_partials",
            ThresholdError::CombinedInvalid => "threshold_combined_invalid",
        }
    }
}
