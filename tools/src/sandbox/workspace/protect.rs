//! Paths `write` and `edit` never create or change.
//!
//! Always: `.git`, `.keel` and `keel.toml` at any depth (a nested repository's
//! hooks and config run code; `keel.toml` declares agents and their policy; `.keel`
//! is the store), a directory laid out like a bare git repository (two of `HEAD`,
//! `config`, `objects/`, `refs/`, counting what the write would create — so it
//! cannot be assembled file by file), and a directory holding a Keel store (`LOCK`,
//! `wal/`, `sled/`), wherever it is. Plus the configured `protected_paths`: a
//! pattern without `/` matches a name at any depth (`*.pem`, `secrets`); one with
//! `/` is a glob from the workspace root (`config/prod/**`, `**/id_*`).

use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rustix::fs::{AtFlags, FileType, OFlags, ResolveFlags};

use super::Workspace;
use crate::error::{Error, Result};

/// Names protected at any depth, whatever the configuration says.
pub const BUILTIN: &[&str] = &[".git", ".keel", "keel.toml"];

/// The protected-path patterns, compiled.
#[derive(Clone, Debug)]
pub(crate) struct Protected {
    set: GlobSet,
    patterns: Vec<String>,
}

impl Protected {
    /// The built-in patterns and `extra`.
    pub fn new(extra: &[String]) -> Result<Self> {
        let mut builder = GlobSetBuilder::new();
        let mut patterns = Vec::new();
        for pattern in BUILTIN
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
        {
            let trimmed = pattern.trim_end_matches('/');
            if trimmed.is_empty() {
                return Err(Error::InvalidConfig(format!(
                    "protected path `{pattern}` is empty"
                )));
            }
            let anchored = trimmed.trim_start_matches('/');
            let glob = if trimmed.contains('/') {
                anchored.to_owned()
            } else {
                format!("**/{anchored}")
            };
            let glob = GlobBuilder::new(&glob)
                .literal_separator(true)
                .build()
                .map_err(|e| Error::InvalidConfig(format!("protected path `{pattern}`: {e}")))?;
            builder.add(glob);
            patterns.push(pattern.to_owned());
        }
        let set = builder
            .build()
            .map_err(|e| Error::InvalidConfig(format!("protected paths: {e}")))?;
        Ok(Self { set, patterns })
    }

    /// The pattern that covers `rel` (relative to the root) or one of its ancestors.
    pub fn matches(&self, rel: &Path) -> Option<String> {
        let mut prefix = PathBuf::new();
        for component in rel.components() {
            match component {
                Component::Normal(_) => prefix.push(component),
                Component::ParentDir => {
                    prefix.pop();
                    continue;
                }
                _ => continue,
            }
            if let Some(i) = self.set.matches(&prefix).first() {
                return self.patterns.get(*i).cloned();
            }
        }
        None
    }
}

/// Entries that make a directory a git directory, and whether each is a directory.
const GIT_DIR: &[(&str, bool)] = &[
    ("HEAD", false),
    ("config", false),
    ("objects", true),
    ("refs", true),
];
/// Entries of a Keel store directory.
const STORE: &[(&str, bool)] = &[("LOCK", false), ("wal", true), ("sled", true)];

impl Workspace {
    /// Why writing the file at `rel` (real, relative to the root) would build or
    /// change a git directory or a Keel store, if it would: each directory on the
    /// way is looked at, counting what the write creates.
    pub(super) fn layout_guard(&self, rel: &Path) -> Option<String> {
        let parts: Vec<&std::ffi::OsStr> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        for depth in (0..parts.len()).rev() {
            let dir: PathBuf = parts[..depth].iter().collect();
            let dir = if depth == 0 { PathBuf::from(".") } else { dir };
            let Ok(fd) = self.open_beneath(
                &dir,
                OFlags::PATH | OFlags::DIRECTORY,
                ResolveFlags::empty(),
            ) else {
                continue;
            };
            let child = parts[depth];
            let writes_file = depth + 1 == parts.len();
            let count = |entries: &[(&str, bool)]| {
                entries
                    .iter()
                    .filter(|(name, is_dir)| {
                        let made = child == std::ffi::OsStr::new(name) && writes_file != *is_dir;
                        made || rustix::fs::statat(&fd, *name, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(
                            |st| {
                                let ft = FileType::from_raw_mode(st.st_mode);
                                if *is_dir {
                                    ft == FileType::Directory
                                } else {
                                    ft == FileType::RegularFile
                                }
                            },
                        )
                    })
                    .count()
            };
            let shown = if depth == 0 {
                "the workspace root".to_owned()
            } else {
                format!("`{}`", dir.display())
            };
            if count(GIT_DIR) >= 2 {
                return Some(format!(
                    "{shown} is laid out as a git repository (HEAD, config, objects/, refs/)"
                ));
            }
            if count(STORE) >= 2 {
                return Some(format!("{shown} holds a Keel store"));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_at_any_depth_and_slashes_anchor() {
        let p = Protected::new(&["*.pem".into(), "config/prod".into(), "/top".into()]).unwrap();
        for (path, pattern) in [
            (".git", Some(".git")),
            (".git/hooks/pre-commit", Some(".git")),
            ("sub/deep/.git/config", Some(".git")),
            ("a/.keel/x", Some(".keel")),
            ("a/b/keel.toml", Some("keel.toml")),
            ("keys/server.pem", Some("*.pem")),
            ("config/prod/db.yml", Some("config/prod")),
            ("x/config/prod/db.yml", None),
            ("top/x", Some("/top")),
            ("x/top", None),
            ("src/gitx/.gitignore", None),
            ("a/../.git/x", Some(".git")),
        ] {
            assert_eq!(p.matches(Path::new(path)).as_deref(), pattern, "{path}");
        }
    }
}
