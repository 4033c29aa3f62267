//! Reading manifests the way kubectl names them (SPEC §4 `-f PATH`) and the
//! load-time checks of SPEC §1.2 (unreadable text, duplicate objects).
//!
//! A file is read as given; a directory is walked recursively in sorted
//! order, taking `*.yaml`, `*.yml` and `*.json` and skipping hidden entries.
//! Skipping hidden entries also skips the `..data` and `..<timestamp>`
//! directories of a Kubernetes ConfigMap mount, while the visible symlinks
//! into them are followed, so a mounted ConfigMap loads each file once.
//! `-` is standard input, read once.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use svcnet_model::{Object, ObjectKey, Origin};

use crate::decode::decode_document;
use crate::yaml::parse_documents;
use crate::{Diagnostic, ManifestError, Severity};

/// The path that means standard input.
pub const STDIN: &str = "-";

/// One manifest file, loaded: the objects that passed validation and what
/// was wrong with the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The path as discovered (`-` for standard input).
    pub path: PathBuf,
    /// The path as diagnostics show it (relative as the user gave it).
    pub display: Arc<str>,
    /// Objects in document order (an Endpoints gives one per subset).
    pub objects: Vec<Object>,
    /// Errors and warnings, in position order.
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses and decodes every document of `text`; `display` names the file
/// in origins and diagnostics (and is taken as its path).
pub fn load_text(display: Arc<str>, text: &str) -> SourceFile {
    let mut objects = Vec::new();
    let mut diagnostics = Vec::new();
    for document in parse_documents(text) {
        match document {
            Ok(node) => {
                let (found, problems) = decode_document(&display, &node);
                objects.extend(found);
                diagnostics.extend(problems);
            }
            Err(e) => diagnostics.push(Diagnostic {
                origin: Origin {
                    file: display.clone(),
                    line: e.line,
                    column: e.column,
                },
                severity: Severity::Error,
                object: None,
                problem: e.to_string(),
            }),
        }
    }
    diagnostics.sort_by_key(|d| (d.origin.line, d.origin.column));
    // Kept until the file changes: no room for more.
    objects.shrink_to_fit();
    SourceFile {
        path: PathBuf::from(&*display),
        display,
        objects,
        diagnostics,
    }
}

/// [`load_text`] for raw bytes: a UTF-8 byte order mark is dropped, and
/// text that is not UTF-8 is one error at 1:1.
pub fn load_bytes(path: PathBuf, display: Arc<str>, bytes: &[u8]) -> SourceFile {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => SourceFile {
            path,
            ..load_text(display, text)
        },
        Err(e) => {
            let offset = e.valid_up_to();
            let diagnostic = Diagnostic {
                origin: Origin {
                    file: display.clone(),
                    line: 1,
                    column: 1,
                },
                severity: Severity::Error,
                object: None,
                problem: format!("not UTF-8 text (invalid byte at offset {offset})"),
            };
            SourceFile {
                path,
                display,
                objects: Vec::new(),
                diagnostics: vec![diagnostic],
            }
        }
    }
}

/// Reads and loads one file (`-`: standard input), shown as `path` is written.
pub fn load_file(path: &Path) -> Result<SourceFile, ManifestError> {
    let bytes = if path == Path::new(STDIN) {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).map(|_| bytes)
    } else {
        fs::read(path)
    };
    let bytes = bytes.map_err(|e| read_error(path, e))?;
    let display: Arc<str> = Arc::from(path.display().to_string());
    Ok(load_bytes(path.to_path_buf(), display, &bytes))
}

/// [`load_file`] on each path, on as many threads as there are cores (each
/// file is parsed on its own); the results in the order of `paths`.
pub fn load_files(paths: &[PathBuf]) -> Vec<Result<SourceFile, ManifestError>> {
    load_files_then(paths, |f| f)
}

