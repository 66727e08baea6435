//! The folder adapter: a local folder stands in for the bucket (the CLI's default, `public/`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use sha2::{Digest, Sha256};

use super::{Body, Condition, ObjectInfo, PutOptions, Store, StoreError, Stored, Version};

/// A local folder; writes are atomic (temp file, fsync, rename), and conditional writes compare
/// and rename under an exclusive `flock` of the folder, so they hold between processes on one
/// machine (not across NFS or other machines).
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(dir: &Path, prefix: &str) -> Self {
        Self { root: dir.join(prefix) }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        key: &str,
        work: impl FnOnce(PathBuf) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let path = self.path(key);
        let target = path.display().to_string();
        tokio::task::spawn_blocking(move || work(path))
            .await
            .map_err(|e| StoreError::Io {
                target: target.clone(),
                detail: e.to_string(),
            })?
            .map_err(|e| StoreError::Io {
                target,
                detail: e.to_string(),
            })
    }
}

#[async_trait]
impl Store for LocalStore {
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.blocking(key, |path| {
            Ok(version_of_file(&path)?.map(|version| ObjectInfo { sha256: None, version }))
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        self.blocking(key, |path| {
            let modified = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .map(time::OffsetDateTime::from);
            Ok(read_if_present(&path)?.map(|body| Stored {
                version: version_of(&body),
                body,
                modified,
            }))
        })
        .await
    }

    async fn put(&self, key: &str, body: Body, options: PutOptions<'_>) -> Result<Version, StoreError> {
        let condition = options.condition;
        let target = self.locate(key);
        let written = self
            .blocking(key, move |path| write_if(&path, &body, &condition))
            .await?;
        written.ok_or(StoreError::Conflict { target })
    }

    async fn list(&self, folder: &str) -> Result<Vec<String>, StoreError> {
        let folder = folder.to_string();
        self.blocking(&folder.clone(), move |path| {
            let entries = match std::fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let mut keys = Vec::new();
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                // Dot files are write_atomically's temporary files.
                if entry.file_type()?.is_file() && !name.starts_with('.') {
                    keys.push(format!("{folder}{name}"));
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
    }

    fn locate(&self, key: &str) -> String {
        self.path(key).display().to_string()
    }
}

fn read_if_present(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A folder file's version: the SHA-256 of its bytes. Equal bytes are the same state, so
/// `Matches` means "still what was read".
fn version_of(body: &[u8]) -> Version {
    Version(hex::encode(Sha256::digest(body)))
}

/// The version of the file at `path`, read in blocks rather than whole: a HEAD of a 20 MB feed
/// costs no 20 MB. `None` if there is no such file.
fn version_of_file(path: &Path) -> std::io::Result<Option<Version>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hashing = Hashing::new(std::io::sink());
    std::io::copy(&mut file, &mut hashing)?;
    Ok(Some(hashing.version()))
}

/// A writer that hashes what it passes on, so a body is hashed as it is written and never read
/// back: the version of a file written from pieces.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn version(self) -> Version {
        Version(hex::encode(self.hasher.finalize()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    /// Passes the slices on as one vectored write (writev(2) for a file), then hashes what it took.
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        let n = self.inner.write_vectored(bufs)?;
        let mut left = n;
        for buf in bufs {
            let taken = left.min(buf.len());
            self.hasher.update(&buf[..taken]);
            left -= taken;
            if left == 0 {
                break;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `path` if `condition` holds, under an exclusive lock of its folder: another writer
/// (thread or process) that checks meanwhile waits, then sees this write. `Ok(None)` when the
/// condition does not hold.
fn write_if(path: &Path, body: &Body, condition: &Condition) -> std::io::Result<Option<Version>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // flock(2) on the folder itself: no lock file to leave among the published ones. Released
    // when `lock` is dropped, also on every early return.
    let lock = std::fs::File::open(dir)?;
    lock.lock()?;
    let holds = match condition {
        Condition::Any => true,
        Condition::Absent => !path.try_exists()?,
        Condition::Matches(version) => version_of_file(path)?.as_ref() == Some(version),
    };
    if !holds {
        return Ok(None);
    }
    let version = write_atomically(path, body)?;
    drop(lock);
    Ok(Some(version))
}
/// Writes `path` so that it is always either the old file or the whole new one; returns the
/// version written, hashed on the way.
fn write_atomically(path: &Path, body: &Body) -> std::io::Result<Version> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("object");
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| -> std::io::Result<Version> {
        let mut file = Hashing::new(std::fs::File::create(&temp)?);
        body.write_to(&mut file)?;
        file.inner.sync_all()?;
        std::fs::rename(&temp, path)?;
        Ok(file.version())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    let version = written?;
    // The rename is durable only once the folder itself is synced.
    let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Body, Condition, PutOptions, StoreError, Version};

    fn options(condition: Condition) -> PutOptions<'static> {
        PutOptions {
            content_type: "text/xml",
            cache_control: "no-cache",
            sha256: None,
            condition,
        }
    }

    #[tokio::test]
    async fn local_writes_replace_whole_files_and_leave_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path(), "feeds/");
        assert_eq!(store.head("a.xml").await.unwrap(), None);
        store
            .put("a.xml", b"one".to_vec().into(), options(Condition::Any))
            .await
            .unwrap();
        let two = store
            .put("a.xml", b"two".to_vec().into(), options(Condition::Any))
            .await
            .unwrap();
        let stored = store.get("a.xml").await.unwrap().unwrap();
        assert_eq!((stored.body.as_slice(), &stored.version), (&b"two"[..], &two));
        assert_eq!(store.head("a.xml").await.unwrap().unwrap().version, two);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("feeds"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.xml"], "no temp file and no lock file is left");
        assert!(store.locate("a.xml").ends_with("feeds/a.xml"));
    }

    #[tokio::test]
    async fn local_conditional_writes_refuse_a_changed_or_missing_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path(), "");
        let one = store
            .put("a", b"one".to_vec().into(), options(Condition::Absent))
            .await
            .unwrap();
        let conflict = store.put("a", b"x".to_vec().into(), options(Condition::Absent)).await;
        assert!(matches!(conflict, Err(StoreError::Conflict { .. })), "{conflict:?}");
        let two = store
            .put("a", b"two".to_vec().into(), options(Condition::Matches(one.clone())))
            .await
            .unwrap();
        let stale = store
            .put("a", b"x".to_vec().into(), options(Condition::Matches(one)))
            .await;
        assert!(matches!(stale, Err(StoreError::Conflict { .. })), "{stale:?}");
        let gone = store
            .put("b", b"x".to_vec().into(), options(Condition::Matches(two)))
            .await;
        assert!(matches!(gone, Err(StoreError::Conflict { .. })), "{gone:?}");
        assert_eq!(store.get("a").await.unwrap().unwrap().body, b"two");
        assert_eq!(store.get("b").await.unwrap(), None);
    }

    /// A feed's output written from its pieces (vectored writes, hashed on the way) is the same
    /// file, and the same version, as its bytes written whole; a HEAD hashes the file in blocks.
    #[tokio::test]
    async fn local_writes_pieces_as_the_bytes_they_make() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path(), "");
        let items: String = (0..3000)
            .map(|i| format!("<item><title>第{i}条 &amp; 中文</title></item>"))
            .collect();
        let text = format!("<rss><channel><title>t</title>{items}</channel></rss>");
        let document = crate::feed::Document::format_within(text, usize::MAX).unwrap();
        let expected = document.to_xml();
        assert!(
            expected.len() > 100_000,
            "more than one vectored write's worth of pieces"
        );
        let from_pieces = store
            .put(
                "a.xml",
                Body::Pieces(std::sync::Arc::new(document)),
                options(Condition::Absent),
            )
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("a.xml")).unwrap(), expected);
        assert_eq!(store.head("a.xml").await.unwrap().unwrap().version, from_pieces);
        let from_bytes = store
            .put("b.xml", expected.clone().into(), options(Condition::Absent))
            .await
            .unwrap();
        assert_eq!(from_pieces, from_bytes);
        assert_eq!(from_pieces, version_of(expected.as_bytes()));
    }

    /// Threads that all read the same version and then write at once: exactly one wins, on
    /// every round. Without the folder lock, several writers pass the comparison together.
    #[test]
    fn local_conditional_writes_have_exactly_one_winner_among_racing_threads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let mut seen = write_if(&path, &b"start".to_vec().into(), &Condition::Absent)
            .unwrap()
            .unwrap();
        for round in 0..50 {
            let barrier = std::sync::Barrier::new(8);
            let winners: Vec<Version> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..8)
                    .map(|i| {
                        let (barrier, path, seen) = (&barrier, &path, &seen);
                        scope.spawn(move || {
                            let body = format!("round {round} writer {i}");
                            barrier.wait();
                            write_if(path, &body.into(), &Condition::Matches(seen.clone())).unwrap()
                        })
                    })
                    .collect();
                handles.into_iter().filter_map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(winners.len(), 1, "round {round}");
            assert_eq!(version_of(&std::fs::read(&path).unwrap()), winners[0]);
            seen = winners[0].clone();
        }
    }
}
