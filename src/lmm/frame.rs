//! The model frame: rows with complete data, the fixed-effects matrix X (R's
//! treatment contrasts), the response y, and the random-effects terms.

use super::data::{Column, ColumnData, DataFrame, NumericLevels};
use super::formula::{Formula, RandomTerm};
use crate::error::{Error, Result};
use smallvec::SmallVec;

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
    /// What the grouping factor was built from (to reuse `refs` and
    /// `levels` when a new data set has the same grouping columns).
    source: Vec<GroupSource>,
    /// For an interaction `a:b` of categorical columns: how its levels were
    /// formed (see [`Combo`]), to refill its codes for new rows.
    combo: Combo,
}

/// An interaction's levels as `group_codes` forms them: each column's
/// present raw codes sorted by name (`orders[ptr[j]..ptr[j + 1]]`), and the
/// sorted mixed-radix keys of the combinations present (level index = rank).
#[derive(Debug, Clone, Default, PartialEq)]
struct Combo {
    orders: Vec<u32>,
    ptr: Vec<usize>,
    keys: Vec<u64>,
}

impl Combo {
    /// The combination structure of categorical `cols` over `rows`, with
    /// each row's key in `row_keys` and `order`, `mark` as scratch; false
    /// when a column is numeric or the keys overflow.
    fn compute(
        &mut self,
        cols: &[&Column],
        rows: &[usize],
        row_keys: &mut Vec<u64>,
        order: &mut Vec<u32>,
        mark: &mut Vec<u32>,
    ) -> bool {
        self.orders.clear();
        self.ptr.clear();
        self.ptr.push(0);
        row_keys.clear();
        row_keys.resize(rows.len(), 0);
        let mut total = 1u64;
        for col in cols {
            let ColumnData::Categorical { codes, levels } = &col.data else {
                return false;
            };
            present_levels(codes, levels, rows, order, mark, false);
            self.orders.extend_from_slice(order);
            self.ptr.push(self.orders.len());
            let radix = order.len().max(1) as u64;
            let Some(t) = total.checked_mul(radix) else {
                return false;
            };
            total = t;
            for (key, &i) in row_keys.iter_mut().zip(rows) {
                *key = *key * radix + u64::from(mark[codes[i] as usize]);
            }
        }
        self.keys.clear();
        self.keys.extend_from_slice(row_keys);
        self.keys.sort_unstable();
        self.keys.dedup();
        true
    }
}

/// One grouping column over the rows used: its level names (categorical)
/// and each row's raw value (code, or the number's bits).
#[derive(Debug, Clone, PartialEq)]
struct GroupSource {
    levels: Option<std::sync::Arc<Vec<String>>>,
    raw: Vec<u64>,
}

impl GroupSource {
    fn of(col: &Column, rows: &[usize]) -> GroupSource {
        match &col.data {
            ColumnData::Categorical { codes, levels } => GroupSource {
                levels: Some(levels.clone()),
                raw: rows.iter().map(|&i| u64::from(codes[i])).collect(),
            },
            ColumnData::Numeric(v) => GroupSource {
                levels: None,
                raw: rows.iter().map(|&i| v[i].to_bits()).collect(),
            },
        }
    }
}

impl ReTerm {
    /// Number of levels.
    pub fn nlevels(&self) -> usize {
        self.levels.len()
    }
}

/// One variable of a column of X.
#[derive(Debug, Clone, PartialEq)]
pub struct XPart {
    pub var: String,
    /// For a factor's indicator: its level (code) and the factor's number
    /// of levels; None for a numeric variable.
    pub level: Option<(u32, usize)>,
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
    /// X'X (p × p, row-major).
    pub xtx: Vec<f64>,
    /// Names of columns dropped as linearly dependent on earlier ones.
    pub dropped: Vec<String>,
    /// For each column of X, its variables (none for the intercept; a
    /// term's columns have exactly the term's).
    pub x_parts: Vec<Vec<XPart>>,
    /// Categorical predictors with one level in the rows used (name,
    /// level): they add no column (R refuses to fit them).
    pub single_level: Vec<(String, String)>,
    /// Random-effects terms, in lme4's order (decreasing number of levels, stable).
    pub terms: Vec<ReTerm>,
    /// Indices (0-based) of the data rows used.
    pub rows: Vec<usize>,
    /// Rows dropped for a missing value in a variable of the formula.
    pub n_missing: usize,
    /// Name of the response.
    pub response: String,
    /// How to refill this frame from a data set of the same structure.
    refill: Refill,
}

/// A column of X as the product of its factors: (variable, `NUMERIC` for
/// the variable's value, or a raw level code for its indicator).
type Recipe = smallvec::SmallVec<[(usize, u32); 4]>;
const NUMERIC: u32 = u32::MAX;

