//! `--config svcnet.toml`: every flag of a command has a key of the same
//! name (`cache-bytes = 1048576`, or `cache_bytes`), switches are booleans,
//! repeatable flags take arrays. The command line and the environment
//! override the file, key by key.
//!
//! The file is merged by turning its keys into flags appended to the
//! command line for every key the command line and environment left unset,
//! so a key means exactly what its flag means, with the same validation.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};

use crate::Cli;

/// A config file, read and parsed.
pub(crate) struct ConfigFile {
    path: PathBuf,
    text: String,
    table: toml::Table,
}

impl ConfigFile {
    /// Reads and parses `path`; errors say `file:line:column: problem`.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        let table = text.parse::<toml::Table>().map_err(|e| {
            let (line, col) = e.span().map_or((1, 1), |s| line_col(&text, s.start));
            anyhow::anyhow!(
                "{}:{line}:{col}: {}",
                path.display(),
                e.message().trim_end()
            )
        })?;
        Ok(Self {
            path: path.to_owned(),
            text,
            table,
        })
    }

    /// Where `key` is set, for messages: `file:line:column`.
    fn at(&self, key: &str) -> String {
        let (line, col) = self
            .text
            .lines()
            .enumerate()
            .find_map(|(i, l)| {
                let trimmed = l.trim_start();
                let rest = trimmed.strip_prefix(key)?;
                rest.trim_start()
                    .starts_with('=')
                    .then(|| (i + 1, l.len() - trimmed.len() + 1))
            })
            .unwrap_or((1, 1));
        format!("{}:{line}:{col}", self.path.display())
    }
}

