//! Durable file writes, in one place. Every file signward writes whole (credentials, the halt
//! switch, exported histories, share files, the suspension list) goes through these, so each is
//! either absent, the old contents or the new contents after a crash, never torn or lost:
//! write to a new file (mode 0600), fsync it, rename it over the target, fsync the directory.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Make the directory entry changes in `dir` (creates, renames, removals) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Create `path` (mode 0600; it must not exist) holding `bytes`, durably. The bytes are written
/// and fsynced under a temporary name first and then linked into place, so `path` never exists
/// half-written (a crash or a full disk leaves no truncated key, share or history file).
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_beside(path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        // `link` fails if `path` exists: never overwrites.
        std::fs::hard_link(&tmp, path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    })();
    let _ = std::fs::remove_file(&tmp);
    result?;
    sync_dir(parent(path))
}

fn temp_beside(path: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent(path).join(format!(
        ".{name}.tmp-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A replacement for `path` being written: a new file (0600) beside it. [`Staged::commit`]
/// fsyncs it, renames it over `path` and fsyncs the directory; dropped uncommitted, it is
/// removed and `path` keeps its old contents.
pub struct Staged {
    target: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
}

impl Staged {
    /// Start writing the file that will replace `path` (a new owner-only file beside it).
    pub fn new(path: &Path) -> std::io::Result<Staged> {
        let tmp = temp_beside(path);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        Ok(Staged {
            target: path.to_path_buf(),
            tmp,
            file: Some(file),
        })
    }

    /// The file being written (clone it with `try_clone` to hand it to a writer).
    pub fn file(&self) -> &File {
        self.file
            .as_ref()
            .unwrap_or_else(|| unreachable!("present until commit"))
    }

    /// Flush and fsync the new file, rename it over `path`, and fsync the directory.
    pub fn commit(mut self) -> std::io::Result<()> {
        if let Some(f) = self.file.take() {
            f.sync_all()?;
        }
        std::fs::rename(&self.tmp, &self.target)?;
        sync_dir(parent(&self.target))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Replace `path` atomically and durably with what `fill` writes (the new file is 0600).
/// On any failure the target keeps its old contents and the temporary file is removed.
pub fn replace_with<T>(
    path: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let staged = Staged::new(path)?;
    let mut f = staged.file().try_clone()?;
    let out = fill(&mut f)?;
    f.flush()?;
    drop(f);
    staged.commit()?;
    Ok(out)
}

/// Replace `path` atomically and durably with `bytes`.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_with(path, |f| f.write_all(bytes))
}

/// Remove `path` durably. `Ok(false)` when it did not exist.
pub fn remove(path: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            sync_dir(parent(path))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Hold an exclusive advisory lock on `<path>` (created 0600) while `f` runs: for
/// read-modify-write cycles on files that several processes change (the CLI and the server).
pub fn with_lock<T>(lock_path: &Path, f: impl FnOnce() -> T) -> std::io::Result<T> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path)?;
    file.lock()?;
    let out = f();
    let _ = file.unlock();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replace_is_atomic_and_owner_only() {
        let dir = std::env::temp_dir().join(format!("signward-os-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f.json");
        replace(&p, b"one").unwrap();
        replace(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let failed: std::io::Result<()> = replace_with(&p, |_| Err(std::io::Error::other("no")));
        assert!(failed.is_err());
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"two",
            "a failed replace keeps the old file"
        );
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
        assert!(write_new(&p, b"x").is_err(), "write_new never overwrites");
        assert!(remove(&p).unwrap());
        assert!(!remove(&p).unwrap());
        let n = with_lock(&dir.join(".lock"), || 7).unwrap();
        assert_eq!(n, 7);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