/// What [`ModelFrame::refill`] needs: the formula's variables, every
/// candidate X column's recipe and which were kept, and scratch space.
#[derive(Debug, Clone, Default)]
struct Refill {
    vars: Vec<String>,
    recipes: Vec<Recipe>,
    kept: Vec<usize>,
    /// Per variable: the levels of a categorical variable of X.
    fixed_levels: Vec<Option<Levels>>,
    /// False after a refill that gave up part way (the frame must be rebuilt).
    valid: bool,
    xall: Vec<f64>,
    gram: Vec<f64>,
    kept_now: Vec<usize>,
    fac: Vec<f64>,
    mark: Vec<u32>,
    order: Vec<u32>,
    prev_rows: Vec<usize>,
    combo: Combo,
    row_keys: Vec<u64>,
    /// Per data row: complete in every variable so far.
    complete: Vec<bool>,
}

/// Which columns of a Gram matrix (nc × nc) are linearly independent of the
/// earlier kept ones: a Cholesky in column order gives each column's squared
/// distance from the span of the earlier kept ones; a column whose distance
/// is at most 1e-7 of its norm is dropped (R's QR tolerance). `fac` is
/// scratch (the factor's rows, packed).
fn independent_columns(gram: &[f64], nc: usize, kept: &mut Vec<usize>, fac: &mut Vec<f64>) {
    kept.clear();
    fac.clear();
    // Row t of the factor starts at t(t+1)/2 and has t + 1 entries.
    let start = |t: usize| t * (t + 1) / 2;
    for j in 0..nc {
        let norm2 = gram[j * nc + j];
        let base = fac.len();
        for (t, &kt) in kept.iter().enumerate() {
            let mut v = gram[j * nc + kt];
            for u in 0..t {
                v -= fac[base + u] * fac[start(t) + u];
            }
            fac.push(v / fac[start(t) + t]);
        }
        let resid2 = norm2 - fac[base..].iter().map(|v| v * v).sum::<f64>();
        if norm2 == 0.0 || !(resid2 > 1e-14 * norm2) {
            fac.truncate(base);
        } else {
            fac.push(resid2.sqrt());
            kept.push(j);
        }
    }
}

/// How [`ModelFrame::refill`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refilled {
    /// Same rows and grouping codes: only X and y changed.
    SameGroups,
    /// New rows or grouping codes (same formula structure).
    NewGroups,
    /// Not refillable: build the frame afresh.
    No,
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

/// The levels of a categorical column present over `rows`, as raw codes
/// sorted by name (R's factor order) into `order`, and each raw code's index
/// among them into `remap` (`u32::MAX` for an absent level). Reuses the
/// vectors' storage. With `same_names`, `order` holds these levels' order
/// over earlier rows; when the same levels are present it is kept, without
/// sorting the names again.
fn present_levels(
    codes: &[u32],
    levels: &[String],
    rows: &[usize],
    order: &mut Vec<u32>,
    remap: &mut Vec<u32>,
    same_names: bool,
) {
    remap.clear();
    remap.resize(levels.len(), 0);
    for &i in rows {
        remap[codes[i] as usize] = 1;
    }
    let present = remap.iter().filter(|&&m| m == 1).count();
    let unchanged = same_names
        && order.len() == present
        && order.iter().all(|&c| remap.get(c as usize) == Some(&1));
    if !unchanged {
        order.clear();
        order.extend((0..levels.len() as u32).filter(|&c| remap[c as usize] == 1));
        order.sort_unstable_by(|&a, &b| levels[a as usize].cmp(&levels[b as usize]));
    }
    remap.iter_mut().for_each(|m| *m = u32::MAX);
    for (k, &c) in order.iter().enumerate() {
        remap[c as usize] = k as u32;
    }
}

/// Levels of a column over `rows` (sorted: by name for text, by value for
/// numbers, as R's factor()), and each row's level index.
fn factor_codes(col: &Column, rows: &[usize]) -> (Vec<u32>, Levels) {
    match &col.data {
        ColumnData::Categorical { codes, levels } => {
            let (mut order, mut remap) = (Vec::new(), Vec::new());
            present_levels(codes, levels, rows, &mut order, &mut remap, false);
            (
                rows.iter().map(|&i| remap[codes[i] as usize]).collect(),
                Levels {
                    names: levels.clone(),
                    order,
                },
            )
        }
        ColumnData::Numeric(v) => {
            let vals = NumericLevels::new(rows.iter().map(|&i| v[i]));
            let codes = rows.iter().map(|&i| vals.code(v[i])).collect();
            (codes, Levels::owned(vals.names()))
        }
    }
}

