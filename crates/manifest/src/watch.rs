//! Manifests as a live source (SPEC §1.2, §4 `serve`): reload on change,
//! keep a broken file's last good objects, drop a deleted file's objects.
//!
//! Directories are watched, not files: a Kubernetes ConfigMap mount swaps a
//! `..data` symlink, which a file watch would miss. Events only say "look
//! again"; what changed is found by comparing file fingerprints, and a
//! periodic rescan catches anything a watch missed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::SystemTime;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use svcnet_model::{Delta, Scope};

use crate::control::{ClusterView, ControlConfig, emulate, emulate_each};
use crate::load::{
    SourceFile, discover, discover_with_metadata, duplicates, load_files_then, load_paths, repeated,
};
use crate::{Diagnostic, ManifestError, Severity};

/// What one (re)load produced.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// The decoded objects in effect (workloads included).
    pub objects: Vec<svcnet_model::Object>,
    /// The resolved cluster state.
    pub view: ClusterView,
    /// Every diagnostic of the files as they are now.
    pub diagnostics: Vec<Diagnostic>,
    /// Files that became invalid and keep serving their last good objects.
    pub kept: Vec<String>,
    /// Number of files read.
    pub files: usize,
}

/// The files in effect for a load (each file as read, or its last good
/// version), shared with the source's memory of them, and the objects
/// among them that repeat an earlier one.
struct Effective {
    files: Vec<Arc<SourceFile>>,
    duplicates: Vec<Vec<(usize, Diagnostic)>>,
}

impl Effective {
    /// The objects in effect, in file order, duplicates left out.
    fn objects(&self) -> impl Iterator<Item = &svcnet_model::Object> {
        self.files
            .iter()
            .zip(&self.duplicates)
            .flat_map(|(file, dups)| {
                file.objects
                    .iter()
                    .enumerate()
                    .filter(|(at, _)| !repeated(dups, *at))
                    .map(|(_, o)| o)
            })
    }
}

/// The deltas that replace a cluster's whole state with `objects`.
fn replace_all(objects: impl Iterator<Item = svcnet_model::Object>) -> impl Iterator<Item = Delta> {
    std::iter::once(Delta::Init(Scope::All))
        .chain(objects.map(Delta::InitApply))
        .chain(std::iter::once(Delta::InitDone(Scope::All)))
}

impl Loaded {
    /// The deltas that replace the cluster's state with this load, atomically.
    pub fn deltas(&self) -> impl Iterator<Item = Delta> + '_ {
        let view = &self.view;
        replace_all(
            view.objects.iter().cloned().chain(
                view.pods
                    .iter()
                    .map(|p| svcnet_model::Object::Pod(Box::new(p.clone()))),
            ),
        )
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// When a load started and how long reading and decoding took.
struct Timing {
    started: std::time::Instant,
    /// Files read (the others were unchanged since they were last read).
    reread: usize,
    read: std::time::Duration,
    decoded: std::time::Duration,
}

impl Timing {
    fn log(&self, loaded: &Loaded) {
        tracing::debug!(
            files = loaded.files,
            reread = self.reread,
            read = ?self.read,
            decoded = ?self.decoded,
            emulated = ?self.started.elapsed(),
            "manifests read"
        );
    }
}

/// A file as a source keeps it between loads: its objects packed in one
/// buffer (`postcard`), a fraction of what they take as objects, unpacked
/// when a reload takes the file as read before or keeps a broken file's
/// last good version. A file whose objects could not be packed (which does
/// not happen) is kept as it is.
#[derive(Debug)]
struct Kept {
    path: PathBuf,
    display: Arc<str>,
    /// How many objects.
    objects: usize,
    body: Body,
    diagnostics: Vec<Diagnostic>,
}

#[derive(Debug)]
enum Body {
    Packed(Box<[u8]>),
    Whole(Vec<svcnet_model::Object>),
}

impl Kept {
    /// Packs `file`'s objects. Their origins name the file: packed
    /// without it (it would be most of a small object's bytes), given
    /// back the file's one copy when unpacked.
    fn pack(file: &mut SourceFile) -> Self {
        set_origin_files(&mut file.objects, &Arc::from(""));
        let packed = postcard::to_allocvec(&file.objects);
        let display = file.display.clone();
        set_origin_files(&mut file.objects, &display);
        let body = match packed {
            Ok(bytes) => Body::Packed(bytes.into_boxed_slice()),
            Err(e) => {
                tracing::debug!(file = %file.display, error = %e, "objects kept unpacked");
                Body::Whole(file.objects.clone())
            }
        };
        Self {
            path: file.path.clone(),
            display,
            objects: file.objects.len(),
            body,
            diagnostics: file.diagnostics.clone(),
        }
    }

