//! The EVM policy engine. A policy is a TOML document of rule sets: `[defaults]`, per key
//! (`[keys."0xADDRESS"]`, replacing the defaults for that key) and per credential
//! (`[tokens."NAME"]`, applied *in addition*). A request is allowed only when every applicable
//! rule set allows it; anything a rule set does not allow is refused, with one reason code per
//! rule. Spend windows are declared here and enforced, with shared state, by the caller.
//!
//! Pure: parsing and evaluation only, no I/O.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod address;
mod args;
mod eval;
mod intent;
mod model;

pub use address::{parse_address, AddressError};
pub use args::{ArgRule, Constraint, FieldRule, FunctionRule, Party};
pub use eval::{evaluate, Charge, Check, Evaluation, Request, TxFacts, TypedFacts};
pub use intent::Intent;
pub use model::{
    toml_error, CallRule, Origin, Payee, Policy, PolicyError, Recipients, RuleSet, SpendWindow,
    TypedRule, PERMIT2,
};