/// Levels of the interaction of one or more columns, named `a:b` and ordered
/// as R's `a:b` (the first factor's level varies slowest; unused
/// combinations dropped), which is the order lme4 gives `(1|a:b)`.
fn group_codes(cols: &[&Column], rows: &[usize]) -> (Vec<u32>, Levels) {
    if cols.len() == 1 {
        return factor_codes(cols[0], rows);
    }
    let parts: Vec<(Vec<u32>, Levels)> = cols.iter().map(|c| factor_codes(c, rows)).collect();
    // Combined level index in mixed radix: sorting by it is R's order.
    let radix: Vec<u64> = parts.iter().map(|p| p.1.len().max(1) as u64).collect();
    let total = radix.iter().try_fold(1u64, |a, &r| a.checked_mul(r));
    if total.is_none() {
        return tuple_group_codes(&parts, rows.len());
    }
    let keys: Vec<u64> = (0..rows.len())
        .map(|r| {
            parts
                .iter()
                .zip(&radix)
                .fold(0u64, |acc, (p, &k)| acc * k + u64::from(p.0[r]))
        })
        .collect();
    let (codes, present): (Vec<u32>, Vec<u64>) = match total {
        // A dense table when the combinations are few (the usual case).
        Some(t) if t <= 4 * rows.len() as u64 + 1024 => {
            let mut table = vec![u32::MAX; t as usize];
            for &k in &keys {
                table[k as usize] = 0;
            }
            let mut present = Vec::new();
            for (k, slot) in table.iter_mut().enumerate() {
                if *slot == 0 {
                    *slot = present.len() as u32;
                    present.push(k as u64);
                }
            }
            (keys.iter().map(|&k| table[k as usize]).collect(), present)
        }
        _ => {
            let mut present = keys.clone();
            present.sort_unstable();
            present.dedup();
            let codes = keys
                .iter()
                .map(|k| present.partition_point(|x| x < k) as u32)
                .collect();
            (codes, present)
        }
    };
    let names: Vec<String> = present
        .iter()
        .map(|&key| {
            let mut idx = vec![0u64; parts.len()];
            let mut k = key;
            for (j, &r) in radix.iter().enumerate().rev() {
                idx[j] = k % r;
                k /= r;
            }
            let mut name = String::new();
            for (j, p) in parts.iter().enumerate() {
                if j > 0 {
                    name.push(':');
                }
                name.push_str(p.1.name(idx[j] as usize));
            }
            name
        })
        .collect();
    (codes, Levels::owned(names))
}

/// [`group_codes`] when the combinations outnumber u64 (very many columns or
/// levels): the same order, with each row's level tuple as the key.
fn tuple_group_codes(parts: &[(Vec<u32>, Levels)], n: usize) -> (Vec<u32>, Levels) {
    let tuple = |r: usize| -> Vec<u32> { parts.iter().map(|p| p.0[r]).collect() };
    let mut present: Vec<Vec<u32>> = (0..n).map(tuple).collect();
    present.sort_unstable();
    present.dedup();
    let codes = (0..n)
        .map(|r| present.binary_search(&tuple(r)).unwrap_or(0) as u32)
        .collect();
    let names = present
        .iter()
        .map(|t| {
            t.iter()
                .zip(parts)
                .map(|(&l, p)| p.1.name(l as usize))
                .collect::<Vec<_>>()
                .join(":")
        })
        .collect();
    (codes, Levels::owned(names))
}

/// Columns a single variable contributes to a fixed term.
enum VarCols {
    Numeric(Vec<f64>),
    /// Category codes per row, level names, and the first level kept (0 = dummy, 1 = contrasts).
    Factor(Vec<u32>, Levels, usize),
}

impl ModelFrame {
    /// Notes about the design, in words: predictors dropped because they
    /// have one level in the rows used.
    pub fn notes(&self) -> Vec<String> {
        self.single_level
            .iter()
            .map(|(v, l)| {
                format!(
                    "`{v}` has one level (`{l}`) in the {} rows used, so it adds no column and was dropped from the model (R refuses to fit it: a factor needs two or more levels)",
                    self.n
                )
            })
            .collect()
    }

    /// Build the model frame for a formula on a data frame.
    pub fn new(formula: &Formula, data: &DataFrame) -> Result<ModelFrame> {
        Self::build(formula, data, None)
    }

