//! File access for key material: size-bounded reads, owner-only permission checks for files that
//! hold secrets, and 0600 creation.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::KeyError;

/// Largest key-material file we read (keystores are ~1 KiB; configs a few KiB).
pub const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

/// What a file holds, which decides whether its permissions are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Plaintext secret: a password, or a key config that may hold a raw key.
    Password,
    /// A key config file (may hold a plaintext `file-raw` key).
    KeyConfig,
    /// Encrypted keystore. Its secrecy rests on the password, but a readable keystore invites an
    /// offline guessing attack, so it too must be owner-only.
    Keystore,
}

impl FileKind {
    fn must_be_owner_only(self) -> bool {
        matches!(
            self,
            FileKind::Password | FileKind::KeyConfig | FileKind::Keystore
        )
    }
}

/// True when group or others have any access to the file.
pub fn is_group_or_world_accessible(path: &Path) -> std::io::Result<bool> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o077 != 0)
}

fn read_bounded(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let file = File::open(path).map_err(KeyError::io)?;
    let len = file.metadata().map_err(KeyError::io)?.len();
    if len > MAX_KEY_FILE_BYTES {
        return Err(KeyError::FileTooLarge);
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(len as usize));
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(KeyError::io)?;
    if buf.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyError::FileTooLarge);
    }
    Ok(buf)
}

/// Read a file holding (or possibly holding) secrets. Files that must be owner-only are refused
/// when group or others can access them; the buffer is wiped on drop.
pub fn read_secret_file(path: &Path, kind: FileKind) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if kind.must_be_owner_only() && is_group_or_world_accessible(path).map_err(KeyError::io)? {
        return Err(KeyError::InsecurePermissions);
    }
    read_bounded(path)
}

/// Write `contents` to a new file with mode 0600 (fails if the file exists), durably.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    signward_os::fs::write_new(path, contents)
}