    /// Copies the packed objects to an allocation of this thread's: a
    /// file is packed on a reading thread, among the objects decoded there
    /// and dropped after the load, and the copy it keeps for as long as the
    /// file is there would hold their pages.
    fn rehome(&mut self) {
        if let Body::Packed(bytes) = &mut self.body {
            *bytes = Box::from(&bytes[..]);
        }
    }

    /// The file as it was loaded; None if its objects do not unpack.
    fn unpack(&self) -> Option<SourceFile> {
        let objects = match &self.body {
            Body::Whole(objects) => objects.clone(),
            Body::Packed(bytes) => match postcard::from_bytes::<Vec<svcnet_model::Object>>(bytes) {
                Ok(mut objects) => {
                    set_origin_files(&mut objects, &self.display);
                    objects
                }
                Err(e) => {
                    tracing::warn!(file = %self.display, error = %e, "kept objects do not unpack");
                    return None;
                }
            },
        };
        Some(SourceFile {
            path: self.path.clone(),
            display: self.display.clone(),
            objects,
            diagnostics: self.diagnostics.clone(),
        })
    }
}

/// Makes every origin of `objects` name `file`.
fn set_origin_files(objects: &mut [svcnet_model::Object], file: &Arc<str>) {
    for o in objects {
        if let Some(origin) = &mut o.meta_mut().origin {
            origin.file = file.clone();
        }
    }
}

/// A file's modification time and length.
type Stamp = (SystemTime, u64);

type Fingerprint = Vec<(PathBuf, Option<Stamp>)>;

/// One cluster's manifests (`-f PATH...` or `--cluster NAME=PATH`).
#[derive(Debug)]
pub struct ManifestSource {
    paths: Vec<PathBuf>,
    control: ControlConfig,
    last_good: BTreeMap<PathBuf, Arc<Kept>>,
    /// Each file as last read, with its stamp from before that read: a file
    /// whose stamp is still the same is not read again on a reload.
    last_read: BTreeMap<PathBuf, (Stamp, Arc<Kept>)>,
    stdin: Option<Arc<Kept>>,
    fingerprint: Option<Fingerprint>,
}

/// Whether a file event may mean changed manifests. Opening and reading
/// change nothing, and this process's own scans open the directories it
/// watches: taken as changes, each scan would set off the next. Closing a
/// file written to is a change.
fn may_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn is_stdin(p: &Path) -> bool {
    p.as_os_str() == "-"
}

impl ManifestSource {
    /// A source over `paths` (files, directories, `-`).
    pub fn new(paths: Vec<PathBuf>, control: ControlConfig) -> Self {
        Self {
            paths,
            control,
            last_good: BTreeMap::new(),
            last_read: BTreeMap::new(),
            stdin: None,
            fingerprint: None,
        }
    }

    /// The paths as given.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    fn fingerprint(&self) -> Fingerprint {
        let named: Vec<PathBuf> = self
            .paths
            .iter()
            .filter(|p| !is_stdin(p) && p.exists())
            .cloned()
            .collect();
        let files = discover_with_metadata(&named).unwrap_or_default();
        files
            .into_iter()
            .map(|(p, meta)| {
                let stamp = meta.and_then(|m| Some((m.modified().ok()?, m.len())));
                (p, stamp)
            })
            .collect()
    }

