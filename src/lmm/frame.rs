//! The model frame: rows with complete data, the fixed-effects matrix X (R's
//! treatment contrasts), the response y, and the random-effects terms.

use super::data::{format_number, Column, ColumnData, DataFrame};
use super::formula::{Formula, RandomTerm};
use crate::error::{Error, Result};
use rustc_hash::FxHashMap as HashMap;

/// Level names in sorted order, sharing the column's name list (no copies
/// per model: a power loop builds a model per replicate).
#[derive(Debug, Clone)]
pub struct Levels {
    names: std::sync::Arc<Vec<String>>,
    order: Vec<u32>,
}

impl Levels {
    /// Number of levels.
    pub fn len(&self) -> usize {
        self.order.len()
    }
    /// True when there are no levels.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
    /// Name of level `k` (in sorted order).
    pub fn name(&self, k: usize) -> &str {
        &self.names[self.order[k] as usize]
    }
    fn owned(names: Vec<String>) -> Levels {
        let order = (0..names.len() as u32).collect();
        Levels {
            names: std::sync::Arc::new(names),
            order,
        }
    }
}

/// One random-effects term: a grouping factor and the k columns whose
/// coefficients vary by its levels.
#[derive(Debug, Clone)]
pub struct ReTerm {
    /// The grouping factor's name as lme4 prints it (`team`, `cask:batch`).
    pub group: String,
    /// Level names, in the order used internally (sorted).
    pub levels: Levels,
    /// Level index of each row.
    pub refs: Vec<u32>,
    /// Number of random-effect columns (1 for an intercept, 2 for `(x|g)`...).
    pub k: usize,
    /// Column names: `(Intercept)` and slope columns.
    pub col_names: Vec<String>,
    /// Row-major n × k values of the columns (1 for the intercept).
    pub z: Vec<f64>,
    /// The formula term it came from.
    pub spec: RandomTerm,
}

impl ReTerm {
    /// Number of levels.
    pub fn nlevels(&self) -> usize {
        self.levels.len()
    }
}

/// Rows, design matrices and names ready for fitting.
#[derive(Debug, Clone)]
pub struct ModelFrame {
    /// Number of rows used.
    pub n: usize,
    /// Response.
    pub y: Vec<f64>,
    /// Column-major n × p fixed-effects matrix.
    pub x: Vec<f64>,
    /// Number of fixed-effect columns kept.
    pub p: usize,
    /// Names of the kept columns, as R names them.
    pub x_names: Vec<String>,
    /// Names of columns dropped as linearly dependent on earlier ones.
    pub dropped: Vec<String>,
    /// Random-effects terms, in lme4's order (decreasing number of levels, stable).
    pub terms: Vec<ReTerm>,
    /// Indices (0-based) of the data rows used.
    pub rows: Vec<usize>,
    /// Rows dropped for a missing value in a variable of the formula.
    pub n_missing: usize,
    /// Name of the response.
    pub response: String,
}

fn numeric_column<'a>(col: &'a Column, role: &str) -> Result<&'a [f64]> {
    match &col.data {
        ColumnData::Numeric(v) => Ok(v),
        ColumnData::Categorical { .. } => {
            let (i, v) = col.suspect.clone().unwrap_or_else(|| {
                let i = (0..col.len()).find(|&i| !col.is_missing(i)).unwrap_or(0);
                (i, col.text(i))
            });
            Err(Error::Usage(format!(
                "column `{}` ({role}) must be numeric, but data row {} (CSV line {}) has `{v}`",
                col.name,
                i + 1,
                i + 2
            )))
        }
    }
}

/// A column that is mostly numbers but has a few non-numbers is almost
/// certainly a typo, not a categorical variable: say so.
fn check_mostly_numeric(col: &Column) -> Result<()> {
    if let Some((i, s)) = &col.suspect {
        return Err(Error::Usage(format!(
            "column `{}` is numeric except for data row {} (CSV line {}), which has `{s}`: fix the value or mark it NA",
            col.name,
            i + 1,
            i + 2
        )));
    }
    Ok(())
}

/// Dot product with four independent accumulators (no long add chains).
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let (mut s0, mut s1, mut s2, mut s3) = (0.0, 0.0, 0.0, 0.0);
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        s0 += x[0] * y[0];
        s1 += x[1] * y[1];
        s2 += x[2] * y[2];
        s3 += x[3] * y[3];
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (s0 + s1) + (s2 + s3) + tail
}

