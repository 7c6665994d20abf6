//! Tabular data for model fitting: a CSV read into typed columns.
//!
//! A column is numeric when every non-missing value parses as a number;
//! otherwise it is categorical (as R's `read.csv` does). `NA` or an empty
//! field is missing.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// One column of a data frame.
#[derive(Debug, Clone)]
pub struct Column {
    /// Column name from the header.
    pub name: String,
    /// Raw text of each value (`None` = missing).
    pub raw: Vec<Option<String>>,
    /// Numeric values when the column is numeric (`NaN` = missing).
    pub numeric: Option<Vec<f64>>,
}

impl Column {
    /// True when every non-missing value is a number.
    pub fn is_numeric(&self) -> bool {
        self.numeric.is_some()
    }

    /// Whether row `i` is missing.
    pub fn is_missing(&self, i: usize) -> bool {
        self.raw[i].is_none()
    }
}

/// A data frame: named columns of equal length.
#[derive(Debug, Clone, Default)]
pub struct DataFrame {
    pub columns: Vec<Column>,
    index: HashMap<String, usize>,
    nrows: usize,
}

impl DataFrame {
    /// Build from (name, raw values) pairs; decides numeric versus categorical.
    pub fn from_raw(cols: Vec<(String, Vec<Option<String>>)>) -> Result<DataFrame> {
        let nrows = cols.first().map(|c| c.1.len()).unwrap_or(0);
        let mut df = DataFrame {
            nrows,
            ..Default::default()
        };
        for (name, raw) in cols {
            if raw.len() != nrows {
                return Err(Error::Usage(format!(
                    "column `{name}` has {} values, expected {nrows}",
                    raw.len()
                )));
            }
            let mut numeric = Vec::with_capacity(nrows);
            let mut ok = true;
            for v in &raw {
                match v {
                    None => numeric.push(f64::NAN),
                    Some(s) => match s.parse::<f64>() {
                        Ok(x) if x.is_finite() => numeric.push(x),
                        _ => {
                            ok = false;
                            break;
                        }
                    },
                }
            }
            if df.index.contains_key(&name) {
                return Err(Error::Usage(format!("duplicate column name `{name}`")));
            }
            df.index.insert(name.clone(), df.columns.len());
            df.columns.push(Column {
                name,
                raw,
                numeric: if ok { Some(numeric) } else { None },
            });
        }
        Ok(df)
    }

    /// Read a CSV file with a header row.
    pub fn read_csv(path: impl AsRef<Path>) -> Result<DataFrame> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Self::from_reader(file).map_err(|e| match e {
            Error::Usage(m) => Error::Usage(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Read CSV text from any reader.
    pub fn from_reader<R: std::io::Read>(r: R) -> Result<DataFrame> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(r);
        let headers: Vec<String> = rdr
            .headers()
            .map_err(|e| Error::Usage(format!("cannot read the CSV header: {e}")))?
            .iter()
            .map(|s| s.to_string())
            .collect();
        if headers.is_empty() {
            return Err(Error::Usage("the CSV has no columns".into()));
        }
        let mut cols: Vec<Vec<Option<String>>> = vec![Vec::new(); headers.len()];
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| Error::Usage(format!("CSV row {}: {e}", i + 2)))?;
            if rec.len() != headers.len() {
                return Err(Error::Usage(format!(
                    "CSV row {} has {} fields, the header has {}",
                    i + 2,
                    rec.len(),
                    headers.len()
                )));
            }
            for (j, v) in rec.iter().enumerate() {
                cols[j].push(if v.is_empty() || v == "NA" {
                    None
                } else {
                    Some(v.to_string())
                });
            }
        }
        Self::from_raw(headers.into_iter().zip(cols).collect())
    }

    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.nrows
    }

    /// Look up a column by name; the error lists the available columns.
    pub fn column(&self, name: &str) -> Result<&Column> {
        self.index
            .get(name)
            .map(|&i| &self.columns[i])
            .ok_or_else(|| {
                Error::Usage(format!(
                    "column `{name}` is not in the data; available columns: {}",
                    self.columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}