    /// Build the model frame, taking each grouping factor's level codes from
    /// `prev` when they were built from identical grouping columns over the
    /// same rows (a power loop's designs often repeat their structure).
    pub fn build(
        formula: &Formula,
        data: &DataFrame,
        prev: Option<&ModelFrame>,
    ) -> Result<ModelFrame> {
        check_terms(formula)?;
        // Formula functions: their columns are computed over all the data
        // rows first, as R's model.frame does.
        let augmented;
        let data = if formula.derived.is_empty() {
            data
        } else {
            augmented = super::transform::augment(data, &formula.derived)?;
            &augmented
        };
        let vars = formula.model_variables();
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

        // Response, less the offset.
        let ycol = numeric_column(col(&formula.response), "the response")?;
        let mut y: Vec<f64> = rows.iter().map(|&i| ycol[i]).collect();
        if let Some(o) = &formula.offset {
            let ocol = numeric_column(col(o), "the offset")?;
            for (v, &i) in y.iter_mut().zip(&rows) {
                *v -= ocol[i];
            }
        }
        if let Some(k) = y.iter().position(|v| !v.is_finite()) {
            return Err(Error::Usage(format!(
                "the response `{}` is {} in data row {} (CSV line {}): every value must be a finite number (or NA for missing)",
                formula.response,
                y[k],
                rows[k] + 1,
                rows[k] + 2
            )));
        }
        if y.iter().all(|&v| v == y[0]) {
            return Err(Error::Usage(format!(
                "the response `{}` is constant ({}) in the {n} rows used: there is nothing to model",
                formula.response, y[0]
            )));
        }

        // Fixed effects.
        let mut xcols: Vec<Vec<f64>> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut recipes: Vec<Recipe> = Vec::new();
        let mut fixed_levels: Vec<Option<Levels>> = vec![None; vars.len()];
        let mut single_level: Vec<(String, String)> = Vec::new();
        if formula.intercept {
            xcols.push(vec![1.0; n]);
            names.push("(Intercept)".into());
            recipes.push(Recipe::new());
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
                    if levels.len() == 1 && !single_level.iter().any(|(n, _)| n == v) {
                        single_level.push((v.clone(), levels.name(0).to_string()));
                    }
                    let vi = vars
                        .iter()
                        .position(|u| u == v)
                        .expect("a formula variable");
                    fixed_levels[vi] = Some(levels.clone());
                    let margin: Vec<String> = term.iter().filter(|x| *x != v).cloned().collect();
                    let first = usize::from(in_model(&margin));
                    parts.push((v.clone(), VarCols::Factor(codes, levels, first)));
                }
            }
            // Cartesian product, first variable varying fastest (as R). Each
            // column's recipe (its factors) lets a later data set with the
            // same structure be refilled in place ([`ModelFrame::refill`]).
            let var_idx = |v: &str| {
                vars.iter()
                    .position(|u| u == v)
                    .expect("a formula variable")
            };
            let mut acc: Vec<(String, Vec<f64>, Recipe)> =
                vec![(String::new(), vec![1.0; n], Recipe::new())];
            for (name, vc) in &parts {
                let vi = var_idx(name);
                let comps: Vec<(String, Vec<f64>, Recipe)> = match vc {
                    VarCols::Numeric(v) => {
                        vec![(name.clone(), v.clone(), smallvec::smallvec![(vi, NUMERIC)])]
                    }
                    // Sum-to-zero contrasts (R's contr.sum): column l is
                    // +1 at level l and −1 at the last level, named by its
                    // index.
                    VarCols::Factor(codes, levels, 1)
                        if formula.contrasts == super::formula::Contrasts::Sum =>
                    {
                        let last = levels.len() - 1;
                        (0..last)
                            .map(|l| {
                                (
                                    format!("{name}{}", l + 1),
                                    codes
                                        .iter()
                                        .map(|&c| {
                                            let c = c as usize;
                                            if c == l {
                                                1.0
                                            } else if c == last {
                                                -1.0
                                            } else {
                                                0.0
                                            }
                                        })
                                        .collect(),
                                    smallvec::smallvec![(vi, levels.order[l])],
                                )
                            })
                            .collect()
                    }
                    VarCols::Factor(codes, levels, first) => (*first..levels.len())
                        .map(|l| {
                            (
                                format!("{name}{}", levels.name(l)),
                                codes.iter().map(|&c| f64::from(c as usize == l)).collect(),
                                smallvec::smallvec![(vi, levels.order[l])],
                            )
                        })
                        .collect(),
                };
                if acc.len() == 1 && acc[0].0.is_empty() {
                    // First variable: the running product is all ones.
                    acc = comps;
                    continue;
                }
                let mut next = Vec::new();
                for (cn, cv, cr) in &comps {
                    for (an, av, ar) in &acc {
                        let mut r = ar.clone();
                        r.extend_from_slice(cr);
                        next.push((
                            format!("{an}:{cn}"),
                            av.iter().zip(cv).map(|(a, b)| a * b).collect(),
                            r,
                        ));
                    }
                }
                acc = next;
            }
            for (nm, v, r) in acc {
                names.push(nm);
                xcols.push(v);
                recipes.push(r);
            }
        }
        // Drop columns linearly dependent on earlier ones: a Cholesky of the
        // Gram matrix in column order gives each column's squared distance
        // from the span of the earlier kept ones; a column whose distance is
        // at most 1e-7 of its norm is dropped (R's QR tolerance).
        let nc = xcols.len();
        let mut gram = vec![0.0; nc * nc];
        for a in 0..nc {
            for b in 0..=a {
                let v = dot(&xcols[a], &xcols[b]);
                gram[a * nc + b] = v;
                gram[b * nc + a] = v;
            }
        }
        let mut kept: Vec<usize> = Vec::new();
        independent_columns(&gram, nc, &mut kept, &mut Vec::new());
        let dropped: Vec<String> = (0..nc)
            .filter(|j| !kept.contains(j))
            .map(|j| names[j].clone())
            .collect();
        let p = kept.len();
        let mut x = Vec::with_capacity(n * p);
        for &j in &kept {
            x.extend_from_slice(&xcols[j]);
        }
        let xtx: Vec<f64> = kept
            .iter()
            .flat_map(|&a| kept.iter().map(move |&b| (a, b)))
            .map(|(a, b)| gram[a * nc + b])
            .collect();
        let x_names = kept.iter().map(|&j| names[j].clone()).collect();

        // Random-effects terms.
        let mut terms = Vec::new();
        for spec in &formula.random {
            let gname = spec.group_name();
            let gcols: Vec<&Column> = spec.group.iter().map(|g| col(g)).collect();
            let source: Vec<GroupSource> =
                gcols.iter().map(|c| GroupSource::of(c, &rows)).collect();
            let reused = prev.filter(|pf| pf.rows == rows).and_then(|pf| {
                pf.terms
                    .iter()
                    .find(|t| t.group == gname && t.source == source)
            });
            let (refs, levels) = match reused {
                Some(t) => (t.refs.clone(), t.levels.clone()),
                None => group_codes(&gcols, &rows),
            };
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
            let mut combo = Combo::default();
            if gcols.len() > 1
                && !combo.compute(
                    &gcols,
                    &rows,
                    &mut Vec::new(),
                    &mut Vec::new(),
                    &mut Vec::new(),
                )
            {
                combo = Combo::default();
            }
            terms.push(ReTerm {
                group: gname,
                levels,
                refs,
                k,
                col_names,
                z,
                spec: spec.clone(),
                source,
                combo,
            });
        }
        if terms.is_empty() {
            return Err(Error::Usage(
                "the formula has no random-effects term such as (1|team); use a linear model instead".into(),
            ));
        }
        for (i, xc) in xcols.iter().enumerate() {
            if xc.iter().all(|v| v.is_finite()) {
                continue;
            }
            if let Some(k) = xc.iter().position(|v| !v.is_finite()) {
                return Err(Error::Usage(format!(
                    "the fixed-effect column `{}` is {} in data row {} (CSV line {}): values must be finite numbers",
                    names[i],
                    xc[k],
                    rows[k] + 1,
                    rows[k] + 2
                )));
            }
        }
        for t in &terms {
            if let Some(k) = t.z.iter().position(|v| !v.is_finite()) {
                let i = k / t.k;
                return Err(Error::Usage(format!(
                    "the random slope `{}` is {} in data row {} (CSV line {}): values must be finite numbers",
                    t.col_names[k % t.k],
                    t.z[k],
                    rows[i] + 1,
                    rows[i] + 2
                )));
            }
            check_identifiable(t, &x, n, p, &xtx)?;
        }
        // lme4 order: decreasing number of levels, stable.
        terms.sort_by_key(|t| std::cmp::Reverse(t.nlevels()));
        Ok(ModelFrame {
            n,
            y,
            x,
            p,
            x_names,
            xtx,
            dropped,
            x_parts: kept
                .iter()
                .map(|&j| {
                    recipes[j]
                        .iter()
                        .map(|&(vi, code)| {
                            let lv = fixed_levels[vi].as_ref().filter(|_| code != NUMERIC);
                            XPart {
                                var: vars[vi].clone(),
                                level: lv.map(|l| (code, l.len())),
                            }
                        })
                        .collect()
                })
                .collect(),
            single_level,
            terms,
            rows,
            n_missing,
            response: formula.response.clone(),
            refill: Refill {
                vars,
                recipes,
                kept,
                fixed_levels,
                valid: true,
                ..Refill::default()
            },
        })
    }
}

