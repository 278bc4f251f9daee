//! One validator's history as the rules see it, and how an imported history is merged into a
//! stored one. Pure: no I/O. Both backends read a validator's rows, call [`merge`], and write the
//! result back in the same transaction, so the merge rules exist once.
//!
//! The watermarks act as one virtual record each: a block at `block` and an attestation
//! `(source, target)`. Nothing is ever signed at or below a watermark (EIP-3076 conditions 2, 4
//! and 5 with the watermark taken as the lowest record), and every stored record lies at or above
//! them, so an export that writes the watermarks as root-less records says the same thing.
//!
//! Merging only ever makes protection stricter:
//! * a record that disagrees with a stored one at the same slot keeps no signing root, so nothing
//!   more is signed there;
//! * an attestation that disagrees with a stored one at the same target keeps the higher source
//!   and no signing root, and the target becomes a floor: every vote the lower source would have
//!   surrounded lies below that floor, and every vote that surrounds the lower source surrounds the
//!   higher one too;
//! * every imported file's lowest records are floors, as EIP-3076 conditions 2, 4 and 5 say, and
//!   floors are only ever raised: importing an older history after a newer one changes nothing
//!   at or below the newer one's floor, and importing a newer one leaves no gap to sign in
//!   (records below a raised floor are dropped, covered by the watermark). This is stricter than
//!   EIP-3076's complete mode and no stricter than its minimal mode.

use std::collections::BTreeMap;

use signward_core::bytes::Root;

use crate::interchange::ValidatorHistory;
use crate::store::to_i64;
use crate::SlashingError;

/// The low watermarks of one validator (each may be absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watermarks {
    /// Lowest block slot that may not be signed again.
    pub block_slot: Option<i64>,
    /// Attestation source floor.
    pub att_source: Option<i64>,
    /// Attestation target floor.
    pub att_target: Option<i64>,
}

/// One validator's records: blocks by slot, attestations by target (with their source).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Signed blocks by slot, with their signing root when known.
    pub blocks: BTreeMap<i64, Option<Root>>,
    /// Signed attestations by target: (source, signing root when known).
    pub attestations: BTreeMap<i64, (i64, Option<Root>)>,
    /// The validator's floors.
    pub watermarks: Watermarks,
}

/// Counts of what a merge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Blocks newly recorded.
    pub blocks_added: u64,
    /// Attestations newly recorded.
    pub attestations_added: u64,
    /// Exact duplicates (within the file or of stored records).
    pub duplicates: u64,
    /// Records that disagreed and were made stricter.
    pub conflicts: u64,
    /// Records dropped because they lie below a floor (covered by a watermark).
    pub below_floor: u64,
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl History {
    /// The lowest values nothing may be signed at or below (targets, slots) or under (sources):
    /// the watermarks raised by the lowest records.
    fn floors(&self) -> (Option<i64>, Option<i64>, Option<i64>) {
        let min_slot = self.blocks.keys().next().copied();
        let min_target = self.attestations.keys().next().copied();
        let min_source = self.attestations.values().map(|(s, _)| *s).min();
        (
            max_opt(self.watermarks.block_slot, min_slot),
            max_opt(self.watermarks.att_source, min_source),
            max_opt(self.watermarks.att_target, min_target),
        )
    }

    /// The history of one imported interchange entry, with disagreements inside the file merged
    /// as [`merge`] merges them with stored records.
    pub fn from_interchange(
        v: &ValidatorHistory,
        report: &mut MergeReport,
    ) -> Result<Self, SlashingError> {
        let mut h = History::default();
        let mut conflict_floor = None;
        for b in &v.signed_blocks {
            add_block(&mut h, to_i64(b.slot.0)?, b.signing_root, report, false);
        }
        for a in &v.signed_attestations {
            let (s, t) = (to_i64(a.source_epoch.0)?, to_i64(a.target_epoch.0)?);
            if let Some(t) = add_attestation(&mut h, s, t, a.signing_root, report, false) {
                conflict_floor = max_opt(conflict_floor, Some(t));
            }
        }
        if let Some(t) = conflict_floor {
            raise_floors(&mut h, (None, None, Some(t)), report);
        }
        Ok(h)
    }
}