/// [`load_files`], with `then` applied to each file loaded on the thread
/// that loaded it.
pub(crate) fn load_files_then<T: Send>(
    paths: &[PathBuf],
    then: impl Fn(SourceFile) -> T + Sync,
) -> Vec<Result<T, ManifestError>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(paths.len());
    if threads <= 1 || paths.len() < 4 {
        return paths.iter().map(|p| load_file(p).map(&then)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, Result<T, ManifestError>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(path) = paths.get(i) else { break };
                        mine.push((i, load_file(path).map(&then)));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            // A panic in a worker is one in the caller, as when loading
            // on one thread.
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// The manifest files named by `-f` arguments, in argument order, each
/// directory's files sorted; a file reached twice is listed once.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ManifestError> {
    Ok(discover_with_metadata(paths)?
        .into_iter()
        .map(|(path, _)| path)
        .collect())
}

/// [`discover`], each file with its metadata (none for standard input).
/// A file reached twice (two links, or named and in a named directory) is
/// known by its device and inode, from the metadata each file needs anyway:
/// the server looks at every file every few seconds, and resolving each
/// path to compare them cost a system call per path component.
pub fn discover_with_metadata(
    paths: &[PathBuf],
) -> Result<Vec<(PathBuf, Option<fs::Metadata>)>, ManifestError> {
    let mut found = Vec::new();
    let mut walked = HashSet::new();
    for path in paths {
        if path == Path::new(STDIN) {
            found.push((path.clone(), None));
            continue;
        }
        let metadata = fs::metadata(path).map_err(|e| read_error(path, e))?;
        if metadata.is_dir() {
            walk(path, &mut found, &mut walked)?;
        } else {
            found.push((path.clone(), Some(metadata)));
        }
    }
    let mut seen = HashSet::new();
    found.retain(|(_, metadata)| metadata.as_ref().is_none_or(|m| seen.insert(file_id(m))));
    Ok(found)
}

/// A file's identity: its device and inode.
fn file_id(metadata: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (metadata.dev(), metadata.ino())
}

fn read_error(path: &Path, source: std::io::Error) -> ManifestError {
    ManifestError::Read {
        path: path.display().to_string(),
        source,
    }
}

/// Recursive walk; `walked` holds the directories' identities, so a symlink
/// loop or two links to one directory are walked once.
fn walk(
    dir: &Path,
    found: &mut Vec<(PathBuf, Option<fs::Metadata>)>,
    walked: &mut HashSet<(u64, u64)>,
) -> Result<(), ManifestError> {
    let metadata = fs::metadata(dir).map_err(|e| read_error(dir, e))?;
    if !walked.insert(file_id(&metadata)) {
        return Ok(());
    }
    let mut entries = fs::read_dir(dir)
        .and_then(|entries| {
            entries
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| read_error(dir, e))?;
    entries.sort();
    for name in entries {
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = dir.join(&name);
        let metadata = match fs::metadata(&path) {
            Ok(metadata) => metadata,
            // A dangling symlink (a ConfigMap mount mid-swap): nothing to load.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(path = %path.display(), "skipping a dangling symlink");
                continue;
            }
            Err(e) => return Err(read_error(&path, e)),
        };
        if metadata.is_dir() {
            walk(&path, found, walked)?;
        } else if metadata.is_file()
            && path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "json")
        {
            found.push((path, Some(metadata)));
        }
    }
    Ok(())
}

/// Loads every manifest named by `-f` arguments, then drops duplicates
/// ([`check_duplicates`]). Only unreadable paths are errors; bad content
/// becomes diagnostics.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<SourceFile>, ManifestError> {
    let mut files = load_files(&discover(paths)?)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    check_duplicates(&mut files);
    Ok(files)
}

/// Drops every object whose key was already declared earlier (in file
/// order), with an error on the later one. The slices of one Endpoints
/// object share its origin and are not duplicates of each other.
pub fn check_duplicates(files: &mut [SourceFile]) {
    let found = duplicates(files.iter());
    for (file, found) in files.iter_mut().zip(found) {
        if found.is_empty() {
            continue;
        }
        file.objects = std::mem::take(&mut file.objects)
            .into_iter()
            .enumerate()
            .filter(|(at, _)| !repeated(&found, *at))
            .map(|(_, o)| o)
            .collect();
        file.diagnostics.extend(found.into_iter().map(|(_, d)| d));
        file.diagnostics
            .sort_by_key(|d| (d.origin.line, d.origin.column));
    }
}

/// Whether the object at position `at` of a file is among `found`, the
/// file's part of [`duplicates`] (positions in increasing order).
pub fn repeated(found: &[(usize, Diagnostic)], at: usize) -> bool {
    found.binary_search_by_key(&at, |(p, _)| *p).is_ok()
}