impl GroupSource {
    /// Whether this source is `col` over `rows` (no copy made).
    fn matches(&self, col: &Column, rows: &[usize]) -> bool {
        if self.raw.len() != rows.len() {
            return false;
        }
        match (&col.data, &self.levels) {
            (ColumnData::Categorical { codes, levels }, Some(l)) => {
                std::sync::Arc::ptr_eq(levels, l)
                    && rows
                        .iter()
                        .zip(&self.raw)
                        .all(|(&i, &r)| u64::from(codes[i]) == r)
            }
            (ColumnData::Numeric(v), None) => rows
                .iter()
                .zip(&self.raw)
                .all(|(&i, &r)| v[i].to_bits() == r),
            _ => false,
        }
    }

    /// Make this source `col` over `rows`, in place.
    fn refill(&mut self, col: &Column, rows: &[usize]) {
        self.raw.clear();
        match &col.data {
            ColumnData::Categorical { codes, levels } => {
                self.levels = Some(levels.clone());
                self.raw.extend(rows.iter().map(|&i| u64::from(codes[i])));
            }
            ColumnData::Numeric(v) => {
                self.levels = None;
                self.raw.extend(rows.iter().map(|&i| v[i].to_bits()));
            }
        }
    }
}

/// A random intercept on one categorical column: its levels present over
/// `rows`, sorted by name, and each row's index among them, as
/// `factor_codes` computes them (in place; `mark` is scratch). False when
/// the column is not the one the levels came from.
fn refill_single(t: &mut ReTerm, col: &Column, rows: &[usize], mark: &mut Vec<u32>) -> bool {
    let ColumnData::Categorical { codes, levels } = &col.data else {
        return false;
    };
    if !std::sync::Arc::ptr_eq(levels, &t.levels.names) {
        return false;
    }
    present_levels(codes, levels, rows, &mut t.levels.order, mark, true);
    t.refs.clear();
    t.refs.extend(rows.iter().map(|&i| mark[codes[i] as usize]));
    true
}

impl ModelFrame {
    /// The frame without fixed-effect column `j` (X, X'X and the names;
    /// the rows, response and random effects unchanged): the model of a
    /// profile with β_j held fixed.
    pub fn without_column(&self, j: usize) -> ModelFrame {
        let (n, p) = (self.n, self.p);
        let mut f = self.clone();
        f.x.drain(j * n..(j + 1) * n);
        f.xtx = (0..p * p)
            .filter(|&e| e / p != j && e % p != j)
            .map(|e| self.xtx[e])
            .collect();
        f.p -= 1;
        f.x_names.remove(j);
        f
    }