/// Levels of a column over `rows` (sorted: by name for text, by value for
/// numbers, as R's factor()), and each row's level index.
fn factor_codes(col: &Column, rows: &[usize]) -> (Vec<u32>, Levels) {
    match &col.data {
        ColumnData::Categorical { codes, levels } => {
            let mut present = vec![false; levels.len()];
            for &i in rows {
                present[codes[i] as usize] = true;
            }
            let mut order: Vec<u32> = (0..levels.len() as u32)
                .filter(|&c| present[c as usize])
                .collect();
            order.sort_unstable_by(|&a, &b| levels[a as usize].cmp(&levels[b as usize]));
            let mut remap = vec![u32::MAX; levels.len()];
            for (k, &c) in order.iter().enumerate() {
                remap[c as usize] = k as u32;
            }
            (
                rows.iter().map(|&i| remap[codes[i] as usize]).collect(),
                Levels {
                    names: levels.clone(),
                    order,
                },
            )
        }
        ColumnData::Numeric(v) => {
            let mut vals: Vec<f64> = rows.iter().map(|&i| v[i]).collect();
            vals.sort_unstable_by(|a, b| a.total_cmp(b));
            vals.dedup();
            let codes = rows
                .iter()
                .map(|&i| vals.partition_point(|&x| x.total_cmp(&v[i]).is_lt()) as u32)
                .collect();
            (
                codes,
                Levels::owned(vals.iter().map(|&x| format_number(x)).collect()),
            )
        }
    }
}

/// Levels of the interaction of one or more columns (named `a:b` by value).
fn group_codes(cols: &[&Column], rows: &[usize]) -> (Vec<u32>, Levels) {
    if cols.len() == 1 {
        return factor_codes(cols[0], rows);
    }
    let parts: Vec<(Vec<u32>, Levels)> = cols.iter().map(|c| factor_codes(c, rows)).collect();
    // Combined level index (mixed radix); a dense table when it is small.
    let radix: Vec<usize> = parts.iter().map(|p| p.1.len().max(1)).collect();
    let total = radix.iter().try_fold(1usize, |a, &r| a.checked_mul(r));
    let key_of = |r: usize| -> usize {
        parts
            .iter()
            .zip(&radix)
            .fold(0usize, |acc, (p, &k)| acc * k + p.0[r] as usize)
    };
    let mut first: HashMap<Vec<u32>, u32> = HashMap::default();
    let mut raw_codes = Vec::with_capacity(rows.len());
    if let Some(total) = total.filter(|&t| t <= 1 << 22) {
        let mut table = vec![u32::MAX; total];
        for r in 0..rows.len() {
            let k = key_of(r);
            if table[k] == u32::MAX {
                table[k] = first.len() as u32;
                first.insert(parts.iter().map(|p| p.0[r]).collect(), table[k]);
            }
            raw_codes.push(table[k]);
        }
    } else {
        for r in 0..rows.len() {
            let key: Vec<u32> = parts.iter().map(|p| p.0[r]).collect();
            let next = first.len() as u32;
            raw_codes.push(*first.entry(key).or_insert(next));
        }
    }
    let mut order: Vec<(String, u32)> = first
        .into_iter()
        .map(|(k, c)| {
            let name = k
                .iter()
                .zip(&parts)
                .map(|(&l, p)| p.1.name(l as usize))
                .collect::<Vec<_>>()
                .join(":");
            (name, c)
        })
        .collect();
    order.sort_unstable();
    let mut remap = vec![0u32; order.len()];
    for (k, (_, c)) in order.iter().enumerate() {
        remap[*c as usize] = k as u32;
    }
    (
        raw_codes.into_iter().map(|c| remap[c as usize]).collect(),
        Levels::owned(order.into_iter().map(|(s, _)| s).collect()),
    )
}

/// Columns a single variable contributes to a fixed term.
enum VarCols {
    Numeric(Vec<f64>),
    /// Category codes per row, level names, and the first level kept (0 = dummy, 1 = contrasts).
    Factor(Vec<u32>, Levels, usize),
}

