//! Kubernetes manifests as a source (SPEC §1, §1.1, §1.2, §4 `lint`).
//!
//! Flow: files (`-f PATH`, kubectl style) → [`yaml`] spanned documents →
//! [`decode`] typed model objects with `file:line:column` diagnostics →
//! [`control`] the emulated control plane (pods, IPs, endpoints) → the
//! resolved objects the index consumes as one atomic `Delta::Init…InitDone`.
//! [`watch`] re-runs this when a watched directory changes and keeps a
//! broken file's last good objects (SPEC §1.2).

use std::fmt;

use svcnet_model::{Kind, Origin};

pub mod control;
pub mod decode;
pub mod lint;
pub mod load;
pub mod watch;
pub mod yaml;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The object (or document) is not loaded; `lint` exits 1.
    Error,
    /// Loaded, but probably not what the user meant; `lint --strict` exits 1.
    Warning,
}

/// One finding about the input, printed as
/// `file:line:column: kind ns/name: problem` (SPEC §1.2).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    /// Where.
    pub origin: Origin,
    /// Error or warning.
    pub severity: Severity,
    /// The object it concerns, when it got far enough to have one:
    /// kind, namespace (empty when cluster-scoped), name (may be empty).
    pub object: Option<(Kind, String, String)>,
    /// What is wrong, in words.
    pub problem: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if let Some((kind, ns, name)) = &self.object {
            if ns.is_empty() {
                write!(f, "{kind} {name}: ")?;
            } else {
                write!(f, "{kind} {ns}/{name}: ")?;
            }
        }
        f.write_str(&self.problem)
    }
}

/// Errors that stop a source from reading its input at all.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A path named with `-f` could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The path as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file watcher could not be started.
    #[error("watching {path}: {source}")]
    Watch {
        /// The path as given.
        path: String,
        /// The watcher's error.
        source: notify::Error,
    },
}
