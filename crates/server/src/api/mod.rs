//! HTTP handlers, one module per API family.

pub mod admin;
pub mod eth2;
pub mod health;
pub mod keymanager;
pub mod readytrader;
pub mod rpc;
