//! `--state-file`: the last good Kubernetes API state on disk, so a
//! restarted replica answers (flagged stale) before the API server is back.
//! Written atomically (temporary file, then rename); a file that does not
//! parse is ignored with a warning, never fatal.

use std::io;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use svcnet_index::Index;
use svcnet_model::Object;

/// Bumped when the layout changes; other versions are ignored.
const VERSION: u32 = 1;

/// The file's content.
#[derive(Debug, Serialize, Deserialize)]
pub struct StateFile {
    /// Layout version.
    pub version: u32,
    /// When it was written (seconds since the epoch).
    pub written: u64,
    /// Each API cluster's objects.
    pub clusters: Vec<(String, Vec<Object>)>,
}

/// Reads the state file; `None` (with a log line saying why) when absent or unusable.
pub fn load(path: &Path) -> Option<StateFile> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(file = %path.display(), "cannot read the state file: {e}");
            return None;
        }
    };
    match serde_json::from_slice::<StateFile>(&bytes) {
        Ok(s) if s.version == VERSION => Some(s),
        Ok(s) => {
            tracing::warn!(file = %path.display(), version = s.version, "state file of another version, ignored");
            None
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), "state file does not parse, ignored: {e}");
            None
        }
    }
}

/// Writes the objects of `clusters` atomically.
pub fn save(path: &Path, index: &Index, clusters: &[String]) -> io::Result<()> {
    let state = StateFile {
        version: VERSION,
        written: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        clusters: index
            .clusters()
            .iter()
            .filter(|(id, _)| clusters.contains(id))
            .map(|(id, store)| {
                let objects = store.objects().chain(store.pod_objects());
                (id.clone(), objects.collect())
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&state).map_err(io::Error::other)?;
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
