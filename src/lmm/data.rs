//! Tabular data for model fitting: typed columns.
//!
//! A column read from CSV is numeric when every non-missing value parses as
//! a number; otherwise it is categorical (as R's `read.csv` does). `NA` or an
//! empty field is missing. Simulated trials build columns directly (no text),
//! so the power loop never formats or parses numbers.

use crate::error::{Error, Result};
use rustc_hash::FxHashMap as HashMap;
use std::path::Path;
use std::sync::Arc;

/// Missing code in a categorical column.
pub const NA_CODE: u32 = u32::MAX;

/// Values of a column.
#[derive(Debug, Clone)]
pub enum ColumnData {
    /// Numbers; `NaN` is missing.
    Numeric(Vec<f64>),
    /// Level codes (`NA_CODE` is missing) into `levels`.
    Categorical {
        codes: Vec<u32>,
        levels: Arc<Vec<String>>,
    },
}

/// The distinct values of a numeric column (missing ones left out) in
/// increasing order: the levels a numeric variable takes as a factor
/// (named as R prints them).
#[derive(Debug, Clone, Default)]
pub struct NumericLevels(Vec<f64>);

impl NumericLevels {
    pub fn new(values: impl IntoIterator<Item = f64>) -> NumericLevels {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        v.sort_unstable_by(f64::total_cmp);
        v.dedup();
        NumericLevels(v)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The code (index) of `x`, one of the values.
    pub fn code(&self, x: f64) -> u32 {
        self.0.partition_point(|v| v.total_cmp(&x).is_lt()) as u32
    }

    /// The level names.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|&x| format_number(x)).collect()
    }
}

/// One column of a data frame.
#[derive(Debug, Clone)]
pub struct Column {
    /// Column name from the header.
    pub name: String,
    /// The values.
    pub data: ColumnData,
    /// For a CSV column that is numeric except for a few values: the first
    /// offending (data row, text), almost certainly a typo.
    pub suspect: Option<(usize, String)>,
}

impl Column {
    /// A numeric column (`NaN` = missing).
    pub fn numeric(name: &str, values: Vec<f64>) -> Column {
        Column {
            name: name.to_string(),
            data: ColumnData::Numeric(values),
            suspect: None,
        }
    }

    /// A categorical column from codes and level names.
    pub fn categorical(name: &str, codes: Vec<u32>, levels: impl Into<Arc<Vec<String>>>) -> Column {
        Column {
            name: name.to_string(),
            data: ColumnData::Categorical {
                codes,
                levels: levels.into(),
            },
            suspect: None,
        }
    }

    /// True when the column holds numbers.
    pub fn is_numeric(&self) -> bool {
        matches!(self.data, ColumnData::Numeric(_))
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match &self.data {
            ColumnData::Numeric(v) => v.len(),
            ColumnData::Categorical { codes, .. } => codes.len(),
        }
    }

    /// True when the column has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether row `i` is missing.
    #[inline]
    pub fn is_missing(&self, i: usize) -> bool {
        match &self.data {
            ColumnData::Numeric(v) => v[i].is_nan(),
            ColumnData::Categorical { codes, .. } => codes[i] == NA_CODE,
        }
    }

    /// Set `complete[i]` false for every row `i` missing here (a pass
    /// over the column, not a test per row and column).
    pub fn mark_missing(&self, complete: &mut [bool]) {
        match &self.data {
            ColumnData::Numeric(v) => {
                for (c, x) in complete.iter_mut().zip(v) {
                    *c &= !x.is_nan();
                }
            }
            ColumnData::Categorical { codes, .. } => {
                for (c, &k) in complete.iter_mut().zip(codes) {
                    *c &= k != NA_CODE;
                }
            }
        }
    }

    /// The value of row `i` as text (for level names and messages).
    pub fn text(&self, i: usize) -> String {
        match &self.data {
            ColumnData::Numeric(v) => format_number(v[i]),
            ColumnData::Categorical { codes, levels } => levels
                .get(codes[i] as usize)
                .cloned()
                .unwrap_or_else(|| "NA".into()),
        }
    }
}

/// A number as R prints a factor level made from it (`308`, `1.5`).
pub fn format_number(x: f64) -> String {
    if x.is_nan() {
        "NA".into()
    } else {
        format!("{x}")
    }
}

/// A data frame: named columns of equal length.
#[derive(Debug, Clone, Default)]
pub struct DataFrame {
    pub columns: Vec<Column>,
    nrows: usize,
}

impl DataFrame {
    /// Build from typed columns of equal length.
    pub fn from_columns(columns: Vec<Column>) -> Result<DataFrame> {
        let nrows = columns.first().map(Column::len).unwrap_or(0);
        for (k, c) in columns.iter().enumerate() {
            if c.len() != nrows {
                return Err(Error::Usage(format!(
                    "column `{}` has {} values, expected {nrows}",
                    c.name,
                    c.len()
                )));
            }
            if columns[..k].iter().any(|d| d.name == c.name) {
                return Err(Error::Usage(format!("duplicate column name `{}`", c.name)));
            }
        }
        Ok(DataFrame { columns, nrows })
    }

