//! Argument rules: constraints on the arguments of a contract function (decoded from calldata by
//! its Solidity signature with alloy's dynamic ABI) and on the fields of EIP-712 messages.
//!
//! A constraint is declared per argument (or message field) by name, as an inline table with
//! exactly one of:
//! - `in = ["0x…", "self"]`: an address in the set (`"self"` is the signing key itself);
//! - `equals = "0x…"` or `equals = "self"`: one address;
//! - `max = "N"`: an unsigned integer at most N;
//! - `each_in = [...]`: an array of addresses, every element in the set (a swap path);
//! - `max_from_now = SECONDS`: an unsigned integer (a deadline, a unix time), not 0 (which many
//!   contracts read as "never") and at most now + SECONDS.
//!
//! Arguments a rule does not name are not constrained, and `policy check` says so.

use std::collections::{BTreeMap, BTreeSet};

use alloy_dyn_abi::{DynSolType, DynSolValue, JsonAbiExt, Specifier};
use alloy_json_abi::{Function, Param};
use alloy_primitives::{Address, U256};
use serde::Deserialize;

use crate::model::{bad, Amount, PolicyError};

/// An address in a rule: a literal one, or the signing key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Party {
    /// The key that signs.
    Signer,
    /// This address.
    At(Address),
}

impl Party {
    fn parse(field: &str, s: &str) -> Result<Self, PolicyError> {
        if s.trim() == "self" {
            return Ok(Party::Signer);
        }
        crate::parse_address(s)
            .map(Party::At)
            .map_err(|e| bad(field, format!("{s:?}: {e}")))
    }

    fn is(&self, a: &Address, signer: &Address) -> bool {
        match self {
            Party::Signer => a == signer,
            Party::At(x) => a == x,
        }
    }
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Party::Signer => f.write_str("self"),
            Party::At(a) => write!(f, "{a}"),
        }
    }
}

/// A set of parties, as written in a policy.
pub(crate) fn parties(field: &str, list: &[String]) -> Result<BTreeSet<Party>, PolicyError> {
    list.iter().map(|s| Party::parse(field, s)).collect()
}

fn show(set: &BTreeSet<Party>) -> String {
    let v: Vec<String> = set.iter().map(|p| p.to_string()).collect();
    format!("{{{}}}", v.join(", "))
}

/// One constraint on one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// An address in the set.
    In(BTreeSet<Party>),
    /// An unsigned integer at most this.
    Max(U256),
    /// An array of addresses, each in the set.
    EachIn(BTreeSet<Party>),
    /// An unsigned integer at most now + this many seconds.
    MaxFromNow(u64),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConstraintFile {
    #[serde(default, rename = "in")]
    is_in: Option<Vec<String>>,
    #[serde(default)]
    equals: Option<String>,
    #[serde(default)]
    max: Option<Amount>,
    #[serde(default)]
    each_in: Option<Vec<String>>,
    #[serde(default)]
    max_from_now: Option<u64>,
}

/// The kind of value a constraint applies to, for checking a policy against a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Address,
    Uint,
    AddressArray,
}

impl Constraint {
    pub(crate) fn from_file(field: &str, f: &ConstraintFile) -> Result<Self, PolicyError> {
        let mut found = Vec::new();
        if let Some(l) = &f.is_in {
            found.push(Constraint::In(parties(field, l)?));
        }
        if let Some(e) = &f.equals {
            found.push(Constraint::In(BTreeSet::from([Party::parse(field, e)?])));
        }
        if let Some(m) = &f.max {
            found.push(Constraint::Max(m.to_u256(field)?));
        }
        if let Some(l) = &f.each_in {
            found.push(Constraint::EachIn(parties(field, l)?));
        }
        if let Some(s) = f.max_from_now {
            found.push(Constraint::MaxFromNow(s));
        }
        if found.len() != 1 {
            return Err(bad(
                field,
                "give exactly one of in, equals, max, each_in, max_from_now",
            ));
        }
        let c = found.remove(0);
        if let Constraint::In(s) | Constraint::EachIn(s) = &c {
            if s.is_empty() {
                return Err(bad(
                    field,
                    "an empty set allows nothing; remove the function instead",
                ));
            }
        }
        Ok(c)
    }