    /// Whether the files changed since the last load (cheap: metadata only).
    pub fn changed(&self) -> bool {
        self.fingerprint.as_ref() != Some(&self.fingerprint())
    }

    /// Reads and decodes the files in effect (the load without the
    /// emulation).
    fn read(&mut self) -> Result<(Loaded, Effective, Timing), ManifestError> {
        let first = self.fingerprint.is_none();
        let started = std::time::Instant::now();
        // Taken before reading: a file written while we read it then differs
        // from this stamp, so `changed` reports it and the next reload picks
        // it up. Taken after, that write would be stamped as seen and lost.
        let stamp = self.fingerprint();
        let named: Vec<PathBuf> = self
            .paths
            .iter()
            .filter(|p| !is_stdin(p) && (first || p.exists()))
            .cloned()
            .collect();
        // Standard input is read once, on the first load; later loads
        // unpack it.
        let mut stdin_now = None;
        if first
            && self.paths.iter().any(|p| is_stdin(p))
            && let Some(mut f) = load_paths(&[PathBuf::from("-")])?.into_iter().next()
        {
            self.stdin = Some(Arc::new(Kept::pack(&mut f)));
            stdin_now = Some(f);
        }
        let paths = discover(&named)?;
        // A file unchanged since it was last read (its stamp then taken
        // before reading, as this one) is taken as read then: a reload
        // after one file changed reads that file, not all of them.
        let stamps: HashMap<&Path, Stamp> = stamp
            .iter()
            .filter_map(|(p, s)| Some((p.as_path(), (*s)?)))
            .collect();
        // Each file in effect as kept (it becomes the last good when it is
        // good: one copy for both). A file a reload takes as read then is
        // unpacked again; one that does not unpack (which does not happen)
        // is read again.
        let mut packed: HashMap<PathBuf, Arc<Kept>> = HashMap::new();
        let mut fresh: Vec<Option<Arc<SourceFile>>> = paths
            .iter()
            .map(|p| {
                let (read, kept) = self.last_read.get(p)?;
                let file = (stamps.get(p.as_path()) == Some(read))
                    .then(|| kept.unpack())
                    .flatten()?;
                packed.insert(p.clone(), kept.clone());
                Some(Arc::new(file))
            })
            .collect();
        let unread: Vec<PathBuf> = paths
            .iter()
            .zip(&fresh)
            .filter(|(_, f)| f.is_none())
            .map(|(p, _)| p.clone())
            .collect();
        let reread = unread.len();
        // Packed on the reading threads, as each file is read.
        let mut read_now = load_files_then(&unread, |mut f| {
            let kept = Kept::pack(&mut f);
            (f, kept)
        })
        .into_iter();
        for (path, slot) in paths.iter().zip(&mut fresh) {
            if slot.is_some() {
                continue;
            }
            match read_now.next() {
                Some(Ok((f, mut kept))) => {
                    kept.rehome();
                    let kept = Arc::new(kept);
                    match stamps.get(path.as_path()) {
                        Some(s) => self.last_read.insert(path.clone(), (*s, kept.clone())),
                        None => self.last_read.remove(path),
                    };
                    packed.insert(path.clone(), kept);
                    *slot = Some(Arc::new(f));
                }
                Some(Err(e)) if first => return Err(e),
                // Deleted between discovery and reading: its objects go.
                Some(Err(e)) => tracing::debug!(error = %e, "skipping vanished file"),
                None => {}
            }
        }
        let mut fresh: Vec<Arc<SourceFile>> = fresh.into_iter().flatten().collect();
        if let Some(kept) = &self.stdin
            && let Some(file) = stdin_now.or_else(|| kept.unpack())
        {
            packed.insert(file.path.clone(), kept.clone());
            fresh.push(Arc::new(file));
        }
        let listed: HashSet<&Path> = paths.iter().map(PathBuf::as_path).collect();
        self.last_read.retain(|p, _| listed.contains(p.as_path()));
        self.fingerprint = Some(stamp);
        let read = started.elapsed();
        let mut loaded = Loaded {
            files: fresh.len(),
            ..Loaded::default()
        };
        let mut effective = Vec::with_capacity(fresh.len());
        for file in fresh {
            let broken = file
                .diagnostics
                .iter()
                .any(|d| d.severity == Severity::Error);
            loaded.diagnostics.extend(file.diagnostics.iter().cloned());
            // An editor or `kubectl get -o yaml > f` truncates before it
            // writes: an empty file that had objects is taken as mid-write,
            // not as "delete everything"; deleting the file removes them.
            let emptied = !first
                && !is_stdin(&file.path)
                && std::fs::metadata(&file.path).is_ok_and(|m| m.len() == 0);
            let good = self.last_good.get(&file.path);
            let kept_good = match good {
                Some(good) if emptied && good.objects > 0 => {
                    tracing::debug!(file = %file.display, "file is empty, keeping its objects until it is written or deleted");
                    good.unpack()
                }
                Some(good) if broken => {
                    loaded.kept.push(file.display.to_string());
                    good.unpack()
                }
                _ => None,
            };
            let good = match kept_good {
                Some(good) => Arc::new(good),
                None => {
                    let kept = packed
                        .get(&file.path)
                        .cloned()
                        .unwrap_or_else(|| Arc::new(Kept::pack(&mut (*file).clone())));
                    self.last_good.insert(file.path.clone(), kept);
                    file
                }
            };
            effective.push(good);
        }
        let present: HashSet<&Path> = effective.iter().map(|f| f.path.as_path()).collect();
        self.last_good.retain(|p, _| present.contains(p.as_path()));
        let found = duplicates(effective.iter().map(|f| &**f));
        loaded
            .diagnostics
            .extend(found.iter().flat_map(|f| f.iter().map(|(_, d)| d.clone())));
        loaded.diagnostics.sort();
        loaded.diagnostics.dedup();
        let decoded = started.elapsed();
        Ok((
            loaded,
            Effective {
                files: effective,
                duplicates: found,
            },
            Timing {
                started,
                reread,
                read,
                decoded,
            },
        ))
    }