/// 1-based line and column of byte `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// The config file named by `--config FILE` (or `SVCNET_CONFIG`) in `argv`.
pub(crate) fn path_in(argv: &[OsString]) -> Option<PathBuf> {
    let mut args = argv.iter().skip(1);
    while let Some(a) = args.next() {
        let Some(a) = a.to_str() else {
            continue;
        };
        if a == "--" {
            break;
        }
        if a == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("SVCNET_CONFIG").map(PathBuf::from)
}

/// `argv` with the file's settings added as flags wherever the command line
/// and the environment did not set them. Unknown keys are errors for
/// `serve`; the other commands ignore the serve-only ones.
pub(crate) fn merge(argv: &[OsString], file: &ConfigFile) -> anyhow::Result<Vec<OsString>> {
    let mut cmd = Cli::command();
    cmd.build();
    // A command line clap rejects is left for the real parse to report.
    let Ok(matches) = cmd.clone().try_get_matches_from(argv) else {
        return Ok(argv.to_vec());
    };
    let Some((name, sub_matches)) = matches.subcommand() else {
        return Ok(argv.to_vec());
    };
    let Some(sub) = cmd.find_subcommand(name) else {
        return Ok(argv.to_vec());
    };
    let serve = cmd.find_subcommand("serve");
    let given = |id: &str| {
        let source = |m: &ArgMatches| m.try_get_raw(id).ok().and_then(|_| m.value_source(id));
        matches!(
            source(sub_matches).or_else(|| source(&matches)),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let mut extra: Vec<OsString> = Vec::new();
    for (key, value) in &file.table {
        let long = key.replace('_', "-");
        if long == "config" {
            bail!("{}: a config file cannot name another", file.at(key));
        }
        if long == "help" || long == "version" {
            bail!("{}: unknown key {key:?}", file.at(key));
        }
        let Some(arg) = sub.get_arguments().find(|a| a.get_long() == Some(&long)) else {
            let known_elsewhere =
                serve.is_some_and(|s| s.get_arguments().any(|a| a.get_long() == Some(&long)));
            if name == "serve" || !known_elsewhere {
                bail!(
                    "{}: unknown key {key:?} (keys are the flags of `svcnet serve --help`)",
                    file.at(key)
                );
            }
            continue;
        };
        let id = arg.get_id().as_str();
        if given(id)
            || sub
                .get_arg_conflicts_with(arg)
                .iter()
                .any(|c| given(c.get_id().as_str()))
        {
            continue;
        }
        let flag = format!("--{long}");
        let values: Vec<&toml::Value> = match value {
            toml::Value::Array(items) => items.iter().collect(),
            v => vec![v],
        };
        for v in values {
            match v {
                toml::Value::Boolean(b) if !arg.get_action().takes_values() => {
                    if *b {
                        extra.push(flag.clone().into());
                    }
                }
                // `--flag=value`, so a value starting with `-` stays a value.
                toml::Value::String(s) => extra.push(format!("{flag}={s}").into()),
                toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                    extra.push(format!("{flag}={v}").into());
                }
                _ => bail!(
                    "{}: {key}: expected a string, number, boolean or an array of them",
                    file.at(key)
                ),
            }
        }
    }
    let mut out = argv.to_vec();
    if out.iter().any(|a| a == "--") {
        // Flags cannot follow `--`: put them before it.
        let at = out.iter().position(|a| a == "--").unwrap_or(out.len());
        out.splice(at..at, extra);
    } else {
        out.extend(extra);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::net::SocketAddr;

    fn file(text: &str) -> ConfigFile {
        ConfigFile {
            path: PathBuf::from("svcnet.toml"),
            text: text.to_owned(),
            table: text.parse().unwrap(),
        }
    }

    fn args(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    fn serve(argv: &[OsString]) -> crate::ServeArgs {
        match Cli::try_parse_from(argv).unwrap().command {
            crate::Command::Serve(a) => *a,
            _ => panic!("not serve"),
        }
    }

    #[test]
    fn keys_fill_what_flags_leave_unset() {
        let f = file(
            "listen = [\"127.0.0.1:5353\", \"[::1]:5353\"]\nttl = 30\nzone = \"example.local\"\n\
             cache_bytes = 1024\nendpoint-pod-names = true\nautopath = false\nupstream = [\"192.0.2.1\"]\n",
        );
        let merged = merge(&args("svcnet serve -f examples/local --ttl 7"), &f).unwrap();
        let a = serve(&merged);
        assert_eq!(a.state.ttl, 7, "the flag wins");
        assert_eq!(a.listen.len(), 2);
        assert_eq!(a.state.zone, ["example.local"]);
        assert_eq!(a.cache_bytes, 1024);
        assert!(a.state.endpoint_pod_names);
        assert!(!a.state.autopath);
        let addrs: Vec<SocketAddr> = a.upstreams.iter().map(|u| u.addr).collect();
        assert_eq!(addrs, ["192.0.2.1:53".parse().unwrap()]);
    }

    #[test]
    fn log_queries_alone_with_a_rate_or_from_a_key() {
        assert_eq!(serve(&args("svcnet serve -f x")).log_queries, None);
        assert_eq!(
            serve(&args("svcnet serve --log-queries -f x")).log_queries,
            Some(1.0)
        );
        assert_eq!(
            serve(&args("svcnet serve --log-queries 0.01 -f x")).log_queries,
            Some(0.01)
        );
        assert!(Cli::try_parse_from(args("svcnet serve --log-queries 2 -f x")).is_err());
        for (key, rate) in [("true", 1.0), ("0.25", 0.25), ("false", 0.0)] {
            let f = file(&format!("log-queries = {key}\n"));
            let a = serve(&merge(&args("svcnet serve -f x"), &f).unwrap());
            assert_eq!(a.log_queries, Some(rate), "log-queries = {key}");
        }
    }

    #[test]
    fn a_flag_replaces_a_list_and_conflicting_keys_give_way() {
        let f = file("upstream = [\"192.0.2.1\", \"192.0.2.2\"]\n");
        let a = serve(&merge(&args("svcnet serve -f x --upstream 192.0.2.9"), &f).unwrap());
        let addrs: Vec<SocketAddr> = a.upstreams.iter().map(|u| u.addr).collect();
        assert_eq!(addrs, ["192.0.2.9:53".parse().unwrap()]);
        let f = file("no-upstream = true\n");
        let a = serve(&merge(&args("svcnet serve -f x --upstream 192.0.2.9"), &f).unwrap());
        assert!(!a.no_upstream);
    }

    #[test]
    fn unknown_keys_and_bad_values_point_at_the_line() {
        let f = file("ttl = 5\n  colour = \"blue\"\n");
        let e = merge(&args("svcnet serve -f x"), &f)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("svcnet.toml:2:3: unknown key \"colour\""),
            "{e}"
        );
        // Serve-only keys are fine for the other commands.
        let f = file("cache-bytes = 5\nttl = 9\n");
        let merged = merge(&args("svcnet zone -f x"), &f).unwrap();
        assert!(merged.contains(&OsString::from("--ttl=9")));
        assert!(
            !merged
                .iter()
                .any(|a| a.to_string_lossy().starts_with("--cache-bytes"))
        );
        for key in ["help = true", "version = true"] {
            assert!(
                merge(&args("svcnet serve -f x"), &file(key)).is_err(),
                "{key}"
            );
        }
        let f = file("[admin]\nx = 1\n");
        assert!(merge(&args("svcnet serve -f x"), &f).is_err());
    }

    #[test]
    fn parse_errors_have_a_position() {
        let dir = std::env::temp_dir().join(format!("svcnet-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.toml");
        std::fs::write(&p, "ttl = 5\nlisten = [\n").unwrap();
        let e = ConfigFile::load(&p).err().unwrap().to_string();
        assert!(e.contains("bad.toml:"), "{e}");
        assert!(
            e.split(':').nth(1).unwrap().parse::<usize>().unwrap() >= 2,
            "{e}"
        );
        assert!(path_in(&args("svcnet serve --config a.toml")) == Some(PathBuf::from("a.toml")));
        let _ = std::fs::remove_dir_all(dir);
    }
}