impl History {
    /// What a store's `prune` does to one validator, as a pure reference (the stores prune all
    /// validators set-based in SQL): records more than `keep_epochs` below the highest one are
    /// dropped and the watermarks raised to the highest dropped values, so nothing that was
    /// refused before is allowed after.
    pub fn prune(&mut self, keep_epochs: u64, slots_per_epoch: u64) {
        let keep_slots = keep_epochs.saturating_mul(slots_per_epoch);
        let cut = |top: i64, keep: u64| top.saturating_sub(i64::try_from(keep).unwrap_or(i64::MAX));
        if let Some(top) = self.blocks.keys().next_back().copied() {
            let below: Vec<i64> = self
                .blocks
                .range(..cut(top, keep_slots))
                .map(|(s, _)| *s)
                .collect();
            for s in &below {
                self.blocks.remove(s);
            }
            self.watermarks.block_slot = max_opt(self.watermarks.block_slot, below.last().copied());
        }
        if let Some(top) = self.attestations.keys().next_back().copied() {
            let below: Vec<i64> = self
                .attestations
                .range(..cut(top, keep_epochs))
                .map(|(t, _)| *t)
                .collect();
            let mut max_source = None;
            for t in &below {
                if let Some((s, _)) = self.attestations.remove(t) {
                    max_source = max_opt(max_source, Some(s));
                }
            }
            self.watermarks.att_source = max_opt(self.watermarks.att_source, max_source);
            self.watermarks.att_target = max_opt(self.watermarks.att_target, below.last().copied());
        }
    }
}

/// Add a block record; counts a duplicate or a conflict (which clears the root).
fn add_block(h: &mut History, slot: i64, root: Option<Root>, r: &mut MergeReport, count: bool) {
    match h.blocks.get_mut(&slot) {
        None => {
            h.blocks.insert(slot, root);
            if count {
                r.blocks_added += 1;
            }
        }
        Some(e) if *e == root => r.duplicates += 1,
        Some(e) => {
            *e = None;
            r.conflicts += 1;
        }
    }
}

/// Add an attestation record; on a conflict at the same target, keep the higher source without
/// a root and return the target, which must become a floor.
fn add_attestation(
    h: &mut History,
    s: i64,
    t: i64,
    root: Option<Root>,
    r: &mut MergeReport,
    count: bool,
) -> Option<i64> {
    match h.attestations.get_mut(&t) {
        None => {
            h.attestations.insert(t, (s, root));
            if count {
                r.attestations_added += 1;
            }
            None
        }
        Some((es, er)) if *es == s && *er == root => {
            r.duplicates += 1;
            None
        }
        Some((es, er)) => {
            let source_differs = *es != s;
            *es = (*es).max(s);
            *er = None;
            r.conflicts += 1;
            source_differs.then_some(t)
        }
    }
}

/// Raise the floors to at least `to` (slot, source, target): records below a raised floor are
/// dropped, and the watermarks take over what they covered.
fn raise_floors(h: &mut History, to: (Option<i64>, Option<i64>, Option<i64>), r: &mut MergeReport) {
    let (fb, fs, ft) = h.floors();
    let (fb, fs, ft) = (max_opt(fb, to.0), max_opt(fs, to.1), max_opt(ft, to.2));
    if let Some(fb) = fb {
        let below: Vec<i64> = h.blocks.range(..fb).map(|(s, _)| *s).collect();
        r.below_floor += below.len() as u64;
        for s in below {
            h.blocks.remove(&s);
        }
        // The lowest record enforces the floor when it sits on it; otherwise the watermark must.
        if h.blocks.keys().next() != Some(&fb) {
            h.watermarks.block_slot = max_opt(h.watermarks.block_slot, Some(fb));
        }
    }
    if let Some(ft) = ft {
        let below: Vec<i64> = h.attestations.range(..ft).map(|(t, _)| *t).collect();
        r.below_floor += below.len() as u64;
        let mut dropped_source = None;
        for t in below {
            if let Some((s, _)) = h.attestations.remove(&t) {
                dropped_source = max_opt(dropped_source, Some(s));
            }
        }
        let source_floor = max_opt(fs, dropped_source);
        let min_source = h.attestations.values().map(|(s, _)| *s).min();
        let covered_by_records = h.attestations.keys().next() == Some(&ft)
            && match (source_floor, min_source) {
                (Some(f), Some(m)) => m >= f,
                (None, _) => true,
                (Some(_), None) => false,
            };
        if !covered_by_records {
            // A watermark is one virtual record (source, target): set both.
            h.watermarks.att_target = max_opt(h.watermarks.att_target, Some(ft));
            // Without any source to go by, the strictest virtual record: source = target.
            h.watermarks.att_source =
                max_opt(h.watermarks.att_source, Some(source_floor.unwrap_or(ft)));
        }
    }
}