/// The objects of `files` that repeat one before them (the same kind,
/// namespace and name, declared at another place): for each file, their
/// positions in its objects, in order, each with its error. The first
/// declaration is the one that counts.
pub fn duplicates<'a>(
    files: impl IntoIterator<Item = &'a SourceFile>,
) -> Vec<Vec<(usize, Diagnostic)>> {
    let mut first: HashMap<ObjectKey, Option<&'a Origin>> = HashMap::new();
    let mut all = Vec::new();
    for file in files {
        let mut found = Vec::new();
        for (at, object) in file.objects.iter().enumerate() {
            let origin = object.meta().origin.as_ref();
            let key = object.key();
            let earlier = match first.entry(key.clone()) {
                Entry::Vacant(slot) => {
                    slot.insert(origin);
                    None
                }
                Entry::Occupied(slot) if origin.is_some() && *slot.get() == origin => None,
                Entry::Occupied(slot) => Some(*slot.get()),
            };
            let Some(earlier) = earlier else {
                continue;
            };
            let problem = match earlier {
                Some(at) => format!("duplicate object, first defined at {at}"),
                None => "duplicate object".to_owned(),
            };
            let origin = origin.cloned().unwrap_or_else(|| Origin {
                file: file.display.clone(),
                line: 1,
                column: 1,
            });
            let object = Some((key.kind, key.namespace, key.name));
            found.push((
                at,
                Diagnostic {
                    origin,
                    severity: Severity::Error,
                    object,
                    problem,
                },
            ));
        }
        all.push(found);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVC_A: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n";
    const SVC_B: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: b}\n";

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("svcnet-load-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let path = self.0.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn names(file: &SourceFile) -> Vec<String> {
        file.objects.iter().map(|o| o.meta().name.clone()).collect()
    }

    #[test]
    fn spec_1_2_bad_document_does_not_hide_good_ones() {
        let text = format!(
            "{SVC_A}---\napiVersion: v1\nkind: Service\nmetadata: {{name: bad}}\nspec:\n  ports: [{{port: 70000}}]\n---\n{SVC_B}"
        );
        let file = load_text("m.yaml".into(), &text);
        assert_eq!(names(&file), ["a", "b"]);
        let shown: Vec<String> = file.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["m.yaml:9:18: Service default/bad: spec.ports[0].port: 70000 is out of range 1-65535"]
        );
    }

    #[test]
    fn spec_1_2_syntax_error_keeps_earlier_documents() {
        let file = load_text("m.yaml".into(), &format!("{SVC_A}---\nkind: [\n"));
        assert_eq!(names(&file), ["a"]);
        assert_eq!(file.diagnostics.len(), 1);
        assert_eq!(file.diagnostics[0].severity, Severity::Error);
        assert_eq!(file.diagnostics[0].origin.line, 6);
        assert!(file.diagnostics[0].problem.starts_with("invalid YAML"));
    }

    #[test]
    fn spec_1_2_invalid_utf8_is_a_diagnostic() {
        let file = load_bytes("x.yaml".into(), "x.yaml".into(), b"kind: \xff\n");
        assert!(file.objects.is_empty());
        assert_eq!(
            file.diagnostics[0].to_string(),
            "x.yaml:1:1: not UTF-8 text (invalid byte at offset 6)"
        );
        let bom = load_bytes(
            "y.yaml".into(),
            "y.yaml".into(),
            format!("\u{feff}{SVC_A}").as_bytes(),
        );
        assert_eq!(names(&bom), ["a"]);
    }

    #[test]
    fn spec_1_2_duplicates_are_dropped_but_endpoints_subsets_are_not() {
        let endpoints = "apiVersion: v1\nkind: Endpoints\nmetadata: {name: a}\nsubsets:\n- addresses: [{ip: 10.0.0.1}]\n- addresses: [{ip: 10.0.0.2}]\n";
        let mut files = vec![
            load_text("one.yaml".into(), &format!("{SVC_A}---\n{endpoints}")),
            load_text("two.yaml".into(), &format!("{SVC_B}---\n{SVC_A}")),
        ];
        check_duplicates(&mut files);
        assert_eq!(files[0].objects.len(), 3);
        assert!(files[0].diagnostics.is_empty());
        assert_eq!(names(&files[1]), ["b"]);
        assert_eq!(
            files[1].diagnostics[0].to_string(),
            "two.yaml:5:1: Service default/a: duplicate object, first defined at one.yaml:1:1"
        );
    }

    #[test]
    fn spec_4_directories_are_walked_sorted_and_filtered() {
        let dir = TempDir::new("walk");
        dir.write("b.yaml", SVC_B);
        dir.write("a/x.yml", SVC_A);
        dir.write(
            "c.json",
            "{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"c\"}}",
        );
        dir.write("notes.txt", "not a manifest");
        dir.write(".hidden.yaml", SVC_A);
        dir.write(".git/config.yaml", SVC_A);
        let explicit = dir.write("named.txt", SVC_A);
        let found = discover(&[dir.0.clone(), explicit]).unwrap();
        let rel: Vec<_> = found
            .iter()
            .map(|p| p.strip_prefix(&dir.0).unwrap().to_path_buf())
            .collect();
        let expected: Vec<PathBuf> = ["a/x.yml", "b.yaml", "c.json", "named.txt"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(rel, expected);

        let files = load_paths(std::slice::from_ref(&dir.0)).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(
            &*files[1].display,
            dir.0.join("b.yaml").display().to_string()
        );
        assert!(files.iter().all(|f| f.diagnostics.is_empty()));

        let missing = discover(&[dir.0.join("nope")]).unwrap_err();
        assert!(matches!(missing, ManifestError::Read { .. }));
    }

    #[cfg(unix)]
    #[test]
    fn spec_4_configmap_mounts_load_once() {
        use std::os::unix::fs::symlink;
        let dir = TempDir::new("configmap");
        dir.write("..2024_01_01_00_00_00.123/svc.yaml", SVC_A);
        symlink("..2024_01_01_00_00_00.123", dir.0.join("..data")).unwrap();
        symlink("..data/svc.yaml", dir.0.join("svc.yaml")).unwrap();
        symlink("..data/gone.yaml", dir.0.join("gone.yaml")).unwrap();
        symlink(".", dir.0.join("loop")).unwrap();
        let files = load_paths(std::slice::from_ref(&dir.0)).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, dir.0.join("svc.yaml"));
        assert_eq!(names(&files[0]), ["a"]);
    }
}
