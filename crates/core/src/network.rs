//! Network configurations: the preset (sizes that change SSZ shapes), the genesis fork version
//! (used for DEPOSIT-style and builder domains), genesis facts, and the fork schedule.

use crate::bytes::{Root, Version};
use crate::request::ForkName;
use crate::CoreError;

/// The preset values that change the shape of what we hash or how epochs are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub slots_per_epoch: u64,
    pub sync_committee_size: u64,
    pub sync_committee_subnet_count: u64,
    pub max_committees_per_slot: u64,
    pub max_validators_per_committee: u64,
    pub max_proposer_slashings: u64,
    pub max_attester_slashings: u64,
    pub max_attestations: u64,
    pub max_deposits: u64,
    pub max_voluntary_exits: u64,
}

impl Preset {
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
    pub name: &'static str,
    pub version: Version,
    pub epoch: u64,
}

/// A network the signer serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    pub name: String,
    pub preset: Preset,
    pub genesis_fork_version: Version,
    /// Unix time of genesis, when known (the chain clock of slashing protection needs it).
    pub genesis_time: Option<u64>,
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
        let genesis_time = match (get("MIN_GENESIS_TIME"), get("GENESIS_DELAY")) {
            (Some(t), Some(d)) => match t.parse::<u64>().ok().zip(d.parse::<u64>().ok()) {
                Some((t, d)) => Some(
                    t.checked_add(d)
                        .ok_or_else(|| bad("MIN_GENESIS_TIME + GENESIS_DELAY is out of range"))?,
                ),
                None => None,
            },
            _ => None,
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
            genesis_time,
            seconds_per_slot,
            genesis_validators_root: None,
            forks,
        })
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
        assert_eq!(n.genesis_time, Some(105));
        assert_eq!(n.fork_version_at(2), v([0, 0, 0, 1]));
        assert_eq!(n.fork_version_at(3), v([1, 0, 0, 1]));
        assert!(NetworkConfig::from_config_yaml("x", "PRESET_BASE: gnosis\n").is_err());
        assert!(NetworkConfig::from_config_yaml("x", "PRESET_BASE: mainnet\n").is_err());
    }

    #[test]
    fn config_yaml_genesis_time_overflow_is_an_error() {
        // Found by fuzz/fuzz_targets/network_config.rs: the sum overflowed (a panic with
        // overflow checks, a wrapped genesis time without).
        let text = "GENESIS_FORK_VERSION: 0x00000000\nMIN_GENESIS_TIME: 18446744073709551607\n\
                    GENESIS_DELAY: 604800\n";
        assert!(matches!(
            NetworkConfig::from_config_yaml("x", text),
            Err(CoreError::InvalidNetwork(_))
        ));
        let text = "GENESIS_FORK_VERSION: 0x00000000\nMIN_GENESIS_TIME: 18446744073709551607\n\
                    GENESIS_DELAY: 8\n";
        let n = NetworkConfig::from_config_yaml("x", text).unwrap();
        assert_eq!(n.genesis_time, Some(u64::MAX));
    }
}
