//! Web3Signer key-config files (`--key-config-path`): YAML, one or more documents per file.
//!
//! ```yaml
//! type: "file-keystore"
//! keyType: "BLS"
//! keystoreFile: "/path/to/keystore.json"
//! keystorePasswordFile: "/path/to/password.txt"
//! ---
//! type: "file-raw"
//! keyType: "BLS"
//! privateKey: "0x..."
//! ```
//! Relative paths are resolved against the directory of the config file.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::KeyError;

/// One key described by a config document.
pub enum KeyConfig {
    /// An EIP-2335 keystore and the file that holds its password.
    FileKeystore {
        /// The keystore.
        keystore_file: PathBuf,
        /// The file holding its password.
        password_file: PathBuf,
    },
    /// A plaintext secret key (hex), accepted only with `--allow-raw-keys`.
    FileRaw {
        /// The secret key, hex.
        private_key: Zeroizing<String>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    #[serde(rename = "type")]
    kind: Option<String>,
    key_type: Option<String>,
    keystore_file: Option<PathBuf>,
    keystore_password_file: Option<PathBuf>,
    private_key: Option<Zeroizing<String>>,
}

fn resolve(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

/// Parse every document of a key-config file. Each document yields its own result, so a document
/// with a bad or missing field does not hide the others. A YAML syntax error ends the file (the
/// rest of the stream cannot be trusted) and is reported once.
pub fn parse_key_configs(text: &str, base_dir: &Path) -> Vec<Result<KeyConfig, KeyError>> {
    let mut out = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        let doc = match Doc::deserialize(de) {
            Ok(d) => d,
            Err(_) => {
                out.push(Err(KeyError::MalformedKeyConfig(
                    "not a key config document",
                )));
                break;
            }
        };
        out.push(interpret(doc, base_dir));
    }
    out
}

fn interpret(doc: Doc, base: &Path) -> Result<KeyConfig, KeyError> {
    if let Some(kt) = &doc.key_type {
        if !kt.eq_ignore_ascii_case("BLS") {
            return Err(KeyError::UnsupportedKeyConfig);
        }
    }
    match doc.kind.as_deref() {
        Some("file-keystore") => Ok(KeyConfig::FileKeystore {
            keystore_file: resolve(
                base,
                doc.keystore_file
                    .ok_or(KeyError::MalformedKeyConfig("keystoreFile is missing"))?,
            ),
            password_file: resolve(
                base,
                doc.keystore_password_file
                    .ok_or(KeyError::MalformedKeyConfig(
                        "keystorePasswordFile is missing",
                    ))?,
            ),
        }),
        Some("file-raw") => Ok(KeyConfig::FileRaw {
            private_key: doc
                .private_key
                .ok_or(KeyError::MalformedKeyConfig("privateKey is missing"))?,
        }),
        Some(_) => Err(KeyError::UnsupportedKeyConfig),
        None => Err(KeyError::MalformedKeyConfig("type is missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_files_and_relative_paths() {
        let text = "type: file-keystore\nkeyType: BLS\nkeystoreFile: k.json\nkeystorePasswordFile: /abs/p.txt\n---\n\
                    type: file-raw\nprivateKey: '0x01'\n---\ntype: hashicorp\n---\n[unclosed\n---\ntype: file-raw\n";
        let docs = parse_key_configs(text, Path::new("/cfg"));
        assert_eq!(docs.len(), 4);
        match &docs[0] {
            Ok(KeyConfig::FileKeystore {
                keystore_file,
                password_file,
            }) => {
                assert_eq!(keystore_file, Path::new("/cfg/k.json"));
                assert_eq!(password_file, Path::new("/abs/p.txt"));
            }
            _ => panic!("doc 0"),
        }
        assert!(matches!(docs[1], Ok(KeyConfig::FileRaw { .. })));
        assert!(matches!(docs[2], Err(KeyError::UnsupportedKeyConfig)));
        assert!(matches!(docs[3], Err(KeyError::MalformedKeyConfig(_))));
    }
}
