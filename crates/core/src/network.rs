//! Network configurations: the preset (sizes that change SSZ shapes), the genesis fork version
//! (used for DEPOSIT-style and builder domains), genesis facts, and the fork schedule.

use crate::bytes::{Root, Version};
use crate::request::ForkName;
use crate::CoreError;

/// The preset values that change the shape of what we hash or how epochs are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// `mainnet` or `minimal`.
    pub name: &'static str,
    /// SLOTS_PER_EPOCH.
    pub slots_per_epoch: u64,
    /// SYNC_COMMITTEE_SIZE.
    pub sync_committee_size: u64,
    /// SYNC_COMMITTEE_SUBNET_COUNT.
    pub sync_committee_subnet_count: u64,
    /// MAX_COMMITTEES_PER_SLOT.
    pub max_committees_per_slot: u64,
    /// MAX_VALIDATORS_PER_COMMITTEE.
    pub max_validators_per_committee: u64,
    /// MAX_PROPOSER_SLASHINGS.
    pub max_proposer_slashings: u64,
    /// MAX_ATTESTER_SLASHINGS.
    pub max_attester_slashings: u64,
    /// MAX_ATTESTATIONS.
    pub max_attestations: u64,
    /// MAX_DEPOSITS.
    pub max_deposits: u64,
    /// MAX_VOLUNTARY_EXITS.
    pub max_voluntary_exits: u64,
}

impl Preset {
    /// The mainnet preset.
    pub const MAINNET: Preset = Preset {
        name: "mainnet",
        slots_per_epoch: 32,
        sync_committee_size: 512,
        sync_committee_subnet_count: 4,
        max_committees_per_slot: 64,
        max_validators_per_committee: 2048,
        max_proposer_slashings: 16,
        max_attester_slashings: 2,
        max_attestations: 128,
        max_deposits: 16,
        max_voluntary_exits: 16,
    };

    /// The minimal preset (devnets and tests).
    pub const MINIMAL: Preset = Preset {
        name: "minimal",
        slots_per_epoch: 8,
        sync_committee_size: 32,
        sync_committee_subnet_count: 4,
        max_committees_per_slot: 4,
        max_validators_per_committee: 2048,
        max_proposer_slashings: 16,
        max_attester_slashings: 2,
        max_attestations: 128,
        max_deposits: 16,
        max_voluntary_exits: 16,
    };

    /// Bits in a sync committee contribution's `aggregation_bits`.
    pub fn sync_subcommittee_size(&self) -> u64 {
        self.sync_committee_size / self.sync_committee_subnet_count
    }
}

/// One scheduled fork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkEntry {
    /// The fork's name, lowercase (`altair`, ...).
    pub name: &'static str,
    /// Its fork version.
    pub version: Version,
    /// Its activation epoch.
    pub epoch: u64,
}

/// A network the signer serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The network's name.
    pub name: String,
    /// Its preset.
    pub preset: Preset,
    /// Its genesis fork version.
    pub genesis_fork_version: Version,
    /// Unix time of genesis, when known (the chain clock of slashing protection needs it).
    /// A `config.yaml` never gives it: see [`NetworkConfig::apply_genesis`].
    pub genesis_time: Option<u64>,
    /// Where `genesis_time` came from.
    pub genesis_time_source: Option<GenesisSource>,
    /// `MIN_GENESIS_TIME` of a `config.yaml`: a lower bound of genesis time (the spec refuses a
    /// genesis state before it), never genesis time itself.
    pub min_genesis_time: Option<u64>,
    /// Slot duration in seconds.
    pub seconds_per_slot: u64,
    /// The genesis validators root, when known.
    pub genesis_validators_root: Option<Root>,
    /// Forks after genesis, ordered by epoch. Unscheduled forks are left out.
    pub forks: Vec<ForkEntry>,
}

