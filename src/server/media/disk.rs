//! Media on one node: files under the data directory, `media/<app>/<id>`.
//!
//! An upload is written to `media/.tmp/<id>.<random>`, synced, then renamed into place
//! and the directory synced: a file under its id is always whole, so nothing
//! half-written is ever served, even after a crash. A file's age is its modification
//! time (set when it was renamed into place); one older than the expiry is unknown to
//! readers and removed by the sweeper, with any temporary file older than an hour (what
//! a crash left).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hyper::body::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufWriter};

use super::{StoreFailure, CHUNK_BYTES};

/// Where uploads are written until complete: a name no app id can take (app ids have no
/// dots), beside the apps' directories on the same file system, so a rename places a file.
const TEMPORARY_DIR: &str = ".tmp";
/// A temporary file older than this belongs to no upload under way (a crash left it).
const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

pub struct DiskStore {
    root: PathBuf,
    expiry: Duration,
}

pub struct DiskWriter {
    file: Option<BufWriter<tokio::fs::File>>,
    temp: PathBuf,
    dir: PathBuf,
    path: PathBuf,
}

pub struct DiskReader {
    file: tokio::fs::File,
}

impl DiskStore {
    pub fn create(data_dir: &Path, expiry: Duration) -> std::io::Result<DiskStore> {
        let root = data_dir.join("media");
        std::fs::create_dir_all(root.join(TEMPORARY_DIR))?;
        Ok(DiskStore { root, expiry })
    }

    pub fn expiry(&self) -> Duration {
        self.expiry
    }

    pub async fn begin(&self, app: &str, id: &str, _size: u64) -> Result<DiskWriter, StoreFailure> {
        let temp = self
            .root
            .join(TEMPORARY_DIR)
            .join(format!("{id}.{:08x}", rand::random::<u32>()));
        let file = tokio::fs::File::create(&temp)
            .await
            .map_err(|e| StoreFailure::from_io("creating a temporary file", &e))?;
        let dir = self.root.join(app);
        Ok(DiskWriter {
            file: Some(BufWriter::with_capacity(CHUNK_BYTES, file)),
            temp,
            path: dir.join(id),
            dir,
        })
    }

    /// The file and its size, when it is there and has not expired.
    pub async fn open(
        &self,
        app: &str,
        id: &str,
    ) -> Result<Option<(DiskReader, u64)>, StoreFailure> {
        let path = self.root.join(app).join(id);
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(StoreFailure::from_io("opening a file", &error)),
        };
        let meta = file
            .metadata()
            .await
            .map_err(|e| StoreFailure::from_io("reading a file's size", &e))?;
        if self.expired(&meta) {
            return Ok(None);
        }
        Ok(Some((DiskReader { file }, meta.len())))
    }

    fn expired(&self, meta: &std::fs::Metadata) -> bool {
        let age = meta
            .modified()
            .ok()
            .and_then(|at| SystemTime::now().duration_since(at).ok());
        age.is_some_and(|age| age >= self.expiry)
    }

    pub async fn sweep(&self) -> Result<usize, StoreFailure> {
        let root = self.root.clone();
        let expiry = self.expiry;
        tokio::task::spawn_blocking(move || sweep_dir(&root, expiry))
            .await
            .map_err(|e| StoreFailure::Failed(e.to_string()))?
            .map_err(|e| StoreFailure::from_io("sweeping expired media", &e))
    }
}

/// Removes expired files of every app and stale temporary files; how many went.
fn sweep_dir(root: &Path, expiry: Duration) -> std::io::Result<usize> {
    let now = SystemTime::now();
    let old = |path: &Path, limit: Duration| {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|at| now.duration_since(at).ok())
            .is_some_and(|age| age >= limit)
    };
    let mut removed = 0;
    for app in std::fs::read_dir(root)? {
        let app = app?;
        let is_temp = app.file_name() == TEMPORARY_DIR;
        if !app.file_type()?.is_dir() {
            continue;
        }
        let limit = if is_temp { STALE_TEMPORARY } else { expiry };
        for file in std::fs::read_dir(app.path())? {
            let path = file?.path();
            if old(&path, limit) {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(error) if error.kind() == ErrorKind::NotFound => {}
                    Err(error) => return Err(error),
                }
            }
        }
    }
    Ok(removed)
}

impl DiskWriter {
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), StoreFailure> {
        let file = self.file.as_mut().expect("written before commit");
        file.write_all(bytes)
            .await
            .map_err(|e| StoreFailure::from_io("writing a file", &e))
    }

    pub async fn commit(mut self) -> Result<(), StoreFailure> {
        let mut file = self.file.take().expect("committed once");
        file.flush()
            .await
            .map_err(|e| StoreFailure::from_io("writing a file", &e))?;
        let file = file.into_inner();
        file.sync_all()
            .await
            .map_err(|e| StoreFailure::from_io("syncing a file", &e))?;
        drop(file);
        let (temp, path, dir) = (self.temp.clone(), self.path.clone(), self.dir.clone());
        let placed = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            std::fs::rename(&temp, &path)?;
            // The rename itself must survive a power cut before the id is answered.
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(|e| StoreFailure::Failed(e.to_string()))?;
        match placed {
            Ok(()) => {
                // Renamed: nothing left for Drop to remove.
                self.temp = PathBuf::new();
                Ok(())
            }
            Err(error) => {
                // Never answered, so never served: the file goes with its failure.
                let _ = std::fs::remove_file(&self.path);
                Err(StoreFailure::from_io("placing a file", &error))
            }
        }
    }
}

impl Drop for DiskWriter {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            // An upload that did not complete: nothing of it stays.
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

impl DiskReader {
    /// At most a quarter chunk of the `left` bytes (empty at an unexpected end).
    pub async fn next(&mut self, left: u64) -> Result<Bytes, StoreFailure> {
        let want = left.min(CHUNK_BYTES as u64 / 4) as usize;
        let mut buf = vec![0u8; want];
        let read = self
            .file
            .read(&mut buf)
            .await
            .map_err(|e| StoreFailure::from_io("reading a file", &e))?;
        buf.truncate(read);
        Ok(Bytes::from(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `path` with its modification time `age` ago.
    fn aged(path: &Path, age: Duration) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = std::fs::File::create(path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    #[tokio::test]
    async fn the_sweeper_removes_expired_files_and_stale_temporaries_only() {
        let dir = tempfile::tempdir().unwrap();
        let week = Duration::from_secs(7 * 24 * 3600);
        let store = DiskStore::create(dir.path(), week).unwrap();
        let root = dir.path().join("media");
        let hours = |h: u64| Duration::from_secs(h * 3600);
        // An app may be called "tmp": its files are files like any other app's.
        let kept = [root.join("demo/fresh"), root.join("tmp/two-hours")];
        aged(&kept[0], Duration::ZERO);
        aged(&kept[1], hours(2));
        let gone = [root.join("demo/old"), root.join(".tmp/abandoned.1234")];
        aged(&gone[0], week + hours(1));
        aged(&gone[1], hours(2));
        aged(&root.join(".tmp/under-way.5678"), Duration::ZERO);
        assert_eq!(store.sweep().await, Ok(2));
        for path in &kept {
            assert!(path.exists(), "{path:?} was removed");
        }
        for path in &gone {
            assert!(!path.exists(), "{path:?} is still there");
        }
        assert!(root.join(".tmp/under-way.5678").exists());
        // An expired file is unknown to readers even before the sweeper comes.
        aged(&root.join("demo/stale"), week);
        assert!(store.open("demo", "stale").await.unwrap().is_none());
        assert!(store.open("demo", "fresh").await.unwrap().is_some());
    }
}