/// Merge an imported history into a stored one. The result is what must be stored.
pub fn merge(stored: History, incoming: &History, report: &mut MergeReport) -> History {
    // Both sides' floors are taken before any record is added, and the higher of each applies:
    // an imported record never lowers a stored floor, and an imported file's lowest records are
    // floors too (EIP-3076 conditions 2, 4 and 5 hold for every file imported): a file may be
    // minimal, its one record standing for everything its signer did below it, so nothing in
    // the gap between an older stored history and a newer imported one is signed.
    let (sb, ss, st) = stored.floors();
    let (ib, is, it) = incoming.floors();
    let (ib, is, it) = (max_opt(sb, ib), max_opt(ss, is), max_opt(st, it));
    let mut h = stored;
    let mut conflict_floor = None;
    for (slot, root) in &incoming.blocks {
        add_block(&mut h, *slot, *root, report, true);
    }
    for (t, (s, root)) in &incoming.attestations {
        if let Some(t) = add_attestation(&mut h, *s, *t, *root, report, true) {
            conflict_floor = max_opt(conflict_floor, Some(t));
        }
    }
    // The incoming watermarks are floors too.
    let wm = incoming.watermarks;
    raise_floors(
        &mut h,
        (
            max_opt(ib, wm.block_slot),
            max_opt(is, wm.att_source),
            max_opt(max_opt(it, wm.att_target), conflict_floor),
        ),
        report,
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(b: u8) -> Option<Root> {
        Some(Root::from([b; 32]))
    }

    fn hist(blocks: &[(i64, u8)], atts: &[(i64, i64, u8)]) -> History {
        History {
            blocks: blocks.iter().map(|(s, r)| (*s, root(*r))).collect(),
            attestations: atts.iter().map(|(s, t, r)| (*t, (*s, root(*r)))).collect(),
            watermarks: Watermarks::default(),
        }
    }

    /// Would the rules let `(s, t)` be signed against `h`? (The stored-rule subset that floors
    /// and surround checks decide; used to state the merge's guarantees.)
    fn att_allowed(h: &History, s: i64, t: i64) -> bool {
        if h.attestations.contains_key(&t) {
            return false;
        }
        let surround = h
            .attestations
            .iter()
            .any(|(et, (es, _))| (*es < s && *et > t) || (*es > s && *et < t));
        let (_, fs, ft) = h.floors();
        !surround && fs.is_none_or(|f| s >= f) && ft.is_none_or(|f| t > f)
    }

    fn block_allowed(h: &History, slot: i64) -> bool {
        let (fb, _, _) = h.floors();
        !h.blocks.contains_key(&slot) && fb.is_none_or(|f| slot > f)
    }

    #[test]
    fn a_single_import_into_nothing_changes_nothing() {
        let file = hist(&[(10, 1), (20, 2)], &[(1, 2, 1), (2, 3, 2)]);
        let mut r = MergeReport::default();
        let out = merge(History::default(), &file, &mut r);
        assert_eq!(out, file);
        assert_eq!((r.blocks_added, r.attestations_added), (2, 2));
        assert!(block_allowed(&out, 15));
    }

    #[test]
    fn an_older_import_never_lowers_a_floor() {
        // A minimal history first (one record at the top), then an older, fuller one.
        let mut r = MergeReport::default();
        let first = merge(
            History::default(),
            &hist(&[(100, 1)], &[(49, 50, 1)]),
            &mut r,
        );
        let older = hist(&[(10, 2), (20, 3)], &[(9, 10, 2), (19, 20, 3)]);
        let out = merge(first.clone(), &older, &mut r);
        for slot in [11, 50, 99, 100] {
            assert!(
                !block_allowed(&out, slot),
                "block {slot} below the first floor"
            );
        }
        for (s, t) in [(20, 21), (30, 40), (48, 49), (49, 50)] {
            assert!(
                !att_allowed(&out, s, t),
                "vote ({s},{t}) below the first floor"
            );
        }
        assert!(block_allowed(&out, 101));
        assert!(att_allowed(&out, 50, 51));
        // In the other order too: the newer file's floor leaves no gap to sign in (it may be a
        // minimal history of a signer that signed in that gap).
        let out2 = merge(
            merge(History::default(), &older, &mut r),
            &hist(&[(100, 1)], &[(49, 50, 1)]),
            &mut r,
        );
        for slot in [9, 10, 20, 50, 99, 100] {
            assert!(!block_allowed(&out2, slot), "block {slot} in the gap");
        }
        for (s, t) in [(8, 9), (9, 10), (19, 20), (20, 21), (30, 40), (48, 49)] {
            assert!(!att_allowed(&out2, s, t), "vote ({s},{t}) in the gap");
        }
        assert!(block_allowed(&out2, 101));
        assert!(att_allowed(&out2, 50, 51));
    }

    #[test]
    fn a_source_conflict_never_unsurrounds_a_vote() {
        // Stored (5, 10); imported (2, 10): same target, lower source. The vote (3, 9) is
        // surrounded by (2, 10) but not by (5, 10); it must stay refused.
        let mut r = MergeReport::default();
        let stored = merge(
            History::default(),
            &hist(&[], &[(1, 2, 9), (5, 10, 1)]),
            &mut r,
        );
        let out = merge(stored, &hist(&[], &[(2, 10, 2)]), &mut r);
        assert_eq!(r.conflicts, 1);
        for (s, t) in [(3, 9), (4, 9), (2, 9), (5, 10), (1, 11), (4, 11)] {
            assert!(!att_allowed(&out, s, t), "({s},{t}) must stay refused");
        }
        assert!(att_allowed(&out, 5, 11));
        // The same inside one file.
        let mut r = MergeReport::default();
        let v = ValidatorHistory {
            pubkey: Default::default(),
            signed_blocks: vec![],
            signed_attestations: [(1u64, 2u64), (5, 10), (2, 10)]
                .iter()
                .map(|(s, t)| crate::interchange::SignedAttestation {
                    source_epoch: signward_core::bytes::Uint64(*s),
                    target_epoch: signward_core::bytes::Uint64(*t),
                    signing_root: None,
                })
                .collect(),
        };
        let h = History::from_interchange(&v, &mut r).unwrap();
        for (s, t) in [(3, 9), (4, 9), (1, 11), (4, 11)] {
            assert!(!att_allowed(&h, s, t), "({s},{t}) must stay refused");
        }
    }

    #[test]
    fn a_disagreeing_block_keeps_no_root() {
        let mut r = MergeReport::default();
        let out = merge(hist(&[(10, 1)], &[]), &hist(&[(10, 2)], &[]), &mut r);
        assert_eq!(out.blocks.get(&10), Some(&None));
        assert_eq!(r.conflicts, 1);
        let again = merge(out.clone(), &hist(&[(10, 2)], &[]), &mut r);
        assert_eq!(again.blocks.get(&10), Some(&None));
    }

    #[test]
    fn exact_duplicates_are_counted_not_changed() {
        let mut r = MergeReport::default();
        let h = hist(&[(10, 1)], &[(1, 2, 1)]);
        let out = merge(h.clone(), &h, &mut r);
        assert_eq!(out, h);
        assert_eq!(r.duplicates, 2);
    }
}