/// Fork names in activation order, with the config keys that hold their version and epoch.
const FORK_KEYS: &[(&str, &str, &str)] = &[
    ("altair", "ALTAIR_FORK_VERSION", "ALTAIR_FORK_EPOCH"),
    (
        "bellatrix",
        "BELLATRIX_FORK_VERSION",
        "BELLATRIX_FORK_EPOCH",
    ),
    ("capella", "CAPELLA_FORK_VERSION", "CAPELLA_FORK_EPOCH"),
    ("deneb", "DENEB_FORK_VERSION", "DENEB_FORK_EPOCH"),
    ("electra", "ELECTRA_FORK_VERSION", "ELECTRA_FORK_EPOCH"),
    ("fulu", "FULU_FORK_VERSION", "FULU_FORK_EPOCH"),
];

/// A built-in network from its constants (mainnet preset).
fn known(
    name: &str,
    genesis_fork_version: [u8; 4],
    genesis_time: u64,
    genesis_validators_root: &str,
    forks: &[(&'static str, [u8; 4], u64)],
) -> NetworkConfig {
    NetworkConfig {
        name: name.into(),
        preset: Preset::MAINNET,
        genesis_fork_version: genesis_fork_version.into(),
        genesis_time: Some(genesis_time),
        genesis_time_source: Some(GenesisSource::BuiltIn),
        min_genesis_time: None,
        seconds_per_slot: 12,
        genesis_validators_root: genesis_validators_root.parse().ok(),
        forks: forks
            .iter()
            .map(|(name, version, epoch)| ForkEntry {
                name,
                version: (*version).into(),
                epoch: *epoch,
            })
            .collect(),
    }
}

/// Where a network's genesis time comes from, in precedence order (highest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GenesisSource {
    /// `--genesis-time` (or `genesis-time` in the config file).
    Flag,
    /// The genesis `BeaconState` (`genesis.ssz`) beside `config.yaml`.
    GenesisSsz,
    /// A beacon API genesis response (`genesis.json`) beside `config.yaml`.
    GenesisJson,
    /// The constants of a built-in network.
    BuiltIn,
}

impl GenesisSource {
    /// A stable name for logs, `/healthcheck` and `doctor`.
    pub fn as_str(&self) -> &'static str {
        match self {
            GenesisSource::Flag => "flag",
            GenesisSource::GenesisSsz => "genesis.ssz",
            GenesisSource::GenesisJson => "genesis.json",
            GenesisSource::BuiltIn => "built-in",
        }
    }
}

/// The bytes of a `BeaconState` that hold `genesis_time` (uint64 little-endian at offset 0) and
/// `genesis_validators_root` (32 bytes at offset 8): read no more than this from `genesis.ssz`.
pub const GENESIS_SSZ_PREFIX_LEN: usize = 40;

/// 2020-01-01T00:00:00Z. No real consensus chain started before it; a genesis time earlier than
/// this (0 included) is a placeholder, and a chain clock built on it never refuses anything.
pub const PLAUSIBLE_GENESIS_AFTER: u64 = 1_577_836_800;

/// The genesis facts one source states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesisFacts {
    /// Where these facts come from.
    pub source: GenesisSource,
    /// Genesis time, Unix seconds.
    pub genesis_time: u64,
    /// The genesis validators root, when the source states it.
    pub genesis_validators_root: Option<Root>,
    /// The genesis fork version, when the source states it.
    pub genesis_fork_version: Option<Version>,
}

impl GenesisFacts {
    /// `--genesis-time`: a time only.
    pub fn from_flag(genesis_time: u64) -> Self {
        GenesisFacts {
            source: GenesisSource::Flag,
            genesis_time,
            genesis_validators_root: None,
            genesis_fork_version: None,
        }
    }

    /// The fixed prefix of a genesis `BeaconState` in SSZ (`genesis.ssz`). Only the first
    /// [`GENESIS_SSZ_PREFIX_LEN`] bytes are looked at; fewer is an error (no state is that short).
    pub fn from_state_ssz(bytes: &[u8]) -> Result<Self, CoreError> {
        let prefix = bytes.get(..GENESIS_SSZ_PREFIX_LEN).ok_or_else(|| {
            CoreError::InvalidNetwork(format!(
                "genesis.ssz is {} bytes; a BeaconState starts with {GENESIS_SSZ_PREFIX_LEN} \
                 bytes of genesis_time and genesis_validators_root",
                bytes.len()
            ))
        })?;
        let mut time = [0u8; 8];
        time.copy_from_slice(&prefix[..8]);
        let mut root = [0u8; 32];
        root.copy_from_slice(&prefix[8..GENESIS_SSZ_PREFIX_LEN]);
        Ok(GenesisFacts {
            source: GenesisSource::GenesisSsz,
            genesis_time: u64::from_le_bytes(time),
            genesis_validators_root: Some(root.into()),
            genesis_fork_version: None,
        })
    }

