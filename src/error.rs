//! Typed errors. Every error names what is wrong and, where it helps, what
//! was expected, so the binary can print it on one line and exit with code 2.

use std::path::PathBuf;

/// The crate's error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config value that parsed but is not allowed, e.g.
    /// `outcome.icc = 1.2: must be in [0, 1)`.
    #[error("{key} = {value}: {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: String,
    },
    /// A config file that is not valid TOML or does not match the schema
    /// (unknown key, wrong type, missing key).
    #[error("{0}")]
    Parse(String),
    /// A file that could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A malformed command-line argument such as `--set`.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(key: &str, value: impl std::fmt::Display, expected: &str) -> Self {
        Error::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