    /// Build from (name, text values) pairs; decides numeric versus categorical.
    pub fn from_raw(cols: Vec<(String, Vec<Option<String>>)>) -> Result<DataFrame> {
        let columns = cols
            .into_iter()
            .map(|(name, raw)| column_from_text(name, raw))
            .collect();
        Self::from_columns(columns)
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
        if cols[0].is_empty() {
            return Err(Error::Usage("the CSV has a header but no data rows".into()));
        }
        Self::from_raw(headers.into_iter().zip(cols).collect())
    }

    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.nrows
    }

    /// Look up a column by name; the error lists the available columns.
    pub fn column(&self, name: &str) -> Result<&Column> {
        // A linear scan: data frames have a handful of columns.
        self.columns.iter().find(|c| c.name == name).ok_or_else(|| {
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

    /// Column `k`, made numeric and named `name`, emptied for refilling
    /// (its storage is kept when it already was that column).
    pub fn slot_numeric(&mut self, k: usize, name: &str) -> &mut Vec<f64> {
        let fits = self
            .columns
            .get(k)
            .is_some_and(|c| c.name == name && c.is_numeric());
        if !fits {
            self.put(k, Column::numeric(name, Vec::new()));
        }
        self.columns[k].suspect = None;
        match &mut self.columns[k].data {
            ColumnData::Numeric(v) => {
                v.clear();
                v
            }
            ColumnData::Categorical { .. } => unreachable!("made numeric above"),
        }
    }

    /// Column `k`, made categorical with `levels` and named `name`, emptied
    /// for refilling.
    pub fn slot_categorical(
        &mut self,
        k: usize,
        name: &str,
        levels: &Arc<Vec<String>>,
    ) -> &mut Vec<u32> {
        let fits = self.columns.get(k).is_some_and(|c| {
            c.name == name
                && matches!(&c.data, ColumnData::Categorical { levels: l, .. } if Arc::ptr_eq(l, levels))
        });
        if !fits {
            self.put(k, Column::categorical(name, Vec::new(), levels.clone()));
        }
        self.columns[k].suspect = None;
        match &mut self.columns[k].data {
            ColumnData::Categorical { codes, .. } => {
                codes.clear();
                codes
            }
            ColumnData::Numeric(_) => unreachable!("made categorical above"),
        }
    }

    fn put(&mut self, k: usize, c: Column) {
        if k < self.columns.len() {
            self.columns[k] = c;
        } else {
            self.columns.push(c);
        }
    }

    /// Fill slots 0..k with a copy of `src`'s k columns, reusing their
    /// storage where names and kinds match (more slots may follow; end with
    /// [`DataFrame::finish_slots`]). Returns k.
    pub fn copy_slots_from(&mut self, src: &DataFrame) -> usize {
        for (k, c) in src.columns.iter().enumerate() {
            match &c.data {
                ColumnData::Numeric(v) => self.slot_numeric(k, &c.name).extend_from_slice(v),
                ColumnData::Categorical { codes, levels } => self
                    .slot_categorical(k, &c.name, levels)
                    .extend_from_slice(codes),
            }
            self.columns[k].suspect.clone_from(&c.suspect);
        }
        src.columns.len()
    }

    /// After filling slots 0..k: drop any further columns and set the row
    /// count (the slots must have equal lengths).
    pub fn finish_slots(&mut self, k: usize) {
        self.columns.truncate(k);
        self.nrows = self.columns.first().map(Column::len).unwrap_or(0);
        debug_assert!(self.columns.iter().all(|c| c.len() == self.nrows));
    }

    /// Replace a column's values (same name and length), e.g. a new outcome.
    pub fn set_numeric(&mut self, name: &str, values: Vec<f64>) -> Result<()> {
        let k = self
            .columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| Error::Usage(format!("column `{name}` is not in the data")))?;
        if values.len() != self.nrows {
            return Err(Error::Usage(format!(
                "column `{name}`: {} values for {} rows",
                values.len(),
                self.nrows
            )));
        }
        self.columns[k].data = ColumnData::Numeric(values);
        Ok(())
    }
}

fn column_from_text(name: String, raw: Vec<Option<String>>) -> Column {
    let parsed: Vec<Option<f64>> = raw
        .iter()
        .map(|v| {
            v.as_ref()
                .map(|s| s.parse::<f64>().ok().filter(|x| x.is_finite()))
                .unwrap_or(Some(f64::NAN))
        })
        .collect();
    let bad: Vec<usize> = parsed
        .iter()
        .enumerate()
        .filter(|(_, p)| p.is_none())
        .map(|(i, _)| i)
        .collect();
    if bad.is_empty() {
        return Column::numeric(
            &name,
            parsed.into_iter().map(|p| p.unwrap_or(f64::NAN)).collect(),
        );
    }
    let present = raw.iter().filter(|v| v.is_some()).count();
    let suspect =
        (bad.len() * 10 < present).then(|| (bad[0], raw[bad[0]].clone().unwrap_or_default()));
    let mut map: HashMap<&str, u32> = HashMap::default();
    let mut levels: Vec<String> = Vec::new();
    let codes = raw
        .iter()
        .map(|v| match v {
            None => NA_CODE,
            Some(s) => *map.entry(s.as_str()).or_insert_with(|| {
                levels.push(s.clone());
                (levels.len() - 1) as u32
            }),
        })
        .collect();
    Column {
        name,
        data: ColumnData::Categorical {
            codes,
            levels: Arc::new(levels),
        },
        suspect,
    }
}