    fn kind(&self) -> Kind {
        match self {
            Constraint::In(_) => Kind::Address,
            Constraint::Max(_) | Constraint::MaxFromNow(_) => Kind::Uint,
            Constraint::EachIn(_) => Kind::AddressArray,
        }
    }

    fn describe(&self) -> String {
        match self {
            Constraint::In(s) => format!("in {}", show(s)),
            Constraint::Max(m) => format!("at most {m}"),
            Constraint::EachIn(s) => format!("each in {}", show(s)),
            Constraint::MaxFromNow(s) => format!("not 0, at most now + {s} s"),
        }
    }

    /// Check an address.
    fn address(&self, a: &Address, signer: &Address) -> bool {
        match self {
            Constraint::In(s) => s.iter().any(|p| p.is(a, signer)),
            _ => false,
        }
    }

    /// Check an integer.
    fn uint(&self, v: U256, now_secs: u64) -> bool {
        match self {
            Constraint::Max(m) => v <= *m,
            // 0 means "never" to many contracts (an order's expiration): refused.
            Constraint::MaxFromNow(s) => {
                !v.is_zero() && v <= U256::from(now_secs.saturating_add(*s))
            }
            _ => false,
        }
    }
}

/// A value a constraint looked at, as shown in an explanation.
fn shown(v: &DynSolValue) -> String {
    match v {
        DynSolValue::Address(a) => a.to_string(),
        DynSolValue::Uint(u, _) => u.to_string(),
        DynSolValue::Array(xs) | DynSolValue::FixedArray(xs) => {
            let parts: Vec<String> = xs.iter().take(8).map(shown).collect();
            let more = if xs.len() > 8 { ", …" } else { "" };
            format!("[{}{more}]", parts.join(", "))
        }
        _ => "(value)".into(),
    }
}

/// One argument rule of a function: where the argument is (indices through tuples), its name as
/// written, the reason code a refusal carries, and the constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgRule {
    /// The argument as named in the policy (`to`, `params.recipient`).
    pub name: String,
    path: Vec<usize>,
    /// The reason code when it fails.
    pub code: &'static str,
    /// The constraint.
    pub constraint: Constraint,
}

/// A function that may be called, with rules on its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRule {
    /// The canonical signature (`transfer(address,uint256)`).
    pub signature: String,
    /// Its selector.
    pub selector: [u8; 4],
    function: Function,
    /// Rules on its arguments.
    pub args: Vec<ArgRule>,
}

fn kind_of(ty: &DynSolType) -> Option<Kind> {
    match ty {
        DynSolType::Address => Some(Kind::Address),
        DynSolType::Uint(_) => Some(Kind::Uint),
        DynSolType::Array(inner) | DynSolType::FixedArray(inner, _)
            if **inner == DynSolType::Address =>
        {
            Some(Kind::AddressArray)
        }
        _ => None,
    }
}

/// Find `name` (dotted through tuple components; a number for an unnamed position) among
/// `params`: the index path and the parameter.
fn locate<'a>(params: &'a [Param], name: &str) -> Option<(Vec<usize>, &'a Param)> {
    let mut path = Vec::new();
    let mut here = params;
    let mut found: Option<&Param> = None;
    for part in name.split('.') {
        let i = here
            .iter()
            .position(|p| p.name == part)
            .or_else(|| part.parse::<usize>().ok().filter(|i| *i < here.len()))?;
        path.push(i);
        let p = &here[i];
        found = Some(p);
        here = &p.components;
    }
    found.map(|p| (path, p))
}

