//! The server secret: 32 random bytes, the HMAC key for stored tokens (and, later, the audit
//! chain). Created once with mode 0600; refused when group or others can read it.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rand::RngCore;
use zeroize::Zeroizing;

use crate::AuthError;

/// The server secret. No `Debug`, wiped on drop.
pub struct ServerSecret(Zeroizing<[u8; 32]>);

impl ServerSecret {
    /// The secret itself, to key a MAC (credential fingerprints, the audit key). Named
    /// `dangerous_` because the bytes are the server's root secret: never log, store or return them.
    pub fn dangerous_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Load `path`, creating it (0600) with fresh random bytes if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, AuthError> {
        let name = path.display().to_string();
        let mut fresh = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(fresh.as_mut());
        // Created 0600 and made durable (file and directory entry) before it is used.
        match signward_os::fs::write_new(path, fresh.as_ref()) {
            Ok(()) => {
                tracing::info!(file = %name, "created the server secret");
                return Ok(ServerSecret(fresh));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
        let meta = std::fs::metadata(path)?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(AuthError::InsecurePermissions { file: name });
        }
        let mut buf = Zeroizing::new(Vec::new());
        std::fs::File::open(path)?.take(33).read_to_end(&mut buf)?;
        let bytes: [u8; 32] = buf.as_slice().try_into().map_err(|_| AuthError::BadFile {
            file: name,
            reason: "server secret must be exactly 32 bytes".into(),
        })?;
        Ok(ServerSecret(Zeroizing::new(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_owner_only_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("server.key");
        let a = ServerSecret::load_or_create(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let b = ServerSecret::load_or_create(&p).unwrap();
        assert_eq!(a.dangerous_bytes(), b.dangerous_bytes());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            ServerSecret::load_or_create(&p),
            Err(AuthError::InsecurePermissions { .. })
        ));
    }
}
