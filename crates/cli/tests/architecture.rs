//! The crate layout is the architecture: each crate may depend only on the signward crates listed
//! here (the same table as `docs/architecture.md`, "Who may depend on whom"). A new edge is a
//! design change: make it here and in the doc, in the same commit, with a reason.

use std::collections::BTreeSet;
use std::path::PathBuf;

/// (crate directory, the signward crates it may depend on).
const ALLOWED: &[(&str, &[&str])] = &[
    ("core", &[]),
    ("os", &[]),
    ("db", &[]),
    ("policy", &[]),
    ("keys", &["core", "os"]),
    ("audit", &["db", "os"]),
    ("auth", &["core", "os", "policy"]),
    ("slashing", &["core", "db"]),
    ("vault", &["db", "keys", "os"]),
    ("evm", &["db", "keys", "policy"]),
    ("node", &[]),
    ("threshold", &[]),
    (
        "engine",
        &[
            "audit",
            "auth",
            "core",
            "evm",
            "keys",
            "node",
            "os",
            "policy",
            "slashing",
            "threshold",
            "vault",
        ],
    ),
    (
        "server",
        &[
            "audit", "auth", "core", "engine", "evm", "os", "policy", "slashing", "vault",
        ],
    ),
    (
        "cli",
        &[
            "audit",
            "auth",
            "core",
            "engine",
            "evm",
            "keys",
            "os",
            "policy",
            "server",
            "slashing",
            "threshold",
            "vault",
        ],
    ),
    (
        "bench",
        &[
            "audit",
            "auth",
            "core",
            "engine",
            "evm",
            "keys",
            "os",
            "policy",
            "server",
            "slashing",
            "threshold",
            "vault",
        ],
    ),
];

fn crates_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The signward crates a manifest's `[dependencies]` names (dev-dependencies may reach further).
fn signward_deps(manifest: &str) -> BTreeSet<String> {
    let doc: toml::Value = toml::from_str(manifest).unwrap();
    doc.get("dependencies")
        .and_then(|d| d.as_table())
        .map(|t| {
            t.keys()
                .filter_map(|k| k.strip_prefix("signward-").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_crate_depends_only_on_what_the_layout_allows() {
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(crates_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Some((_, allowed)) = ALLOWED.iter().find(|(c, _)| *c == name) else {
            panic!(
                "crates/{name} is not in the layout table: add it here and in docs/architecture.md"
            );
        };
        let allowed: BTreeSet<String> = allowed.iter().map(|s| s.to_string()).collect();
        let extra: Vec<_> = signward_deps(&manifest)
            .difference(&allowed)
            .cloned()
            .collect();
        assert!(
            extra.is_empty(),
            "crates/{name} depends on {extra:?}, which the layout does not allow"
        );
        assert!(
            manifest.contains("[lints]") && manifest.contains("workspace = true"),
            "crates/{name} does not opt into the workspace lints"
        );
        seen.insert(name);
    }
    let listed: BTreeSet<String> = ALLOWED.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(
        seen, listed,
        "the layout table names a crate that does not exist"
    );
}

#[test]
fn the_table_is_acyclic_and_the_doc_agrees() {
    // Acyclic: a crate may only depend on crates listed before it.
    for (i, (name, deps)) in ALLOWED.iter().enumerate() {
        for d in *deps {
            let j = ALLOWED.iter().position(|(c, _)| c == d).unwrap();
            assert!(j < i, "{name} may depend on {d}, which comes after it");
        }
    }
    // The doc's table lists the same edges.
    let doc = std::fs::read_to_string(crates_dir().join("../docs/architecture.md")).unwrap();
    for (name, deps) in ALLOWED {
        let want = if deps.is_empty() {
            "nothing".to_string()
        } else {
            deps.iter()
                .map(|d| format!("`{d}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let row = format!("| `{name}` | {want} |");
        // (the row goes on with the "never" column)
        assert!(
            doc.contains(&row),
            "docs/architecture.md lacks the row {row}"
        );
    }
}