impl FunctionRule {
    /// A function by its Solidity signature (`swap(uint256 amountIn, address[] path)`; names
    /// let rules refer to arguments) with rules on its arguments.
    pub(crate) fn new(
        field: &str,
        signature: &str,
        args: Vec<(String, &'static str, Constraint)>,
    ) -> Result<Self, PolicyError> {
        let function = Function::parse(signature.trim()).map_err(|e| {
            bad(
                field,
                format!("{signature:?} is not a Solidity function signature: {e}"),
            )
        })?;
        for p in &function.inputs {
            p.resolve()
                .map_err(|e| bad(field, format!("{signature:?}: argument type {}: {e}", p.ty)))?;
        }
        let mut rules = Vec::new();
        for (name, code, constraint) in args {
            let (path, param) = locate(&function.inputs, &name).ok_or_else(|| {
                bad(
                    field,
                    format!("{} has no argument named {name:?}", function.signature()),
                )
            })?;
            let ty = param
                .resolve()
                .map_err(|e| bad(field, format!("argument {name}: {e}")))?;
            if kind_of(&ty) != Some(constraint.kind()) {
                return Err(bad(
                    field,
                    format!(
                        "argument {name} is {}; constraint `{}` does not apply to it",
                        ty.sol_type_name(),
                        constraint.describe()
                    ),
                ));
            }
            rules.push(ArgRule {
                name,
                path,
                code,
                constraint,
            });
        }
        Ok(FunctionRule {
            signature: function.signature(),
            selector: function.selector().0,
            function,
            args: rules,
        })
    }

    /// Decode `calldata` (selector included) and check every argument rule. `Err`: the calldata
    /// is not a canonical encoding of this function's arguments (extra bytes, dirty padding,
    /// odd offsets): nothing a contract might read differently is signed.
    pub(crate) fn check(
        &self,
        calldata: &[u8],
        signer: &Address,
        now_secs: u64,
    ) -> Result<Vec<(&ArgRule, bool, String)>, String> {
        let body = calldata.get(4..).unwrap_or_default();
        let values = self
            .function
            .abi_decode_input(body)
            .map_err(|_| format!("calldata does not decode as {}", self.signature))?;
        let again = self
            .function
            .abi_encode_input_raw(&values)
            .map_err(|_| format!("calldata does not decode as {}", self.signature))?;
        if again != body {
            return Err(format!(
                "calldata is not the canonical encoding of {}",
                self.signature
            ));
        }
        let mut out = Vec::new();
        for rule in &self.args {
            let v = value_at(&values, &rule.path);
            let ok = match (v, &rule.constraint) {
                (Some(DynSolValue::Address(a)), c) => c.address(a, signer),
                (Some(DynSolValue::Uint(u, _)), c) => c.uint(*u, now_secs),
                (
                    Some(DynSolValue::Array(xs) | DynSolValue::FixedArray(xs)),
                    Constraint::EachIn(s),
                ) => xs.iter().all(|x| match x {
                    DynSolValue::Address(a) => s.iter().any(|p| p.is(a, signer)),
                    _ => false,
                }),
                _ => false,
            };
            let seen = v.map(shown).unwrap_or_else(|| "(absent)".into());
            let name = self.signature.split('(').next().unwrap_or("");
            out.push((
                rule,
                ok,
                format!(
                    "{name}.{} = {seen} ({})",
                    rule.name,
                    rule.constraint.describe()
                ),
            ));
        }
        Ok(out)
    }

    /// The `amount` argument of `transfer` or `transferFrom` when `calldata` calls this function
    /// (token windows count it); `None` for anything else.
    pub(crate) fn moved(&self, calldata: &[u8]) -> Option<U256> {
        let name = self.signature.split('(').next()?;
        if !matches!(name, "transfer" | "transferFrom") || calldata.get(..4)? != self.selector {
            return None;
        }
        let values = self.function.abi_decode_input(calldata.get(4..)?).ok()?;
        match values.last()? {
            DynSolValue::Uint(u, _) => Some(*u),
            _ => None,
        }
    }

    /// Names of arguments no rule constrains (shown by `policy check`).
    pub(crate) fn unconstrained(&self) -> Vec<String> {
        self.function
            .inputs
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.args.iter().any(|r| r.path.first() == Some(i)))
            .map(|(i, p)| {
                if p.name.is_empty() {
                    i.to_string()
                } else {
                    p.name.clone()
                }
            })
            .collect()
    }
}

