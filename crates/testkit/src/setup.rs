//! Cluster state for a test: manifests and `serve` options, turned into a
//! snapshot the way `svcnet serve` does it, or into its command line.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use svcnet_index::{IndexConfig, PodMode, Snapshot};
use svcnet_manifest::Severity;
use svcnet_manifest::control::ControlConfig;
use svcnet_model::Cidr;
use svcnet_server::Pipeline;

/// The workspace root (where `tests/vectors` and `examples` live).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = here.join("../..");
    root.canonicalize().unwrap_or(root)
}

#[derive(Clone, Debug)]
enum Source {
    Paths(Vec<PathBuf>),
    Yaml(String),
}

/// Manifests of one or several clusters plus `serve` options. The first
/// cluster is the `-f` one (`cluster.local` answers for it); the others are
/// `--cluster ID=PATH`.
///
/// Options are named like the `svcnet serve` flags without the dashes and
/// take the flag's values (`ttl 30`, `pods insecure`, `ptr all`,
/// `zone a.local b.local`, `pod-cidr 10.244.0.0/16 fd00:10:244::/64`,
/// `service-cidr …`, `clusterset-cidr …`, `nodes a,b`, `advertise IP…`,
/// `no-cluster-names`). A list option replaces the default the first time it
/// is given and adds to it after, as repeated flags do.
#[derive(Clone, Debug)]
pub struct Setup {
    clusters: Vec<(String, Source)>,
    options: Vec<(String, Vec<String>)>,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn resolve(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        workspace_root().join(path)
    }
}

/// Flags whose values accumulate (one flag per value).
const LIST_OPTIONS: &[&str] = &["zone", "pod-cidr", "service-cidr", "advertise"];
/// Flags that take exactly one value.
const VALUE_OPTIONS: &[&str] = &["ttl", "pods", "ptr", "clusterset-cidr", "nodes"];
/// Flags without a value.
const SWITCH_OPTIONS: &[&str] = &["autopath", "no-cluster-names", "endpoint-pod-names"];

impl Setup {
    /// No clusters yet.
    pub fn new() -> Self {
        Self {
            clusters: Vec::new(),
            options: Vec::new(),
        }
    }

    /// Cluster `local` from manifest text (several documents allowed).
    pub fn yaml(text: &str) -> Self {
        Self::new().cluster_yaml("local", text)
    }

    /// Cluster `local` from a file or directory (relative to the workspace root).
    pub fn dir(path: impl AsRef<Path>) -> Self {
        Self::new().cluster_dir("local", path)
    }

    /// Adds a cluster from manifest text.
    pub fn cluster_yaml(mut self, id: &str, text: &str) -> Self {
        self.clusters
            .push((id.to_owned(), Source::Yaml(text.to_owned())));
        self
    }

    /// Adds a cluster from a file or directory (relative to the workspace root).
    pub fn cluster_dir(mut self, id: &str, path: impl AsRef<Path>) -> Self {
        let path = resolve(path.as_ref());
        match self.clusters.iter_mut().find(|(c, _)| c == id) {
            Some((_, Source::Paths(paths))) => paths.push(path),
            _ => self
                .clusters
                .push((id.to_owned(), Source::Paths(vec![path]))),
        }
        self
    }

    /// Adds an option; `values` is split on whitespace (`"10.0.0.0/8 fd00::/64"`).
    pub fn option(mut self, name: &str, values: &str) -> Self {
        let values = values.split_whitespace().map(str::to_owned).collect();
        self.options.push((name.to_owned(), values));
        self
    }

    /// The options in the order given.
    pub fn options(&self) -> &[(String, Vec<String>)] {
        &self.options
    }