    /// A beacon API genesis document (`genesis.json`): the `/eth/v1/beacon/genesis` response
    /// `{"data": {"genesis_time", "genesis_validators_root", "genesis_fork_version"}}` or its bare
    /// `data` object. `Ok(None)` when the JSON is not such a document (an execution-layer
    /// genesis.json, which many network repositories keep under the same name, has neither
    /// `data` nor `genesis_time`).
    pub fn from_beacon_json(text: &str) -> Result<Option<Self>, CoreError> {
        let bad = |what: &str| CoreError::InvalidNetwork(format!("genesis.json: {what}"));
        let v: serde_json::Value = serde_json::from_str(text).map_err(|_| bad("not valid JSON"))?;
        let obj = match v.get("data") {
            Some(d) => d,
            None if v.get("genesis_time").is_some() => &v,
            None if v.is_object() => return Ok(None),
            None => return Err(bad("not a JSON object")),
        };
        let genesis_time = match obj.get("genesis_time") {
            Some(serde_json::Value::String(s)) => s.parse::<u64>().ok(),
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            _ => return Err(bad("genesis_time is missing")),
        }
        .ok_or_else(|| bad("genesis_time is not an unsigned 64-bit number of seconds"))?;
        let genesis_validators_root = match obj.get("genesis_validators_root") {
            None | Some(serde_json::Value::Null) => None,
            Some(r) => Some(
                r.as_str()
                    .and_then(|r| r.parse::<Root>().ok())
                    .ok_or_else(|| bad("genesis_validators_root is not a 32-byte hex root"))?,
            ),
        };
        let genesis_fork_version = match obj.get("genesis_fork_version") {
            None | Some(serde_json::Value::Null) => None,
            Some(f) => Some(
                f.as_str()
                    .and_then(|f| f.parse::<Version>().ok())
                    .ok_or_else(|| bad("genesis_fork_version is not a 4-byte hex version"))?,
            ),
        };
        Ok(Some(GenesisFacts {
            source: GenesisSource::GenesisJson,
            genesis_time,
            genesis_validators_root,
            genesis_fork_version,
        }))
    }
}

impl NetworkConfig {
    /// Ethereum mainnet.
    pub fn mainnet() -> Self {
        known(
            "mainnet",
            [0, 0, 0, 0],
            1_606_824_023,
            "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95",
            &[
                ("altair", [1, 0, 0, 0], 74_240),
                ("bellatrix", [2, 0, 0, 0], 144_896),
                ("capella", [3, 0, 0, 0], 194_048),
                ("deneb", [4, 0, 0, 0], 269_568),
                ("electra", [5, 0, 0, 0], 364_032),
                ("fulu", [6, 0, 0, 0], 411_392),
            ],
        )
    }

    /// The Hoodi test network.
    pub fn hoodi() -> Self {
        known(
            "hoodi",
            [0x10, 0x00, 0x09, 0x10],
            1_742_213_400,
            "0x212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f",
            &[
                ("altair", [0x20, 0x00, 0x09, 0x10], 0),
                ("bellatrix", [0x30, 0x00, 0x09, 0x10], 0),
                ("capella", [0x40, 0x00, 0x09, 0x10], 0),
                ("deneb", [0x50, 0x00, 0x09, 0x10], 0),
                ("electra", [0x60, 0x00, 0x09, 0x10], 2_048),
                ("fulu", [0x70, 0x00, 0x09, 0x10], 50_688),
            ],
        )
    }