    /// Reads the input. The first load fails if a named path is missing;
    /// later loads treat a vanished file as deleted. A file that turned
    /// invalid keeps its last good objects.
    pub fn load(&mut self) -> Result<Loaded, ManifestError> {
        let (mut loaded, effective, timing) = self.read()?;
        loaded.objects = effective.objects().cloned().collect();
        loaded.view = emulate(&loaded.objects, &self.control);
        timing.log(&loaded);
        Ok(loaded)
    }

    /// [`Self::load`] for a consumer that keeps only the resolved state (a
    /// serving index): the deltas that replace the cluster's state go to
    /// `sink` as the emulation makes them, one namespace's pods at a time,
    /// so the whole cluster is never held in both forms. The returned load
    /// has its diagnostics and pending pods; its objects and view are empty.
    pub fn load_into(&mut self, sink: &mut dyn FnMut(Delta)) -> Result<Loaded, ManifestError> {
        let (mut loaded, effective, timing) = self.read()?;
        sink(Delta::Init(Scope::All));
        // The files' objects as they are: no copy of the cluster's
        // manifests is made for the emulation.
        loaded.view.pending = emulate_each(effective.objects(), &self.control, &mut |obj| {
            sink(Delta::InitApply(obj))
        });
        timing.log(&loaded);
        sink(Delta::InitDone(Scope::All));
        Ok(loaded)
    }