    /// Refill this frame in place from a new data set for the same formula
    /// when the result is certain to equal [`ModelFrame::new`]'s: the same
    /// columns and kinds, the same factor levels present, the same columns
    /// of X kept, and grouping factors that either keep their codes or are
    /// single categorical columns with the same levels (random intercepts).
    /// Anything else, including every case `new` would reject, returns
    /// [`Refilled::No`] and the frame must be rebuilt. Allocates nothing
    /// once the frame has held a data set this large.
    pub fn refill(&mut self, formula: &Formula, data: &DataFrame) -> Refilled {
        let r = self.try_refill(formula, data);
        self.refill.valid = r != Refilled::No;
        r
    }

    fn try_refill(&mut self, formula: &Formula, data: &DataFrame) -> Refilled {
        use Refilled::No;
        let rf = &mut self.refill;
        if !rf.valid
            || formula.response != self.response
            || rf.vars.is_empty()
            || !formula.derived.is_empty()
            || formula.contrasts != super::formula::Contrasts::Treatment
        {
            return No;
        }
        let mut cols: smallvec::SmallVec<[&Column; 8]> = smallvec::SmallVec::new();
        for v in &rf.vars {
            match data.columns.iter().find(|c| &c.name == v) {
                Some(c) if c.suspect.is_none() => cols.push(c),
                _ => return No,
            }
        }
        // Complete cases, column by column.
        std::mem::swap(&mut rf.prev_rows, &mut self.rows);
        rf.complete.clear();
        rf.complete.resize(data.nrows(), true);
        for c in &cols {
            c.mark_missing(&mut rf.complete);
        }
        // Compacted without a branch per row (missing values fall at
        // random).
        self.rows.clear();
        self.rows.resize(rf.complete.len(), 0);
        let mut kept = 0;
        for (i, &ok) in rf.complete.iter().enumerate() {
            self.rows[kept] = i;
            kept += usize::from(ok);
        }
        self.rows.truncate(kept);
        let (rows, n) = (&self.rows, self.rows.len());
        if n == 0 {
            return No;
        }
        // Response.
        let ColumnData::Numeric(ycol) = &cols[0].data else {
            return No;
        };
        self.y.clear();
        self.y.extend(rows.iter().map(|&i| ycol[i]));
        if self.y.iter().any(|v| !v.is_finite()) || self.y.iter().all(|&v| v == self.y[0]) {
            return No;
        }
        // Numeric variables of X still numeric; categorical ones with the
        // same levels present as before.
        let numeric_ok = rf
            .recipes
            .iter()
            .flatten()
            .all(|&(vi, code)| code != NUMERIC || cols[vi].is_numeric());
        if !numeric_ok || !self.factor_levels_unchanged(&cols) {
            return No;
        }
        let rf = &mut self.refill;
        let rows = &self.rows;
        // Every candidate column from its recipe, its Gram matrix, and the
        // same dependence test as `new`.
        let nc = rf.recipes.len();
        rf.xall.clear();
        for r in &rf.recipes {
            let value = |i: usize, &(vi, code): &(usize, u32)| match &cols[vi].data {
                ColumnData::Numeric(v) => v[i],
                ColumnData::Categorical { codes, .. } => f64::from(codes[i] == code),
            };
            match r.split_first() {
                None => rf.xall.extend(std::iter::repeat_n(1.0, n)),
                // One variable (the usual case): its column, read once.
                Some((&(vi, code), [])) => match &cols[vi].data {
                    ColumnData::Numeric(v) => rf.xall.extend(rows.iter().map(|&i| v[i])),
                    ColumnData::Categorical { codes, .. } => rf
                        .xall
                        .extend(rows.iter().map(|&i| f64::from(codes[i] == code))),
                },
                Some((f0, rest)) => rf.xall.extend(
                    rows.iter()
                        .map(|&i| rest.iter().fold(value(i, f0), |acc, f| acc * value(i, f))),
                ),
            }
        }
        if rf.xall.iter().any(|v| !v.is_finite()) {
            return No;
        }
        rf.gram.clear();
        rf.gram.resize(nc * nc, 0.0);
        for a in 0..nc {
            for b in 0..=a {
                let v = dot(&rf.xall[a * n..(a + 1) * n], &rf.xall[b * n..(b + 1) * n]);
                rf.gram[a * nc + b] = v;
                rf.gram[b * nc + a] = v;
            }
        }
        independent_columns(&rf.gram, nc, &mut rf.kept_now, &mut rf.fac);
        if rf.kept_now != rf.kept {
            return No;
        }
        let p = rf.kept.len();
        self.x.clear();
        for &j in &rf.kept {
            self.x.extend_from_slice(&rf.xall[j * n..(j + 1) * n]);
        }
        self.xtx.clear();
        for &a in &rf.kept {
            for &b in &rf.kept {
                self.xtx.push(rf.gram[a * nc + b]);
            }
        }
        // Grouping factors.
        let var = |name: &str| {
            rf.vars
                .iter()
                .position(|v| v == name)
                .expect("a formula variable")
        };
        let same_rows = *rows == rf.prev_rows;
        let keep_codes = same_rows
            && self.terms.iter().all(|t| {
                t.spec.group.len() == t.source.len()
                    && t.spec
                        .group
                        .iter()
                        .zip(&t.source)
                        .all(|(g, s)| s.matches(cols[var(g)], rows))
            });
        if !keep_codes {
            for t in &mut self.terms {
                if t.spec.slopes.len() + usize::from(t.spec.intercept) != 1 || !t.spec.intercept {
                    return No;
                }
                if t.spec.group.len() == 1 {
                    let col = cols[var(&t.spec.group[0])];
                    if !refill_single(t, col, rows, &mut rf.mark) {
                        return No;
                    }
                    t.source[0].refill(col, rows);
                } else {
                    let gcols: SmallVec<[&Column; 4]> =
                        t.spec.group.iter().map(|g| cols[var(g)]).collect();
                    // The same per-column levels and combinations as before:
                    // the levels (names and order) stand; each row's code is
                    // its key's rank.
                    if t.combo.keys.is_empty()
                        || !rf.combo.compute(
                            &gcols,
                            rows,
                            &mut rf.row_keys,
                            &mut rf.order,
                            &mut rf.mark,
                        )
                        || rf.combo != t.combo
                    {
                        return No;
                    }
                    t.refs.clear();
                    for &key in &rf.row_keys {
                        t.refs
                            .push(t.combo.keys.partition_point(|&x| x < key) as u32);
                    }
                    for (s, c) in t.source.iter_mut().zip(&gcols) {
                        s.refill(c, rows);
                    }
                }
                t.z.clear();
                t.z.resize(n, 1.0);
            }
        }
        // `new` orders the terms by decreasing number of levels (stable):
        // a tie, or an order the new counts would change, is left to it.
        if self
            .terms
            .windows(2)
            .any(|w| w[0].nlevels() <= w[1].nlevels())
        {
            return No;
        }
        for t in &self.terms {
            // The checks of `new`: enough levels, fewer than rows, and (for
            // a random intercept) more levels than X has columns, which makes
            // the term identifiable; anything closer is left to `new`.
            let nl = t.nlevels();
            if nl < 2 || nl * t.k >= n || !(t.k == 1 && t.z.iter().all(|&z| z == 1.0) && nl > p) {
                return No;
            }
        }
        self.n_missing = data.nrows() - n;
        self.n = n;
        self.p = p;
        if keep_codes {
            Refilled::SameGroups
        } else {
            Refilled::NewGroups
        }
    }