impl ModelFrame {
    /// Build the model frame for a formula on a data frame.
    pub fn new(formula: &Formula, data: &DataFrame) -> Result<ModelFrame> {
        let vars = formula.variables();
        let mut used: Vec<&Column> = Vec::with_capacity(vars.len());
        for v in &vars {
            used.push(data.column(v)?);
        }
        // Column by name among the formula's variables (all present).
        let col = |name: &str| -> &Column {
            let k = vars
                .iter()
                .position(|v| v == name)
                .expect("a formula variable");
            used[k]
        };
        // Complete cases.
        let rows: Vec<usize> = (0..data.nrows())
            .filter(|&i| used.iter().all(|c| !c.is_missing(i)))
            .collect();
        let n_missing = data.nrows() - rows.len();
        if rows.is_empty() {
            return Err(Error::Usage(format!(
                "no rows left: every one of the {} data rows has a missing value in one of {}",
                data.nrows(),
                vars.join(", ")
            )));
        }
        let n = rows.len();

        // Response.
        let ycol = numeric_column(col(&formula.response), "the response")?;
        let y: Vec<f64> = rows.iter().map(|&i| ycol[i]).collect();
        if y.iter().all(|&v| v == y[0]) {
            return Err(Error::Usage(format!(
                "the response `{}` is constant ({}) in the {n} rows used: there is nothing to model",
                formula.response, y[0]
            )));
        }

        // Fixed effects.
        let mut xcols: Vec<Vec<f64>> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        if formula.intercept {
            xcols.push(vec![1.0; n]);
            names.push("(Intercept)".into());
        }
        let in_model = |t: &[String]| -> bool {
            if t.is_empty() {
                return formula.intercept;
            }
            formula
                .fixed
                .iter()
                .any(|u| u.len() == t.len() && t.iter().all(|x| u.contains(x)))
        };
        for term in &formula.fixed {
            let mut parts: Vec<(String, VarCols)> = Vec::new();
            for v in term {
                let col = col(v);
                check_mostly_numeric(col)?;
                if let ColumnData::Numeric(num) = &col.data {
                    parts.push((
                        v.clone(),
                        VarCols::Numeric(rows.iter().map(|&i| num[i]).collect()),
                    ));
                } else {
                    let (codes, levels) = factor_codes(col, &rows);
                    let margin: Vec<String> = term.iter().filter(|x| *x != v).cloned().collect();
                    let first = usize::from(in_model(&margin));
                    parts.push((v.clone(), VarCols::Factor(codes, levels, first)));
                }
            }
            // Cartesian product, first variable varying fastest (as R).
            let mut acc: Vec<(String, Vec<f64>)> = vec![(String::new(), vec![1.0; n])];
            for (name, vc) in &parts {
                let comps: Vec<(String, Vec<f64>)> = match vc {
                    VarCols::Numeric(v) => vec![(name.clone(), v.clone())],
                    VarCols::Factor(codes, levels, first) => (*first..levels.len())
                        .map(|l| {
                            (
                                format!("{name}{}", levels.name(l)),
                                codes.iter().map(|&c| f64::from(c as usize == l)).collect(),
                            )
                        })
                        .collect(),
                };
                let mut next = Vec::new();
                for (cn, cv) in &comps {
                    for (an, av) in &acc {
                        let nm = if an.is_empty() {
                            cn.clone()
                        } else {
                            format!("{an}:{cn}")
                        };
                        next.push((nm, av.iter().zip(cv).map(|(a, b)| a * b).collect()));
                    }
                }
                acc = next;
            }
            for (nm, v) in acc {
                names.push(nm);
                xcols.push(v);
            }
        }
        // Drop columns linearly dependent on earlier ones (modified Gram–Schmidt).
        let mut kept: Vec<usize> = Vec::new();
        let mut basis: Vec<Vec<f64>> = Vec::new();
        let mut dropped = Vec::new();
        for (j, c) in xcols.iter().enumerate() {
            let norm0 = dot(c, c).sqrt();
            let mut r = c.clone();
            for q in &basis {
                let d = dot(&r, q);
                r.iter_mut().zip(q).for_each(|(a, b)| *a -= d * b);
            }
            let norm = dot(&r, &r).sqrt();
            if norm0 == 0.0 || norm <= 1e-7 * norm0 {
                dropped.push(names[j].clone());
            } else {
                let inv = 1.0 / norm;
                r.iter_mut().for_each(|v| *v *= inv);
                basis.push(r);
                kept.push(j);
            }
        }
        let p = kept.len();
        let mut x = Vec::with_capacity(n * p);
        for &j in &kept {
            x.extend_from_slice(&xcols[j]);
        }
        let x_names = kept.iter().map(|&j| names[j].clone()).collect();

        // Random-effects terms.
        let mut terms = Vec::new();
        for spec in &formula.random {
            let gname = spec.group_name();
            let (refs, levels) = group_codes(
                &spec.group.iter().map(|g| col(g)).collect::<Vec<_>>(),
                &rows,
            );
            let mut col_names = Vec::new();
            let mut zc: Vec<Vec<f64>> = Vec::new();
            if spec.intercept {
                col_names.push("(Intercept)".to_string());
                zc.push(vec![1.0; n]);
            }
            for s in &spec.slopes {
                let v = numeric_column(col(s), "a random slope")?;
                col_names.push(s.clone());
                zc.push(rows.iter().map(|&i| v[i]).collect());
            }
            let k = zc.len();
            if levels.len() < 2 {
                return Err(Error::Usage(format!(
                    "grouping factor `{gname}` has only one level ({}) in the rows used: its variance cannot be estimated",
                    if levels.is_empty() { "" } else { levels.name(0) }
                )));
            }
            if levels.len() * k >= n {
                return Err(Error::Usage(format!(
                    "grouping factor `{gname}` has {} levels for {n} rows: the random effects ({}) are not identifiable from the residual; a grouping factor needs fewer levels than rows",
                    levels.len(),
                    levels.len() * k
                )));
            }
            let mut z = Vec::with_capacity(n * k);
            for i in 0..n {
                for c in &zc {
                    z.push(c[i]);
                }
            }
            terms.push(ReTerm {
                group: gname,
                levels,
                refs,
                k,
                col_names,
                z,
                spec: spec.clone(),
            });
        }
        if terms.is_empty() {
            return Err(Error::Usage(
                "the formula has no random-effects term such as (1|team); use a linear model instead".into(),
            ));
        }
        // lme4 order: decreasing number of levels, stable.
        terms.sort_by_key(|t| std::cmp::Reverse(t.nlevels()));
        Ok(ModelFrame {
            n,
            y,
            x,
            p,
            x_names,
            dropped,
            terms,
            rows,
            n_missing,
            response: formula.response.clone(),
        })
    }
}
