//! `--set key=value` overrides, applied to the parsed TOML before it is
//! read into the typed config.

use crate::error::{Error, Result};

/// Apply one `section.key=value` override to a parsed TOML table. The value is
/// read as a TOML value (`40`, `0.1`, `true`, `["A","B"]`, `{ dist = "fixed", mean = 10 }`);
/// anything that does not parse as one is taken as a string.
pub fn apply_override(table: &mut toml::Table, spec: &str) -> Result<()> {
    let (key, raw) = spec.split_once('=').ok_or_else(|| {
        Error::Usage(format!(
            "--set {spec}: expected key=value, e.g. outcome.icc=0.1"
        ))
    })?;
    let key = key.trim();
    let raw = raw.trim();
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::Usage(format!(
            "--set {spec}: key `{key}` must be dotted names, e.g. clusters.teams"
        )));
    }
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let mut cur = table;
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            cur.insert((*p).to_string(), value);
            return Ok(());
        }
        let entry = cur
            .entry((*p).to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(Error::Usage(format!(
                    "--set {spec}: `{}` is a value, not a section",
                    parts[..=i].join(".")
                )))
            }
        };
    }
    Ok(())
}