    /// Whether each categorical variable of X is still categorical, on the
    /// same level names, with the same levels present over the rows (a
    /// level lost or gained changes X's columns or its reference level).
    fn factor_levels_unchanged(&mut self, cols: &[&Column]) -> bool {
        let rf = &mut self.refill;
        for (vi, fl) in rf.fixed_levels.iter().enumerate() {
            let Some(fl) = fl else {
                continue;
            };
            let ColumnData::Categorical { codes, levels } = &cols[vi].data else {
                return false;
            };
            if !std::sync::Arc::ptr_eq(levels, &fl.names) {
                return false;
            }
            present_levels(
                codes,
                levels,
                &self.rows,
                &mut rf.order,
                &mut rf.mark,
                false,
            );
            if rf.order != fl.order {
                return false;
            }
        }
        true
    }
}

/// Formula-level mistakes that would fit without complaint: the response
/// among its own predictors, and a random-effects term given twice.
fn check_terms(formula: &Formula) -> Result<()> {
    let resp = &formula.response;
    let reads_response = formula.derived.iter().any(|d| {
        let mut cols = Vec::new();
        d.columns(&mut cols);
        cols.contains(resp)
    });
    if formula.fixed.iter().flatten().any(|v| v == resp)
        || formula.random.iter().any(|r| r.slopes.contains(resp))
        || reads_response
    {
        return Err(Error::Usage(format!(
            "the response `{resp}` also appears on the right-hand side of the formula: a variable cannot predict itself; remove it there"
        )));
    }
    for (i, a) in formula.random.iter().enumerate() {
        for b in &formula.random[..i] {
            let overlap = a.group_name() == b.group_name()
                && ((a.intercept && b.intercept) || a.slopes.iter().any(|s| b.slopes.contains(s)));
            if overlap {
                return Err(Error::Usage(format!(
                    "the random effects for `{}` are given twice (two terms share a column): their variances cannot be told apart; keep one term",
                    a.group_name()
                )));
            }
        }
    }
    Ok(())
}

