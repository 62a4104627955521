//! Why a path was refused, in words a model can act on.

/// Why a path was refused; the text is what the model reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathError {
    Empty,
    Nul,
    Tilde(String),
    Outside { path: String, root: String },
    NotFound(String),
    NotADirectory(String),
    IsADirectory(String),
    NotRegular { path: String, kind: &'static str },
    Protected { path: String, pattern: String },
    Layout { path: String, why: String },
    DanglingLink(String),
    Loop(String),
    Raced(String),
    Io { path: String, message: String },
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::Empty => write!(f, "the path is empty"),
            PathError::Nul => write!(f, "the path contains a NUL byte"),
            PathError::Tilde(p) => write!(
                f,
                "`{p}`: `~` is not expanded; give a path inside the workspace (relative to the working directory, or absolute)"
            ),
            PathError::Outside { path, root } => {
                write!(
                    f,
                    "`{path}` is outside the workspace `{root}`; access refused"
                )
            }
            PathError::NotFound(p) => write!(f, "`{p}` does not exist"),
            PathError::NotADirectory(p) => write!(f, "`{p}` is not a directory"),
            PathError::IsADirectory(p) => write!(
                f,
                "`{p}` is a directory, not a file (use `glob` to list its files)"
            ),
            PathError::NotRegular { path, kind } => {
                write!(f, "`{path}` is a {kind}, not a regular file; refused")
            }
            PathError::Protected { path, pattern } => write!(
                f,
                "`{path}` is protected (`{pattern}`): the agent may not create or change it"
            ),
            PathError::Layout { path, why } => write!(
                f,
                "`{path}` may not be written: {why}, which git or Keel would act on; only a person may create or change it"
            ),
            PathError::DanglingLink(p) => write!(
                f,
                "`{p}` is a symbolic link whose target does not exist; write to the target's path instead"
            ),
            PathError::Loop(p) => write!(
                f,
                "`{p}` could not be resolved: too many levels of symbolic links"
            ),
            PathError::Raced(p) => write!(f, "`{p}` changed while it was being opened; try again"),
            PathError::Io { path, message } => write!(f, "`{path}`: {message}"),
        }
    }
}