    /// The cluster ids, the `-f` one first.
    pub fn cluster_ids(&self) -> Vec<&str> {
        self.clusters.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// The index and control-plane configuration, derived from the options
    /// exactly as `svcnet serve` derives it from its flags.
    pub fn configs(&self) -> Result<(IndexConfig, ControlConfig), String> {
        let mut index = IndexConfig::default();
        let mut control = ControlConfig::default();
        let mut given: Vec<&str> = Vec::new();
        for (name, values) in &self.options {
            let first = !given.contains(&name.as_str());
            given.push(name);
            let one = || match values.as_slice() {
                [v] => Ok(v.as_str()),
                _ => Err(format!("option {name} takes one value, got {values:?}")),
            };
            let cidrs = || -> Result<Vec<Cidr>, String> {
                values
                    .iter()
                    .map(|v| v.parse::<Cidr>().map_err(|e| format!("option {name}: {e}")))
                    .collect()
            };
            let extend = |list: &mut Vec<Cidr>, new: Vec<Cidr>| {
                if first {
                    list.clear();
                }
                list.extend(new);
            };
            match name.as_str() {
                "ttl" => {
                    index.ttl = one()?
                        .parse()
                        .ok()
                        .filter(|t| *t <= 3600)
                        .ok_or_else(|| format!("option ttl: want 0-3600, got {values:?}"))?;
                }
                "pods" => {
                    index.pods = match one()? {
                        "verified" => PodMode::Verified,
                        "insecure" => PodMode::Insecure,
                        "disabled" => PodMode::Disabled,
                        other => return Err(format!("option pods: unknown mode {other:?}")),
                    };
                }
                "ptr" => {
                    index.ptr_all = match one()? {
                        "canonical" => false,
                        "all" => true,
                        other => return Err(format!("option ptr: unknown mode {other:?}")),
                    };
                }
                "zone" => {
                    if first {
                        index.zones.clear();
                    }
                    index.zones.extend(
                        values
                            .iter()
                            .map(|z| z.trim_end_matches('.').to_ascii_lowercase()),
                    );
                }
                "pod-cidr" => extend(&mut control.pod_cidrs, cidrs()?),
                "service-cidr" => extend(&mut control.service_cidrs, cidrs()?),
                "clusterset-cidr" => {
                    index.clusterset_cidr =
                        one()?.parse().map_err(|e| format!("option {name}: {e}"))?;
                }
                "nodes" => {
                    control.nodes = one()?.split(',').map(str::to_owned).collect();
                }
                "advertise" => {
                    if first {
                        index.advertise.clear();
                    }
                    for v in values {
                        let ip: IpAddr = v
                            .parse()
                            .map_err(|_| format!("option advertise: {v:?} is not an IP"))?;
                        index.advertise.push(ip);
                    }
                }
                "no-cluster-names" if values.is_empty() => index.cluster_names = false,
                "endpoint-pod-names" if values.is_empty() => index.endpoint_pod_names = true,
                "autopath" if values.is_empty() => index.autopath = true,
                other => return Err(format!("unknown option {other:?} {values:?}")),
            }
        }
        // As the binary does: we are authoritative for the reverse zones of
        // the service and pod ranges.
        index.reverse_cidrs = control.service_cidrs.clone();
        index.reverse_cidrs.extend(&control.pod_cidrs);
        let local = self.clusters.first().map(|(id, _)| id.clone());
        control.cluster = local.clone().unwrap_or_else(|| "local".to_owned());
        index.local_cluster = local;
        Ok((index, control))
    }

    /// Writes the clusters given as text into files under `dir` and returns
    /// the same setup with paths only (what `svcnet serve` can be pointed at).
    pub fn materialize(&self, dir: &Path) -> Result<Self, String> {
        let mut out = Self {
            clusters: Vec::new(),
            options: self.options.clone(),
        };
        for (id, source) in &self.clusters {
            let source = match source {
                Source::Paths(p) => Source::Paths(p.clone()),
                Source::Yaml(text) => {
                    let cluster_dir = dir.join(id);
                    std::fs::create_dir_all(&cluster_dir)
                        .map_err(|e| format!("{}: {e}", cluster_dir.display()))?;
                    let file = cluster_dir.join("manifests.yaml");
                    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
                    Source::Paths(vec![file])
                }
            };
            out.clusters.push((id.clone(), source));
        }
        Ok(out)
    }

    fn paths(&self) -> Result<Vec<(String, Vec<PathBuf>)>, String> {
        self.clusters
            .iter()
            .map(|(id, s)| match s {
                Source::Paths(p) => Ok((id.clone(), p.clone())),
                Source::Yaml(_) => Err(format!(
                    "cluster {id} is manifest text: materialize() it into files first"
                )),
            })
            .collect()
    }

    /// Loads the manifests through the same pipeline `svcnet serve` uses.
    /// Manifest errors are returned, not logged: a test input must be valid.
    pub fn pipeline(&self) -> Result<Pipeline, String> {
        if self.clusters.is_empty() {
            return Err("no clusters".to_owned());
        }
        let (index, control) = self.configs()?;
        let temp = std::env::temp_dir().join(format!(
            "svcnet-testkit-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let files = self.materialize(&temp);
        let loaded = files.and_then(|f| {
            let clusters = f.paths()?;
            Pipeline::load(&clusters, index, &control).map_err(|e| e.to_string())
        });
        let _ = std::fs::remove_dir_all(&temp);
        let pipeline = loaded?;
        let errors: Vec<String> = pipeline
            .diagnostics()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect();
        if !errors.is_empty() {
            return Err(format!("manifest errors:\n  {}", errors.join("\n  ")));
        }
        Ok(pipeline)
    }

    /// The snapshot `svcnet serve` would answer from. Panics on invalid
    /// input (this is for tests).
    #[track_caller]
    pub fn snapshot(&self) -> Snapshot {
        match self.pipeline() {
            Ok(mut p) => p.index.build(),
            Err(e) => panic!("test setup: {e}"),
        }
    }

    /// The `svcnet serve` arguments that load this state (`-f`,
    /// `--cluster-id`, `--cluster`, and the options as flags), without
    /// `--listen` and without upstream flags: those are the caller's. Text
    /// clusters must be [`Self::materialize`]d first.
    pub fn serve_args(&self) -> Result<Vec<String>, String> {
        let clusters = self.paths()?;
        let mut args = Vec::new();
        let mut clusters = clusters.into_iter();
        if let Some((id, paths)) = clusters.next() {
            for p in paths {
                args.push("-f".to_owned());
                args.push(p.display().to_string());
            }
            if id != "local" {
                args.push("--cluster-id".to_owned());
                args.push(id);
            }
        }
        for (id, paths) in clusters {
            for p in paths {
                args.push("--cluster".to_owned());
                args.push(format!("{id}={}", p.display()));
            }
        }
        for (name, values) in &self.options {
            let name = name.as_str();
            if SWITCH_OPTIONS.contains(&name) {
                args.push(format!("--{name}"));
            } else if LIST_OPTIONS.contains(&name) || VALUE_OPTIONS.contains(&name) {
                for v in values {
                    args.push(format!("--{name}"));
                    args.push(v.clone());
                }
            } else {
                return Err(format!("unknown option {name:?}"));
            }
        }
        Ok(args)
    }
}

impl Default for Setup {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_configs_and_flags() {
        let setup = Setup::new()
            .cluster_dir("west", "/m/west")
            .cluster_dir("east", "/m/east")
            .option("pods", "insecure")
            .option("pod-cidr", "10.244.0.0/16 fd00::/64")
            .option("no-cluster-names", "");
        let (index, control) = setup.configs().unwrap();
        assert_eq!(index.pods, PodMode::Insecure);
        assert!(!index.cluster_names);
        assert_eq!(control.pod_cidrs.len(), 2);
        assert_eq!(index.reverse_cidrs.len(), 3);
        assert_eq!(index.local_cluster.as_deref(), Some("west"));
        assert_eq!(
            setup.serve_args().unwrap().join(" "),
            "-f /m/west --cluster-id west --cluster east=/m/east --pods insecure \
             --pod-cidr 10.244.0.0/16 --pod-cidr fd00::/64 --no-cluster-names"
        );
        assert!(Setup::dir("/x").option("bogus", "1").configs().is_err());
        assert!(Setup::dir("/x").option("ttl", "3601").configs().is_err());
        assert!(Setup::yaml("").serve_args().is_err());
    }
}