fn value_at<'a>(values: &'a [DynSolValue], path: &[usize]) -> Option<&'a DynSolValue> {
    let (first, rest) = path.split_first()?;
    let mut v = values.get(*first)?;
    for i in rest {
        v = match v {
            DynSolValue::Tuple(xs) => xs.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// A constraint on an EIP-712 message field, by its path (`spender`, `details.token`,
/// `details[].amount` for every element of an array of structs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRule {
    /// The path as written.
    pub path: String,
    /// The reason code when it fails.
    pub code: &'static str,
    /// The constraint.
    pub constraint: Constraint,
}

impl FieldRule {
    pub(crate) fn new(path: &str, code: &'static str, constraint: Constraint) -> Self {
        FieldRule {
            path: path.to_string(),
            code,
            constraint,
        }
    }

    /// Check the field in `message` (the JSON message of typed data; addresses as hex strings,
    /// integers as decimal or hex strings or JSON numbers). A field that is absent, or not of
    /// the kind the constraint needs, fails.
    pub(crate) fn check(
        &self,
        message: &serde_json::Value,
        signer: &Address,
        now_secs: u64,
    ) -> (bool, String) {
        let mut found = Vec::new();
        collect(
            message,
            &self.path.split('.').collect::<Vec<_>>(),
            &mut found,
        );
        if found.is_empty() {
            return (
                false,
                format!("{} is absent ({})", self.path, self.constraint.describe()),
            );
        }
        let mut ok = true;
        let mut seen = Vec::new();
        for v in &found {
            let pass = match &self.constraint {
                Constraint::In(_) => match json_address(v) {
                    Some(a) => {
                        seen.push(a.to_string());
                        self.constraint.address(&a, signer)
                    }
                    None => false,
                },
                Constraint::Max(_) | Constraint::MaxFromNow(_) => match json_uint(v) {
                    Some(u) => {
                        seen.push(u.to_string());
                        self.constraint.uint(u, now_secs)
                    }
                    None => false,
                },
                Constraint::EachIn(s) => match v.as_array() {
                    Some(xs) => xs.iter().all(|x| {
                        json_address(x).is_some_and(|a| {
                            seen.push(a.to_string());
                            s.iter().any(|p| p.is(&a, signer))
                        })
                    }),
                    None => false,
                },
            };
            ok &= pass;
        }
        seen.truncate(8);
        (
            ok,
            format!(
                "{} = {} ({})",
                self.path,
                seen.join(", "),
                self.constraint.describe()
            ),
        )
    }
}

/// Every value at `path` (`name[]` steps into each element of an array).
fn collect<'a>(v: &'a serde_json::Value, path: &[&str], out: &mut Vec<&'a serde_json::Value>) {
    let Some((first, rest)) = path.split_first() else {
        out.push(v);
        return;
    };
    // Every value is visited (each appears once in the message, so this is linear in its size):
    // a field the hash covers is never left unchecked.
    match first.strip_suffix("[]") {
        Some(name) => {
            if let Some(xs) = v.get(name).and_then(|x| x.as_array()) {
                for x in xs {
                    collect(x, rest, out);
                }
            }
        }
        None => {
            if let Some(x) = v.get(*first) {
                collect(x, rest, out);
            }
        }
    }
}

fn json_address(v: &serde_json::Value) -> Option<Address> {
    v.as_str().and_then(|s| crate::parse_address(s).ok())
}

fn json_uint(v: &serde_json::Value) -> Option<U256> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().map(U256::from),
        serde_json::Value::String(s) => {
            let s = s.trim();
            if s.is_empty() || s.starts_with('-') {
                return None;
            }
            s.parse::<U256>().ok()
        }
        _ => None,
    }
}

/// Argument constraints as written under `args = { name = { … } }`.
pub(crate) type ArgsFile = BTreeMap<String, ConstraintFile>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_arguments_are_checked_against_each_other() {
        let sig = "swapExactTokensForTokens(uint256 amountIn, uint256 amountOutMin, address[] path, address to, uint256 deadline)";
        let r = FunctionRule::new(
            "f",
            sig,
            vec![(
                "path".into(),
                "argument_not_allowed",
                Constraint::EachIn(BTreeSet::from([Party::Signer])),
            )],
        )
        .unwrap();
        assert_eq!(r.selector, [0x38, 0xed, 0x17, 0x39]);
        assert_eq!(
            r.unconstrained(),
            ["amountIn", "amountOutMin", "to", "deadline"]
        );
        // A constraint that does not fit the argument's type, or names none.
        for (name, c) in [
            ("to", Constraint::Max(U256::from(1))),
            ("amountIn", Constraint::In(BTreeSet::from([Party::Signer]))),
            ("nothere", Constraint::Max(U256::from(1))),
        ] {
            assert!(FunctionRule::new("f", sig, vec![(name.into(), "x", c)]).is_err());
        }
        assert!(FunctionRule::new("f", "not a signature(", vec![]).is_err());
    }
}
