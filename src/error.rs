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
    /// Long values are shortened: a number that prints with many digits
    /// (1e-300 as 0.000…1) is shown in scientific notation, and any other
    /// value is cut to 120 characters, so the error stays one short line.
    pub fn invalid(key: &str, value: impl std::fmt::Display, expected: &str) -> Self {
        Error::Invalid {
            key: key.to_string(),
            value: short_value(&value.to_string()),
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

/// A value as it should appear in a one-line error.
pub fn short_value(v: &str) -> String {
    const MAX: usize = 120;
    if v.len() > 16 {
        if let Ok(x) = v.parse::<f64>() {
            return format!("{x:e}");
        }
    }
    if v.chars().count() > MAX {
        let cut: String = v.chars().take(MAX).collect();
        return format!("{cut}… ({} characters)", v.chars().count());
    }
    v.replace(['\n', '\r'], " ")
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
