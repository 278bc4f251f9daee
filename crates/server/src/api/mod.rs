//! HTTP handlers, one module per API family.

pub mod eth2;
pub mod health;
