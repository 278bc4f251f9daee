//! The EIP-3076 rules, written once as a pure reference: no I/O, one named predicate per condition.
//!
//! The stores decide in SQL (SQLite) and PL/pgSQL (PostgreSQL) so that the check and the record
//! happen in one transaction next to the rows. This module says the same thing in plain Rust over
//! a [`History`]; `tests/rules_equivalence.rs` drives both stores and this reference with random
//! histories and requests and demands the same [`Decision`] every time. A change to a rule is made
//! here first, then in both stores, and that test shows when they disagree.
//!
//! The order of the checks is part of the rule: a request that breaks several conditions is
//! refused for the first one in [`decide`]'s order, and every backend answers with that one.
//!
//! Conditions, as numbered in EIP-3076 ("complete" form, with the watermarks of
//! [`crate::history`] standing for pruned or imported-minimal history):
//! 1. a block at a slot already signed with another (or an unknown) signing root is refused;
//! 2. a block at or below the lowest signed slot is refused;
//! 3. an attestation whose target was already signed with another source or root is refused;
//! 4. an attestation whose source is below the lowest signed source is refused;
//! 5. an attestation whose target is at or below the lowest signed target is refused;
//!
//! and the slashing conditions themselves: no surround vote either way, and a source never after
//! its target (checked before anything else). Chain pinning (genesis validators root) and
//! disabled validators are checked by the stores before these rules; the chain-clock window is
//! checked by the signer before the store is asked. An identical repeat (same slot or same source and target, same signing root) may
//! be signed again.

use std::ops::Bound;

use signward_core::bytes::Root;

use crate::decision::{Decision, Refusal, Slashable};
use crate::history::History;

/// Condition 1: a block is already recorded at `slot` with a root other than `root` (a record
/// without a root counts as another root).
pub fn is_double_proposal(h: &History, slot: i64, root: &Root) -> bool {
    h.blocks
        .get(&slot)
        .is_some_and(|r| r.as_ref() != Some(root))
}

/// The identical block was signed before.
pub fn is_repeat_block(h: &History, slot: i64, root: &Root) -> bool {
    h.blocks
        .get(&slot)
        .is_some_and(|r| r.as_ref() == Some(root))
}

/// Condition 2: `slot` is at or below the lowest signed slot or the block watermark.
pub fn is_below_block_floor(h: &History, slot: i64) -> bool {
    h.blocks.keys().next().is_some_and(|min| slot <= *min)
        || h.watermarks.block_slot.is_some_and(|w| slot <= w)
}

/// The identical attestation (same source, target and root) was signed before.
pub fn is_repeat_attestation(h: &History, source: i64, target: i64, root: &Root) -> bool {
    h.attestations
        .get(&target)
        .is_some_and(|(s, r)| *s == source && r.as_ref() == Some(root))
}

/// Condition 3: the target was already signed, and not identically.
pub fn is_double_vote(h: &History, source: i64, target: i64, root: &Root) -> bool {
    h.attestations.contains_key(&target) && !is_repeat_attestation(h, source, target, root)
}

/// A signed attestation surrounds this one (its source is lower and its target higher).
pub fn is_surrounded(h: &History, source: i64, target: i64) -> bool {
    h.attestations
        .range((Bound::Excluded(target), Bound::Unbounded))
        .any(|(_, (s, _))| *s < source)
}

/// This attestation surrounds a signed one (its source is lower and its target higher).
pub fn is_surrounding(h: &History, source: i64, target: i64) -> bool {
    h.attestations
        .range(..target)
        .any(|(_, (s, _))| *s > source)
}

/// Condition 4: the source is below the lowest signed source or the source watermark.
pub fn is_below_source_floor(h: &History, source: i64) -> bool {
    h.attestations
        .values()
        .map(|(s, _)| *s)
        .min()
        .is_some_and(|min| source < min)
        || h.watermarks.att_source.is_some_and(|w| source < w)
}

/// Condition 5: the target is at or below the lowest signed target or the target watermark.
pub fn is_below_target_floor(h: &History, target: i64) -> bool {
    h.attestations
        .keys()
        .next()
        .is_some_and(|min| target <= *min)
        || h.watermarks.att_target.is_some_and(|w| target <= w)
}