/// A random-effects term must add something the fixed effects do not
/// already fit: with H the hat matrix of X, S = Σ_l Z_l'(I − H) Z_l (k × k
/// over the levels l) must be positive definite. Otherwise some variance of
/// the term has no information in the REML likelihood (e.g. 2 or 3 teams
/// whose every difference the arm and site effects already absorb, or
/// `(c|g)` with `c` constant), and an optimiser would report whatever value
/// it stopped at. Costs O(n·k·p + levels·k·p²).
fn check_identifiable(t: &ReTerm, x: &[f64], n: usize, p: usize, xtx: &[f64]) -> Result<()> {
    let (k, nl) = (t.k, t.nlevels());
    if k == 1 {
        // Z_l v for the levels l with a non-zero column have disjoint
        // supports, so they are linearly independent: more such levels than
        // X has columns cannot all lie in X's span, and S > 0. (The usual
        // case, decided in O(n) without the Schur complement.)
        let mut live = vec![false; nl];
        for (&lev, &z) in t.refs.iter().zip(&t.z) {
            if z != 0.0 {
                live[lev as usize] = true;
            }
        }
        if live.iter().filter(|&&l| l).count() > p {
            return Ok(());
        }
    }
    // Cholesky of X'X (X has full column rank here).
    let mut l = xtx.to_vec();
    for j in 0..p {
        for c in 0..=j {
            let mut v = l[j * p + c];
            for m in 0..c {
                v -= l[j * p + m] * l[c * p + m];
            }
            l[j * p + c] = if c == j {
                v.max(0.0).sqrt()
            } else {
                v / l[c * p + c]
            };
        }
    }
    // Per level: Z_l'X (k × p, stored [level][a][j]) and the k × k sum of
    // Z_l'Z_l. Column by column, so X is read contiguously.
    let mut zx = vec![0.0; nl * k * p];
    let mut s = vec![0.0; k * k];
    for zi in t.z.chunks_exact(k) {
        for a in 0..k {
            for b in 0..k {
                s[a * k + b] += zi[a] * zi[b];
            }
        }
    }
    for (j, xj) in x.chunks_exact(n).take(p).enumerate() {
        if k == 1 {
            for ((&lev, &zi), &xi) in t.refs.iter().zip(&t.z).zip(xj) {
                zx[lev as usize * p + j] += zi * xi;
            }
        } else {
            for ((&lev, zi), &xi) in t.refs.iter().zip(t.z.chunks_exact(k)).zip(xj) {
                for (a, &za) in zi.iter().enumerate() {
                    zx[(lev as usize * k + a) * p + j] += za * xi;
                }
            }
        }
    }
    let scale: Vec<f64> = (0..k).map(|a| s[a * k + a]).collect();
    // Subtract Σ_l W_l'W_l with W_l = L⁻¹ X'Z_l.
    let mut w = vec![0.0; p * k];
    for lev in 0..nl {
        for a in 0..k {
            for j in 0..p {
                let mut v = zx[(lev * k + a) * p + j];
                for m in 0..j {
                    v -= l[j * p + m] * w[m * k + a];
                }
                w[j * k + a] = if l[j * p + j] > 0.0 {
                    v / l[j * p + j]
                } else {
                    0.0
                };
            }
        }
        for a in 0..k {
            for b in 0..k {
                s[a * k + b] -= (0..p).map(|j| w[j * k + a] * w[j * k + b]).sum::<f64>();
            }
        }
    }
    // Cholesky of S with a pivot tolerance relative to each column's norm.
    for a in 0..k {
        for b in 0..=a {
            let mut v = s[a * k + b];
            for m in 0..b {
                v -= s[a * k + m] * s[b * k + m];
            }
            if a == b {
                if !(v > 1e-9 * scale[a]) {
                    let what = if k == 1 {
                        format!(
                            "the fixed effects already separate all {nl} levels of `{}` (e.g. each level is the only one of its arm or site), so its variance cannot be estimated; use more levels of `{}` or fewer fixed effects that are constant within them",
                            t.group, t.group
                        )
                    } else {
                        format!(
                            "its column `{}` is a combination of the term's other columns and the fixed effects (e.g. a slope constant within every level), so its covariance cannot be estimated; drop that column from the term",
                            t.col_names[a]
                        )
                    };
                    return Err(Error::Usage(format!(
                        "random-effects term for `{}` is not identifiable: {what}",
                        t.group
                    )));
                }
                s[a * k + a] = v.sqrt();
            } else {
                s[a * k + b] = v / s[b * k + b];
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuple_keys_give_the_same_levels_as_mixed_radix_keys() {
        let names: Vec<String> = ["C1", "C10", "C2"].iter().map(|s| s.to_string()).collect();
        let a = Column::categorical("a", vec![2, 0, 1, 0, 2, 1, 0], names);
        let b = Column::numeric("b", vec![3.0, 1.0, 1.0, 2.0, 3.0, 1.0, 1.0]);
        let rows: Vec<usize> = (0..7).collect();
        let (codes, levels) = group_codes(&[&a, &b], &rows);
        let parts = vec![factor_codes(&a, &rows), factor_codes(&b, &rows)];
        let (tcodes, tlevels) = tuple_group_codes(&parts, rows.len());
        assert_eq!(codes, tcodes);
        let nm = |l: &Levels| {
            (0..l.len())
                .map(|k| l.name(k).to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(nm(&levels), nm(&tlevels));
        assert_eq!(nm(&levels), ["C1:1", "C1:2", "C10:1", "C2:3"]);
    }
}