    /// The Sepolia test network.
    pub fn sepolia() -> Self {
        known(
            "sepolia",
            [0x90, 0x00, 0x00, 0x69],
            1_655_733_600,
            "0xd8ea171f3c94aea21ebc42a1ed61052acf3f9209c00e4efbaaddac09ed9b8078",
            &[
                ("altair", [0x90, 0x00, 0x00, 0x70], 50),
                ("bellatrix", [0x90, 0x00, 0x00, 0x71], 100),
                ("capella", [0x90, 0x00, 0x00, 0x72], 56_832),
                ("deneb", [0x90, 0x00, 0x00, 0x73], 132_608),
                ("electra", [0x90, 0x00, 0x00, 0x74], 222_464),
                ("fulu", [0x90, 0x00, 0x00, 0x75], 272_640),
            ],
        )
    }

    /// A built-in network by name.
    pub fn builtin(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "mainnet" => Some(Self::mainnet()),
            "hoodi" => Some(Self::hoodi()),
            "sepolia" => Some(Self::sepolia()),
            _ => None,
        }
    }

    /// Parse a consensus-layer `config.yaml` (the flat `KEY: value` file every client ships for
    /// custom and private networks). Only top-level scalar keys are read; lists such as
    /// `BLOB_SCHEDULE` are skipped. `PRESET_BASE` selects `mainnet` or `minimal`.
    pub fn from_config_yaml(name: &str, text: &str) -> Result<Self, CoreError> {
        let mut map = std::collections::HashMap::new();
        for line in text.lines() {
            if line.starts_with(char::is_whitespace) || line.starts_with('-') {
                continue;
            }
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if let Some((k, val)) = line.split_once(':') {
                let val = val.trim().trim_matches(|c| c == '"' || c == '\'');
                if !val.is_empty() {
                    map.insert(k.trim().to_string(), val.to_string());
                }
            }
        }
        let get = |k: &str| map.get(k).map(String::as_str);
        let bad = |what: &str| CoreError::InvalidNetwork(what.to_string());
        let preset = match get("PRESET_BASE").unwrap_or("mainnet") {
            "mainnet" => Preset::MAINNET,
            "minimal" => Preset::MINIMAL,
            _ => return Err(bad("PRESET_BASE must be mainnet or minimal")),
        };
        let version = |k: &str| -> Result<Version, CoreError> {
            get(k)
                .ok_or_else(|| bad(&format!("{k} is missing")))?
                .parse()
                .map_err(|_| bad(&format!("{k} is not a 4-byte hex version")))
        };
        let genesis_fork_version = version("GENESIS_FORK_VERSION")?;
        let mut forks = Vec::new();
        for (fork, vkey, ekey) in FORK_KEYS {
            let Some(epoch) = get(ekey) else { continue };
            let epoch: u64 = epoch
                .parse()
                .map_err(|_| bad(&format!("{ekey} is not a number")))?;
            if epoch == u64::MAX {
                continue; // FAR_FUTURE_EPOCH: not scheduled
            }
            forks.push(ForkEntry {
                name: fork,
                version: version(vkey)?,
                epoch,
            });
        }
        if forks.windows(2).any(|w| w[0].epoch > w[1].epoch) {
            return Err(bad("fork epochs are not in activation order"));
        }
        // MIN_GENESIS_TIME + GENESIS_DELAY is not genesis time: genesis is the first eligible
        // eth1 block's timestamp + GENESIS_DELAY, and most configs carry the preset's 2020 value
        // (mainnet's own config gives 1607428800 for a genesis of 1606824023). Genesis time comes
        // from a flag, genesis.ssz or genesis.json (`apply_genesis`); MIN_GENESIS_TIME is kept
        // only as the lower bound the spec makes it.
        let min_genesis_time = match get("MIN_GENESIS_TIME") {
            Some(t) => Some(
                t.parse::<u64>()
                    .map_err(|_| bad("MIN_GENESIS_TIME is not a number"))?,
            ),
            None => None,
        };
        let seconds_per_slot = match get("SECONDS_PER_SLOT") {
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| bad("SECONDS_PER_SLOT is not a positive number"))?,
            None if preset == Preset::MINIMAL => 6,
            None => 12,
        };
        Ok(NetworkConfig {
            name: name.to_string(),
            preset,
            genesis_fork_version,
            genesis_time: None,
            genesis_time_source: None,
            min_genesis_time,
            seconds_per_slot,
            genesis_validators_root: None,
            forks,
        })
    }

    /// Take genesis time (and the genesis validators root, and check the genesis fork version)
    /// from `facts`, gathered from every source the operator gave. Every source must agree with
    /// every other and with the built-in constants: a disagreement is an error, never a choice.
    /// The time in force is the one of the highest-precedence source (flag > genesis.ssz >
    /// genesis.json > built-in).
    pub fn apply_genesis(&mut self, mut facts: Vec<GenesisFacts>) -> Result<(), CoreError> {
        if let (Some(t), Some(source)) = (self.genesis_time, self.genesis_time_source) {
            facts.push(GenesisFacts {
                source,
                genesis_time: t,
                genesis_validators_root: self.genesis_validators_root,
                genesis_fork_version: Some(self.genesis_fork_version),
            });
        }
        facts.sort_by_key(|f| f.source);
        let Some(first) = facts.first() else {
            return Ok(());
        };
        for f in &facts[1..] {
            if f.genesis_time != first.genesis_time {
                return Err(CoreError::InvalidNetwork(format!(
                    "genesis time disagrees: {} says {}, {} says {}; remove or correct the wrong one",
                    first.source.as_str(),
                    first.genesis_time,
                    f.source.as_str(),
                    f.genesis_time
                )));
            }
        }
        let mut roots = facts
            .iter()
            .filter_map(|f| f.genesis_validators_root.map(|r| (f.source, r)));
        let root = roots.next();
        if let Some((a, ra)) = root {
            if let Some((b, rb)) = roots.find(|(_, r)| *r != ra) {
                return Err(CoreError::InvalidNetwork(format!(
                    "genesis validators root disagrees: {} says {}, {} says {}",
                    a.as_str(),
                    ra.to_hex(),
                    b.as_str(),
                    rb.to_hex()
                )));
            }
        }
        for f in &facts {
            if let Some(v) = f.genesis_fork_version {
                if v != self.genesis_fork_version {
                    return Err(CoreError::InvalidNetwork(format!(
                        "genesis fork version disagrees: the network config says {}, {} says {}",
                        self.genesis_fork_version.to_hex(),
                        f.source.as_str(),
                        v.to_hex()
                    )));
                }
            }
        }
        self.genesis_time = Some(first.genesis_time);
        self.genesis_time_source = Some(first.source);
        self.genesis_validators_root = root.map(|(_, r)| r);
        Ok(())
    }

    /// Why the genesis time in force deserves a warning, if it does: 0 or before 2020 (a
    /// placeholder: the clock window would never refuse anything), or before the config's
    /// `MIN_GENESIS_TIME` (no valid genesis state has that). A genesis in the future is fine:
    /// the chain has not started yet.
    pub fn genesis_time_warning(&self) -> Option<String> {
        let t = self.genesis_time?;
        if t < PLAUSIBLE_GENESIS_AFTER {
            return Some(format!(
                "genesis time {t} is before 2020-01-01: a placeholder, not when this chain \
                 started; the chain-clock window computed from it never refuses anything"
            ));
        }
        match self.min_genesis_time {
            Some(min) if t < min => Some(format!(
                "genesis time {t} is before the config's MIN_GENESIS_TIME {min}: no valid genesis \
                 state has that; check that the genesis time and config.yaml are of one network"
            )),
            _ => None,
        }
    }

    /// `compute_epoch_at_slot`.
    pub fn epoch_at_slot(&self, slot: u64) -> u64 {
        slot / self.preset.slots_per_epoch
    }

    /// The fork scheduled at `epoch`: the last fork whose epoch is at or before it, phase0 before
    /// any.
    pub fn fork_at(&self, epoch: u64) -> ForkName {
        self.forks
            .iter()
            .rev()
            .find(|f| f.epoch <= epoch)
            .and_then(|f| ForkName::from_config_name(f.name))
            .unwrap_or(ForkName::Phase0)
    }

    /// The fork that uses `version` on this network, if any.
    pub fn fork_of_version(&self, version: &Version) -> Option<ForkName> {
        if *version == self.genesis_fork_version {
            return Some(ForkName::Phase0);
        }
        self.forks
            .iter()
            .find(|f| f.version == *version)
            .and_then(|f| ForkName::from_config_name(f.name))
    }

    /// The fork version scheduled at `epoch`.
    pub fn fork_version_at(&self, epoch: u64) -> Version {
        self.forks
            .iter()
            .rev()
            .find(|f| f.epoch <= epoch)
            .map(|f| f.version)
            .unwrap_or(self.genesis_fork_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: [u8; 4]) -> Version {
        x.into()
    }

    #[test]
    fn mainnet_schedule_boundaries() {
        let n = NetworkConfig::mainnet();
        assert_eq!(n.fork_version_at(0), v([0, 0, 0, 0]));
        assert_eq!(n.fork_version_at(74_239), v([0, 0, 0, 0]));
        assert_eq!(n.fork_version_at(74_240), v([1, 0, 0, 0]));
        assert_eq!(n.fork_version_at(411_392), v([6, 0, 0, 0]));
        assert_eq!(n.epoch_at_slot(64), 2);
        assert_eq!(n.fork_at(74_239), ForkName::Phase0);
        assert_eq!(n.fork_at(364_032), ForkName::Electra);
        assert_eq!(n.fork_at(u64::MAX), ForkName::Fulu);
        assert_eq!(n.fork_of_version(&v([5, 0, 0, 0])), Some(ForkName::Electra));
        assert_eq!(n.fork_of_version(&v([0, 0, 0, 0])), Some(ForkName::Phase0));
        assert_eq!(n.fork_of_version(&v([9, 9, 9, 9])), None);
    }

    #[test]
    fn config_yaml_minimal() {
        let text = "PRESET_BASE: 'minimal'\nCONFIG_NAME: 'x'\nGENESIS_FORK_VERSION: 0x00000001\n\
                    ALTAIR_FORK_VERSION: 0x01000001\nALTAIR_FORK_EPOCH: 3 # comment\n\
                    BELLATRIX_FORK_VERSION: 0x02000001\nBELLATRIX_FORK_EPOCH: 18446744073709551615\n\
                    MIN_GENESIS_TIME: 100\nGENESIS_DELAY: 5\nBLOB_SCHEDULE:\n  - EPOCH: 1\n";
        let n = NetworkConfig::from_config_yaml("x", text).unwrap();
        assert_eq!(n.preset, Preset::MINIMAL);
        assert_eq!(n.forks.len(), 1);
        // MIN_GENESIS_TIME + GENESIS_DELAY is not genesis time; MIN_GENESIS_TIME is kept as the
        // lower bound.
        assert_eq!(n.genesis_time, None);
        assert_eq!(n.min_genesis_time, Some(100));
        assert_eq!(n.fork_version_at(2), v([0, 0, 0, 1]));
        assert_eq!(n.fork_version_at(3), v([1, 0, 0, 1]));
        assert!(NetworkConfig::from_config_yaml("x", "PRESET_BASE: gnosis\n").is_err());
        assert!(NetworkConfig::from_config_yaml("x", "PRESET_BASE: mainnet\n").is_err());
    }

    #[test]
    fn config_yaml_genesis_fields_never_overflow_or_become_genesis_time() {
        // Found by fuzz/fuzz_targets/network_config.rs: the sum MIN_GENESIS_TIME + GENESIS_DELAY
        // overflowed. It is no longer computed at all.
        let text = "GENESIS_FORK_VERSION: 0x00000000\nMIN_GENESIS_TIME: 18446744073709551607\n\
                    GENESIS_DELAY: 604800\n";
        let n = NetworkConfig::from_config_yaml("x", text).unwrap();
        assert_eq!(n.genesis_time, None);
        assert_eq!(n.min_genesis_time, Some(18_446_744_073_709_551_607));
        let text = "GENESIS_FORK_VERSION: 0x00000000\nMIN_GENESIS_TIME: 18446744073709551616\n";
        assert!(matches!(
            NetworkConfig::from_config_yaml("x", text),
            Err(CoreError::InvalidNetwork(_))
        ));
    }

    const MAINNET_GVR: &str = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95";

    fn custom() -> NetworkConfig {
        NetworkConfig::from_config_yaml(
            "custom",
            "GENESIS_FORK_VERSION: 0x10000910\nMIN_GENESIS_TIME: 1742212800\nGENESIS_DELAY: 600\n",
        )
        .unwrap()
    }

    fn state_prefix(time: u64, root_byte: u8, len: usize) -> Vec<u8> {
        let mut b = time.to_le_bytes().to_vec();
        b.extend_from_slice(&[root_byte; 32]);
        b.resize(len, 0xee);
        b
    }

    #[test]
    fn genesis_ssz_reads_the_fixed_prefix_only() {
        let f = GenesisFacts::from_state_ssz(&state_prefix(1_742_213_400, 0x21, 40)).unwrap();
        assert_eq!(f.source, GenesisSource::GenesisSsz);
        assert_eq!(f.genesis_time, 1_742_213_400);
        assert_eq!(f.genesis_validators_root, Some([0x21; 32].into()));
        assert_eq!(f.genesis_fork_version, None);
        // Whatever follows the prefix (the rest of the state) is not looked at.
        let long = GenesisFacts::from_state_ssz(&state_prefix(1_742_213_400, 0x21, 4096)).unwrap();
        assert_eq!(long, f);
        // u64::MAX is read as it is (no arithmetic on it here).
        let max = GenesisFacts::from_state_ssz(&state_prefix(u64::MAX, 0, 40)).unwrap();
        assert_eq!(max.genesis_time, u64::MAX);
        for short in [0, 8, 39] {
            let e = GenesisFacts::from_state_ssz(&state_prefix(1, 1, 40)[..short]).unwrap_err();
            assert!(
                matches!(&e, CoreError::InvalidNetwork(m) if m.contains(&format!("{short} bytes"))),
                "{e}"
            );
        }
    }

    #[test]
    fn genesis_json_both_shapes_and_the_execution_layer_file() {
        let data = format!(
            r#"{{"genesis_time":"1606824023","genesis_validators_root":"{MAINNET_GVR}","genesis_fork_version":"0x00000000"}}"#
        );
        let wrapped = format!(r#"{{"data":{data}}}"#);
        for text in [&data, &wrapped] {
            let f = GenesisFacts::from_beacon_json(text).unwrap().unwrap();
            assert_eq!(f.source, GenesisSource::GenesisJson);
            assert_eq!(f.genesis_time, 1_606_824_023);
            assert_eq!(f.genesis_validators_root, MAINNET_GVR.parse().ok());
            assert_eq!(f.genesis_fork_version, Some(v([0, 0, 0, 0])));
        }
        // A number is accepted as well as the API's decimal string.
        let f = GenesisFacts::from_beacon_json(r#"{"genesis_time":1606824023}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            (f.genesis_time, f.genesis_validators_root),
            (1_606_824_023, None)
        );
        // An execution-layer genesis.json (eth-clients/mainnet keeps one beside config.yaml).
        let el = r#"{"config":{"chainId":1},"nonce":"0x42","timestamp":"0x0","alloc":{}}"#;
        assert_eq!(GenesisFacts::from_beacon_json(el).unwrap(), None);
        for bad in [
            "not json",
            "[1]",
            r#"{"data":{}}"#,
            r#"{"data":{"genesis_time":"-1"}}"#,
            r#"{"data":{"genesis_time":"18446744073709551616"}}"#,
            r#"{"genesis_time":18446744073709551616}"#,
            r#"{"genesis_time":"1.5"}"#,
            r#"{"genesis_time":"1","genesis_validators_root":"0x12"}"#,
            r#"{"genesis_time":"1","genesis_fork_version":"0x0000000000"}"#,
        ] {
            assert!(
                matches!(
                    GenesisFacts::from_beacon_json(bad),
                    Err(CoreError::InvalidNetwork(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn genesis_sources_in_precedence_and_disagreements_refused() {
        let ssz = GenesisFacts::from_state_ssz(&state_prefix(1_742_213_400, 0x21, 40)).unwrap();
        let json = GenesisFacts::from_beacon_json(&format!(
            r#"{{"data":{{"genesis_time":"1742213400","genesis_validators_root":"0x{}","genesis_fork_version":"0x10000910"}}}}"#,
            "21".repeat(32)
        ))
        .unwrap()
        .unwrap();
        // No source: no genesis time (the clock is off), whatever MIN_GENESIS_TIME says.
        let mut n = custom();
        n.apply_genesis(vec![]).unwrap();
        assert_eq!((n.genesis_time, n.genesis_time_source), (None, None));
        // All three agreeing: the flag is the source in force, the root comes from the files.
        let mut n = custom();
        n.apply_genesis(vec![
            json.clone(),
            GenesisFacts::from_flag(1_742_213_400),
            ssz.clone(),
        ])
        .unwrap();
        assert_eq!(n.genesis_time, Some(1_742_213_400));
        assert_eq!(n.genesis_time_source, Some(GenesisSource::Flag));
        assert_eq!(n.genesis_validators_root, Some([0x21; 32].into()));
        assert_eq!(n.genesis_time_warning(), None);
        let mut n = custom();
        n.apply_genesis(vec![json.clone(), ssz.clone()]).unwrap();
        assert_eq!(n.genesis_time_source, Some(GenesisSource::GenesisSsz));
        // Disagreements: time, root, fork version.
        let refused = |facts: Vec<GenesisFacts>, needle: &str| {
            let e = custom().apply_genesis(facts).unwrap_err();
            assert!(
                matches!(&e, CoreError::InvalidNetwork(m) if m.contains(needle)),
                "{e}"
            );
        };
        refused(
            vec![GenesisFacts::from_flag(1_742_213_401), ssz.clone()],
            "genesis time disagrees: flag says 1742213401, genesis.ssz says 1742213400",
        );
        refused(
            vec![
                ssz.clone(),
                GenesisFacts {
                    genesis_time: 1,
                    ..json.clone()
                },
            ],
            "genesis time disagrees",
        );
        refused(
            vec![
                ssz.clone(),
                GenesisFacts {
                    genesis_validators_root: Some([0x22; 32].into()),
                    ..json.clone()
                },
            ],
            "genesis validators root disagrees",
        );
        refused(
            vec![GenesisFacts {
                genesis_fork_version: Some(v([0, 0, 0, 0])),
                ..json.clone()
            }],
            "genesis fork version disagrees",
        );
        // Built-in networks keep their constants; a flag must agree with them.
        let mut m = NetworkConfig::mainnet();
        m.apply_genesis(vec![GenesisFacts::from_flag(1_606_824_023)])
            .unwrap();
        assert_eq!(m.genesis_time, Some(1_606_824_023));
        assert_eq!(m.genesis_validators_root, MAINNET_GVR.parse().ok());
        let e = NetworkConfig::mainnet()
            .apply_genesis(vec![GenesisFacts::from_flag(1_607_428_800)])
            .unwrap_err();
        assert!(e.to_string().contains("built-in says 1606824023"), "{e}");
        let mut m = NetworkConfig::mainnet();
        m.apply_genesis(vec![]).unwrap();
        assert_eq!(m.genesis_time_source, Some(GenesisSource::BuiltIn));
    }

    #[test]
    fn implausible_genesis_times_are_flagged() {
        for t in [0, 1, PLAUSIBLE_GENESIS_AFTER - 1] {
            let mut n = custom();
            n.apply_genesis(vec![GenesisFacts::from_flag(t)]).unwrap();
            assert!(n
                .genesis_time_warning()
                .unwrap()
                .contains("before 2020-01-01"));
        }
        // After 2020 but before this config's MIN_GENESIS_TIME.
        let mut n = custom();
        n.apply_genesis(vec![GenesisFacts::from_flag(1_742_212_799)])
            .unwrap();
        assert!(n
            .genesis_time_warning()
            .unwrap()
            .contains("MIN_GENESIS_TIME 1742212800"));
        // In the future (a chain that has not started yet) is fine.
        let mut n = custom();
        n.apply_genesis(vec![GenesisFacts::from_flag(4_000_000_000)])
            .unwrap();
        assert_eq!(n.genesis_time_warning(), None);
        assert_eq!(NetworkConfig::mainnet().genesis_time_warning(), None);
    }
}