    /// Starts watching the directories behind the paths; every event sends
    /// `msg` on `tx`. Keep the returned watcher alive.
    pub fn watch<T: Clone + Send + 'static>(
        &self,
        tx: Sender<T>,
        msg: T,
    ) -> Result<notify::RecommendedWatcher, ManifestError> {
        let werr = |path: &Path| {
            let path = path.display().to_string();
            move |source| ManifestError::Watch { path, source }
        };
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.as_ref().is_ok_and(|e| !may_change(&e.kind)) {
                    return;
                }
                let _ = tx.send(msg.clone());
            })
            .map_err(werr(Path::new(".")))?;
        for p in self.paths.iter().filter(|p| !is_stdin(p)) {
            let (dir, mode) = if p.is_dir() {
                (p.clone(), RecursiveMode::Recursive)
            } else {
                let parent = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or_else(|| Path::new("."));
                (parent.to_path_buf(), RecursiveMode::NonRecursive)
            };
            watcher.watch(&dir, mode).map_err(werr(&dir))?;
        }
        Ok(watcher)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn reading_the_watched_files_is_not_a_change_and_writing_one_is() {
        let dir = std::env::temp_dir().join(format!("svcnet-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("a.yaml");
        let namespace =
            |name: &str| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n");
        std::fs::write(&file, namespace("a")).expect("write");
        let mut source = ManifestSource::new(vec![dir.clone()], ControlConfig::default());
        let (tx, rx) = mpsc::channel();
        let watcher = source.watch(tx, ());
        // Loading and scanning open the directory and read the file.
        assert!(source.load().is_ok());
        for _ in 0..3 {
            assert!(!source.changed());
        }
        let quiet = rx.recv_timeout(Duration::from_millis(300)).is_err();
        std::fs::write(&file, namespace("b")).expect("write");
        let noticed = rx.recv_timeout(Duration::from_secs(5)).is_ok();
        drop(watcher);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(quiet, "reading the manifests was taken as a change");
        assert!(noticed, "writing a manifest was missed");
    }

    #[test]
    fn a_kept_file_unpacks_to_the_file_as_loaded() {
        let every_kind = "\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: shop, labels: {app: p}}
spec: {hostname: h, subdomain: s, containers: [{name: c, ports: [{name: web, containerPort: 80}]}]}
status: {podIP: 10.1.0.9, podIPs: [{ip: 10.1.0.9}, {ip: 'fd00::9'}], phase: Running}
---
apiVersion: v1
kind: Endpoints
metadata: {name: e, namespace: shop}
subsets:
  - addresses: [{ip: 10.1.0.7, hostname: e0, nodeName: n1, targetRef: {kind: Pod, name: e0}}]
    notReadyAddresses: [{ip: 10.1.0.8}]
    ports: [{name: web, port: 80, protocol: TCP}]
  - addresses: [{ip: 10.1.0.10}]
    ports: [{port: 53, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: x, namespace: shop}
spec: {type: ExternalName, externalName: db.example.com}
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceImport
metadata: {name: i, namespace: shop}
spec: {type: ClusterSetIP, ips: [10.2.0.1], ports: [{name: web, port: 80, protocol: TCP}]}
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: x, namespace: shop}
---
apiVersion: v1
kind: Service
metadata: {name: broken, namespace: shop}
spec: {ports: [{port: 99999}]}
";
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut files: Vec<SourceFile> = ["local", "west"]
            .iter()
            .flat_map(|d| discover(&[examples.join(d)]).unwrap_or_default())
            .filter_map(|p| crate::load::load_file(&p).ok())
            .collect();
        let every = crate::load::load_text(Arc::from("every-kind.yaml"), every_kind);
        let kinds: HashSet<svcnet_model::Kind> = every.objects.iter().map(|o| o.kind()).collect();
        assert_eq!(kinds.len(), 6, "{kinds:?}");
        assert!(!every.diagnostics.is_empty());
        files.push(every);
        let objects: usize = files.iter().map(|f| f.objects.len()).sum();
        assert!(
            files.len() >= 6 && objects >= 20,
            "{} files, {objects} objects",
            files.len()
        );
        for mut file in files {
            let before = file.clone();
            let kept = Kept::pack(&mut file);
            assert_eq!(file, before, "packing leaves the file as it was");
            assert!(matches!(kept.body, Body::Packed(_)), "{}", file.display);
            let back = kept.unpack().expect("unpacks");
            assert_eq!(back, before);
            for o in &back.objects {
                let origin = o.meta().origin.as_ref().expect("an origin");
                assert!(
                    Arc::ptr_eq(&origin.file, &back.display),
                    "one copy of the file name"
                );
            }
        }
    }

    #[test]
    fn a_reload_reads_the_changed_files_only() {
        let dir = std::env::temp_dir().join(format!("svcnet-reread-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let namespace =
            |name: &str| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n");
        let (a, b) = (dir.join("a.yaml"), dir.join("b.yaml"));
        let write = |path: &Path, text: &str, modified: SystemTime| {
            std::fs::write(path, text).expect("write");
            let file = std::fs::File::options()
                .write(true)
                .open(path)
                .expect("open");
            file.set_modified(modified).expect("set mtime");
        };
        let then = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        write(&a, &namespace("a1"), then);
        write(&b, &namespace("b1"), then);
        let mut source = ManifestSource::new(vec![dir.clone()], ControlConfig::default());
        let names = |l: &Loaded| -> Vec<String> {
            let mut n: Vec<String> = l.objects.iter().map(|o| o.meta().name.clone()).collect();
            n.sort();
            n
        };
        let first = source.load().expect("load");
        // b is rewritten with its stamp (time and length) kept: taken as
        // unchanged, it is not read again. a's new time makes it read.
        write(&b, &namespace("b2"), then);
        write(&a, &namespace("a2"), then + Duration::from_secs(1));
        assert!(source.changed());
        let second = source.load().expect("reload");
        // A file whose stamp differs is read again.
        write(&b, &namespace("b3"), then + Duration::from_secs(2));
        let third = source.load().expect("reload");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(names(&first), ["a1", "b1"]);
        assert_eq!(names(&second), ["a2", "b1"]);
        assert_eq!(names(&third), ["a2", "b3"]);
    }

    #[test]
    fn a_duplicate_across_files_is_left_out_of_both_kinds_of_load() {
        // The serving load reads the files' objects in place; the other
        // copies them. Both leave the later declaration out, with an error.
        let dir = std::env::temp_dir().join(format!("svcnet-dups-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let service = |name: &str, port: u16| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n\
                 spec: {{selector: {{app: x}}, ports: [{{port: {port}}}]}}\n"
            )
        };
        std::fs::write(
            dir.join("a.yaml"),
            service("web", 80) + "---\n" + &service("api", 81),
        )
        .expect("write");
        std::fs::write(
            dir.join("b.yaml"),
            service("web", 8080) + "---\n" + &service("db", 82),
        )
        .expect("write");
        let mut source = ManifestSource::new(vec![dir.clone()], ControlConfig::default());
        let copied = source.load().expect("load");
        let mut source = ManifestSource::new(vec![dir.clone()], ControlConfig::default());
        let mut streamed = Vec::new();
        let served = source
            .load_into(&mut |d| {
                if let Delta::InitApply(o) = d {
                    streamed.push(o);
                }
            })
            .expect("load");
        let _ = std::fs::remove_dir_all(&dir);
        let ports = |objects: &[svcnet_model::Object]| -> Vec<(String, u16)> {
            let mut p: Vec<(String, u16)> = objects
                .iter()
                .filter_map(|o| match o {
                    svcnet_model::Object::Service(s) if s.meta.name != "kubernetes" => {
                        Some((s.meta.name.clone(), s.ports.first()?.port))
                    }
                    _ => None,
                })
                .collect();
            p.sort();
            p
        };
        let want = [
            ("api".to_owned(), 81),
            ("db".to_owned(), 82),
            ("web".to_owned(), 80),
        ];
        assert_eq!(ports(&copied.objects), want);
        assert_eq!(ports(&copied.view.objects), want);
        assert_eq!(ports(&streamed), want);
        for loaded in [&copied, &served] {
            let dups: Vec<_> = loaded
                .diagnostics
                .iter()
                .filter(|d| d.problem.contains("duplicate object"))
                .collect();
            assert_eq!(dups.len(), 1, "{:?}", loaded.diagnostics);
            assert!(dups[0].origin.file.ends_with("b.yaml"));
        }
    }
}
