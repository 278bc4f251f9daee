//! EIP-3076 slashing-protection interchange files (import, `--slashing-protection-import`, the
//! key-manager API): `signward_slashing::interchange::read` with a callback that accepts every
//! event, and on each validator entry the pure import steps `History::from_interchange` and
//! `history::merge` (into what earlier entries for the same key produced, as a database would
//! hold it); then `interchange::filter`, and a read-back of what `filter` wrote.
//!
//! Properties checked (from the module docs of crates/slashing/src/history.rs): merging never
//! lowers a floor, and nothing stored before a merge becomes signable after it.
#![no_main]
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use signward_slashing::history::{merge, History, MergeReport};
use signward_slashing::interchange::{self, Event};

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// (block slot, attestation source, attestation target) floors: the watermarks raised by the
/// lowest records, as the history module defines them.
fn floors(h: &History) -> (Option<i64>, Option<i64>, Option<i64>) {
    (
        max_opt(h.watermarks.block_slot, h.blocks.keys().next().copied()),
        max_opt(
            h.watermarks.att_source,
            h.attestations.values().map(|(s, _)| *s).min(),
        ),
        max_opt(
            h.watermarks.att_target,
            h.attestations.keys().next().copied(),
        ),
    )
}

fn check_stricter(stored: &History, merged: &History) {
    let (sb, ss, st) = floors(stored);
    let (mb, ms, mt) = floors(merged);
    // `None < Some(_)`: a floor that existed still exists, at the same height or higher.
    assert!(mb >= sb, "block floor lowered: {sb:?} -> {mb:?}");
    assert!(ms >= ss, "source floor lowered: {ss:?} -> {ms:?}");
    assert!(mt >= st, "target floor lowered: {st:?} -> {mt:?}");
    for slot in stored.blocks.keys() {
        assert!(
            merged.blocks.contains_key(slot) || mb.is_some_and(|f| f >= *slot),
            "stored block at slot {slot} became signable"
        );
    }
    for t in stored.attestations.keys() {
        assert!(
            merged.attestations.contains_key(t) || mt.is_some_and(|f| f >= *t),
            "stored attestation with target {t} became signable"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut stored: BTreeMap<_, History> = BTreeMap::new();
    let mut report = MergeReport::default();
    let _ = interchange::read(data, |event| {
        match event {
            Event::Metadata(m) => {
                let _ = interchange::check_metadata(&m);
            }
            Event::Validator(v) => {
                if let Ok(h) = History::from_interchange(&v, &mut report) {
                    let before = stored.remove(&v.pubkey).unwrap_or_default();
                    let after = merge(before.clone(), &h, &mut report);
                    check_stricter(&before, &after);
                    stored.insert(v.pubkey, after);
                }
            }
        }
        Ok(())
    });
    // Keep about half of the keys; what filter writes must read back.
    if let Ok((doc, kept)) = interchange::filter(data, |pk| pk.0[0] & 1 == 0) {
        let mut n = 0usize;
        interchange::read(&doc[..], |event| {
            if let Event::Validator(v) = event {
                if !v.signed_blocks.is_empty() || !v.signed_attestations.is_empty() {
                    n += 1;
                }
            }
            Ok(())
        })
        .expect("a document written by filter reads back");
        assert_eq!(n, kept.len());
    }
});