/// The decision for one message against one validator's history, in the order every backend
/// checks. Does not record; see [`record`].
pub fn decide(h: &History, slashable: Slashable, root: &Root) -> Decision {
    let refusal = match slashable {
        Slashable::Block { slot } => {
            let Ok(slot) = i64::try_from(slot) else {
                return Decision::Refused(Refusal::TooFarInFuture);
            };
            if is_repeat_block(h, slot, root) {
                return Decision::Repeat;
            }
            if is_double_proposal(h, slot, root) {
                Refusal::DoubleProposal
            } else if is_below_block_floor(h, slot) {
                Refusal::BelowWatermark
            } else {
                return Decision::Allowed;
            }
        }
        Slashable::Attestation {
            source_epoch,
            target_epoch,
        } => {
            if source_epoch > target_epoch {
                return Decision::Refused(Refusal::SourceAfterTarget);
            }
            let (Ok(s), Ok(t)) = (i64::try_from(source_epoch), i64::try_from(target_epoch)) else {
                return Decision::Refused(Refusal::TooFarInFuture);
            };
            if is_repeat_attestation(h, s, t, root) {
                return Decision::Repeat;
            }
            if is_double_vote(h, s, t, root) {
                Refusal::DoubleVote
            } else if is_surrounded(h, s, t) || is_surrounding(h, s, t) {
                Refusal::SurroundVote
            } else if is_below_source_floor(h, s) || is_below_target_floor(h, t) {
                Refusal::BelowWatermark
            } else {
                return Decision::Allowed;
            }
        }
    };
    Decision::Refused(refusal)
}

/// Record an allowed message in the history (what a store inserts in the same transaction).
/// Does nothing for a message [`decide`] would not allow.
pub fn record(h: &mut History, slashable: Slashable, root: &Root) {
    if decide(h, slashable, root) != Decision::Allowed {
        return;
    }
    match slashable {
        Slashable::Block { slot } => {
            if let Ok(slot) = i64::try_from(slot) {
                h.blocks.insert(slot, Some(*root));
            }
        }
        Slashable::Attestation {
            source_epoch,
            target_epoch,
        } => {
            if let (Ok(s), Ok(t)) = (i64::try_from(source_epoch), i64::try_from(target_epoch)) {
                h.attestations.insert(t, (s, Some(*root)));
            }
        }
    }
}

/// [`decide`], then [`record`] when allowed: the whole check-and-record of one message.
pub fn check_and_record(h: &mut History, slashable: Slashable, root: &Root) -> Decision {
    let d = decide(h, slashable, root);
    if d == Decision::Allowed {
        record(h, slashable, root);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: u8) -> Root {
        Root::from([n; 32])
    }

    fn att(s: u64, t: u64) -> Slashable {
        Slashable::Attestation {
            source_epoch: s,
            target_epoch: t,
        }
    }

    #[test]
    fn each_condition_by_name() {
        let mut h = History::default();
        let b = |slot| Slashable::Block { slot };
        assert_eq!(check_and_record(&mut h, b(10), &r(1)), Decision::Allowed);
        assert_eq!(decide(&h, b(10), &r(1)), Decision::Repeat);
        assert_eq!(
            decide(&h, b(10), &r(2)),
            Decision::Refused(Refusal::DoubleProposal)
        );
        assert_eq!(
            decide(&h, b(9), &r(1)),
            Decision::Refused(Refusal::BelowWatermark)
        );
        assert_eq!(
            check_and_record(&mut h, att(2, 4), &r(1)),
            Decision::Allowed
        );
        assert_eq!(decide(&h, att(2, 4), &r(1)), Decision::Repeat);
        assert_eq!(
            decide(&h, att(3, 4), &r(1)),
            Decision::Refused(Refusal::DoubleVote)
        );
        assert_eq!(
            decide(&h, att(1, 5), &r(1)),
            Decision::Refused(Refusal::SurroundVote)
        );
        assert_eq!(
            check_and_record(&mut h, att(3, 8), &r(1)),
            Decision::Allowed
        );
        assert_eq!(
            decide(&h, att(4, 6), &r(1)),
            Decision::Refused(Refusal::SurroundVote)
        );
        assert_eq!(
            decide(&h, att(1, 9), &r(1)),
            Decision::Refused(Refusal::SurroundVote)
        );
        assert_eq!(
            decide(&h, att(2, 3), &r(1)),
            Decision::Refused(Refusal::BelowWatermark)
        );
        assert_eq!(
            decide(&h, att(9, 8), &r(1)),
            Decision::Refused(Refusal::SourceAfterTarget)
        );
        assert_eq!(
            decide(&h, Slashable::Block { slot: u64::MAX }, &r(1)),
            Decision::Refused(Refusal::TooFarInFuture)
        );
        // A record without a root is a conflict for any root.
        h.blocks.insert(20, None);
        assert_eq!(
            decide(&h, b(20), &r(1)),
            Decision::Refused(Refusal::DoubleProposal)
        );
        // Watermarks alone are floors.
        let mut w = History::default();
        w.watermarks.block_slot = Some(5);
        w.watermarks.att_source = Some(3);
        w.watermarks.att_target = Some(4);
        assert!(is_below_block_floor(&w, 5) && !is_below_block_floor(&w, 6));
        assert!(is_below_source_floor(&w, 2) && !is_below_source_floor(&w, 3));
        assert!(is_below_target_floor(&w, 4) && !is_below_target_floor(&w, 5));
    }
}
