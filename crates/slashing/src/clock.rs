//! The chain-clock window: with a known genesis time, refuse slots and epochs too far ahead of
//! wall-clock time, so a confused client cannot push a validator's history into the future and
//! lock it out of signing today's duties.

use crate::decision::{Refusal, Slashable};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// The network's slot clock, with how far ahead of it a message may be.
pub struct ChainClock {
    /// Genesis time, Unix seconds.
    pub genesis_time: u64,
    /// Seconds per slot.
    pub seconds_per_slot: u64,
    /// Slots per epoch.
    pub slots_per_epoch: u64,
    /// How many epochs past the current one are still accepted.
    pub max_future_epochs: u64,
}

impl ChainClock {
    /// The current slot at `now` (Unix seconds); slot 0 before genesis.
    pub fn current_slot(&self, now: u64) -> u64 {
        now.saturating_sub(self.genesis_time) / self.seconds_per_slot.max(1)
    }

    /// The first (epoch, slot) refused at `now`: an attestation's target epoch and a block's
    /// slot must lie below them (Web3Signer's "high watermark" semantics). Saturates.
    pub fn high_watermark(&self, now: u64) -> (u64, u64) {
        let spe = self.slots_per_epoch.max(1);
        let current_slot = self.current_slot(now);
        let epoch = (current_slot / spe)
            .saturating_add(self.max_future_epochs)
            .saturating_add(1);
        let slot = current_slot
            .saturating_add(self.max_future_epochs.saturating_mul(spe))
            .saturating_add(1);
        (epoch, slot)
    }

    /// `Some(TooFarInFuture)` when `slashable` lies beyond the window at `now`.
    pub fn check(&self, slashable: Slashable, now: u64) -> Option<Refusal> {
        let spe = self.slots_per_epoch.max(1);
        let current_slot = self.current_slot(now);
        let too_far = match slashable {
            Slashable::Block { slot } => {
                slot > current_slot.saturating_add(self.max_future_epochs.saturating_mul(spe))
            }
            Slashable::Attestation { target_epoch, .. } => {
                target_epoch > (current_slot / spe).saturating_add(self.max_future_epochs)
            }
        };
        too_far.then_some(Refusal::TooFarInFuture)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_edges() {
        let c = ChainClock {
            genesis_time: 1000,
            seconds_per_slot: 12,
            slots_per_epoch: 32,
            max_future_epochs: 2,
        };
        let now = 1000 + 12 * 320; // slot 320, epoch 10
        assert_eq!(c.current_slot(now), 320);
        assert_eq!(c.check(Slashable::Block { slot: 320 + 64 }, now), None);
        assert_eq!(
            c.check(Slashable::Block { slot: 320 + 65 }, now),
            Some(Refusal::TooFarInFuture)
        );
        let att = |t| Slashable::Attestation {
            source_epoch: 0,
            target_epoch: t,
        };
        assert_eq!(c.check(att(12), now), None);
        assert_eq!(c.check(att(13), now), Some(Refusal::TooFarInFuture));
        // The high watermark is the first refused epoch and slot.
        assert_eq!(c.high_watermark(now), (13, 320 + 65));
        // Before genesis everything beyond the first epochs is refused.
        assert_eq!(c.check(att(3), 0), Some(Refusal::TooFarInFuture));
        assert_eq!(
            c.check(Slashable::Block { slot: u64::MAX }, now),
            Some(Refusal::TooFarInFuture)
        );
    }
}
