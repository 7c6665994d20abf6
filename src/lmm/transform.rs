//! Functions in formulas: the columns a formula computes from the data
//! before the model frame is built, as R's `model.frame` does.
//!
//! | in a formula | the column | named (as R) |
//! |---|---|---|
//! | `factor(x)` | x as a categorical column (numeric levels in numeric order) | `factor(x)` |
//! | `as.numeric(x)` | x as numbers (a categorical column's levels must be numbers) | `as.numeric(x)` |
//! | `I(expr)` | arithmetic: `+ - * / ^`, parentheses, numbers, columns, and the functions below | `I(x^2)` |
//! | `log(e)`, `exp(e)`, `sqrt(e)` | the function of an expression | `log(x + 1)` |
//! | `scale(e)` | (e − mean)/sd, sd with n − 1, over the rows where e is known | `scale(x)` |
//! | `poly(e, k)` | R's orthogonal polynomials of degree 1..k | `poly(x, 2)1`, `poly(x, 2)2` |
//! | `offset(e)` | a known term added to the linear predictor (LMM: subtracted from y) | — |
//!
//! As in R, each column is computed over every data row (a row missing in
//! another variable still counts in `scale`'s mean and `poly`'s basis), and
//! then rows with a missing value in any model variable are dropped. A
//! value a function cannot take (log of 0 or less, sqrt of a negative, a
//! division by zero) is an error naming the data row, where R would give
//! NaN and silently drop the row.

use super::data::{format_number, Column, ColumnData, DataFrame, NumericLevels};
use crate::error::{Error, Result};

/// The functions a formula may use, as the error for another one lists.
pub const SUPPORTED: &str =
    "factor(x), as.numeric(x), I(expr), log(x), exp(x), sqrt(x), scale(x), poly(x, k) and offset(x)";

/// An arithmetic expression over columns.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    Col(String),
    Neg(Box<Expr>),
    Paren(Box<Expr>),
    Bin(Op, Box<Expr>, Box<Expr>),
    Call(Func, Box<Expr>),
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

/// An elementwise function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Log,
    Exp,
    Sqrt,
}

impl Func {
    pub fn from_name(name: &str) -> Option<Func> {
        match name {
            "log" => Some(Func::Log),
            "exp" => Some(Func::Exp),
            "sqrt" => Some(Func::Sqrt),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Func::Log => "log",
            Func::Exp => "exp",
            Func::Sqrt => "sqrt",
        }
    }
}

impl Expr {
    /// The expression as R deparses it (`x^2`, `x + 1`, `log(x)`).
    pub fn deparse(&self) -> String {
        match self {
            Expr::Num(v) => format_number(*v),
            Expr::Col(c) => c.clone(),
            Expr::Neg(e) => format!("-{}", e.deparse()),
            Expr::Paren(e) => format!("({})", e.deparse()),
            Expr::Bin(op, a, b) => {
                let (a, b) = (a.deparse(), b.deparse());
                match op {
                    Op::Add => format!("{a} + {b}"),
                    Op::Sub => format!("{a} - {b}"),
                    Op::Mul => format!("{a} * {b}"),
                    Op::Div => format!("{a}/{b}"),
                    Op::Pow => format!("{a}^{b}"),
                }
            }
            Expr::Call(f, e) => format!("{}({})", f.name(), e.deparse()),
        }
    }

    /// The data columns it reads.
    pub fn columns(&self, out: &mut Vec<String>) {
        match self {
            Expr::Num(_) => {}
            Expr::Col(c) => {
                if !out.contains(c) {
                    out.push(c.clone());
                }
            }
            Expr::Neg(e) | Expr::Paren(e) | Expr::Call(_, e) => e.columns(out),
            Expr::Bin(_, a, b) => {
                a.columns(out);
                b.columns(out);
            }
        }
    }

    /// Its value in every data row (NaN where a column is missing); an
    /// error naming `label` and the row where a function leaves the reals.
    fn eval(&self, data: &DataFrame, label: &str) -> Result<Vec<f64>> {
        let n = data.nrows();
        Ok(match self {
            Expr::Num(v) => vec![*v; n],
            Expr::Col(c) => numeric(data.column(c)?, label)?,
            Expr::Paren(e) => e.eval(data, label)?,
            Expr::Neg(e) => e.eval(data, label)?.into_iter().map(|v| -v).collect(),
            Expr::Bin(op, a, b) => {
                let (a, b) = (a.eval(data, label)?, b.eval(data, label)?);
                let mut out = Vec::with_capacity(n);
                for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
                    let v = match op {
                        Op::Add => x + y,
                        Op::Sub => x - y,
                        Op::Mul => x * y,
                        Op::Div => x / y,
                        Op::Pow => x.powf(y),
                    };
                    check_value(v, x.is_nan() || y.is_nan(), i, label)?;
                    out.push(v);
                }
                out
            }
            Expr::Call(f, e) => {
                let a = e.eval(data, label)?;
                let mut out = Vec::with_capacity(n);
                for (i, &x) in a.iter().enumerate() {
                    let v = match f {
                        Func::Log => x.ln(),
                        Func::Exp => x.exp(),
                        Func::Sqrt => x.sqrt(),
                    };
                    check_value(v, x.is_nan(), i, label)?;
                    out.push(v);
                }
                out
            }
        })
    }
}

/// A finite value, or NaN from a missing input; else an error.
fn check_value(v: f64, missing_input: bool, row: usize, label: &str) -> Result<()> {
    if v.is_finite() || missing_input {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "`{label}` is {} in data row {} (CSV line {}): the function or operator leaves the finite numbers there (log or a power of 0 or less, sqrt of a negative, division by zero, overflow); transform the column so every value is valid, or mark that row NA",
        if v.is_nan() { "NaN".to_string() } else { format!("{v}") },
        row + 1,
        row + 2
    )))
}

/// A column's numbers (NaN = missing); a categorical column is refused.
fn numeric(col: &Column, label: &str) -> Result<Vec<f64>> {
    match &col.data {
        ColumnData::Numeric(v) => Ok(v.clone()),
        ColumnData::Categorical { .. } => Err(Error::Usage(format!(
            "`{label}` needs numbers, but `{}` is a categorical column; use as.numeric({}) if its values are numbers written as text",
            col.name, col.name
        ))),
    }
}

/// How a derived column is computed.
#[derive(Debug, Clone, PartialEq)]
pub enum Derivation {
    /// `I()`, `log()`, `exp()`, `sqrt()`, and `offset()`'s expression.
    Numeric(Expr),
    /// `factor(x)`.
    Factor(String),
    /// `as.numeric(x)`.
    AsNumeric(String),
    /// `scale(e)`.
    Scale(Expr),
    /// Column `index` (1-based) of `poly(e, degree)`.
    Poly {
        x: Expr,
        degree: usize,
        index: usize,
    },
}

/// A column the formula computes.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// Its name in the model (and as a coefficient's prefix).
    pub name: String,
    pub how: Derivation,
}

impl Derived {
    /// The data columns it reads.
    pub fn columns(&self, out: &mut Vec<String>) {
        match &self.how {
            Derivation::Numeric(e) | Derivation::Scale(e) | Derivation::Poly { x: e, .. } => {
                e.columns(out)
            }
            Derivation::Factor(c) | Derivation::AsNumeric(c) => {
                if !out.contains(c) {
                    out.push(c.clone());
                }
            }
        }
    }

    fn compute(&self, data: &DataFrame) -> Result<Column> {
        let label = self.name.as_str();
        Ok(match &self.how {
            Derivation::Numeric(e) => Column::numeric(label, e.eval(data, label)?),
            Derivation::Scale(e) => {
                let v = e.eval(data, label)?;
                let known: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
                let n = known.len() as f64;
                let mean = known.iter().sum::<f64>() / n;
                let sd = (known.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
                if !(sd > 0.0 && sd.is_finite()) {
                    return Err(Error::Usage(format!(
                        "`{label}`: the values are constant (or fewer than two are known), so they cannot be scaled by their SD"
                    )));
                }
                Column::numeric(label, v.iter().map(|x| (x - mean) / sd).collect())
            }
            Derivation::Poly { x, degree, index } => {
                let v = x.eval(data, label)?;
                if let Some(i) = v.iter().position(|x| x.is_nan()) {
                    return Err(Error::Usage(format!(
                        "`{label}`: poly() needs every value, but data row {} (CSV line {}) is missing (as in R); drop those rows from the data first",
                        i + 1,
                        i + 2
                    )));
                }
                let basis = poly(&v, *degree).ok_or_else(|| {
                    Error::Usage(format!(
                        "`{label}`: degree {degree} needs at least {} distinct values, and there are {}",
                        degree + 1,
                        NumericLevels::new(v.iter().copied()).len()
                    ))
                })?;
                Column::numeric(label, basis[*index - 1].clone())
            }
            Derivation::Factor(c) => {
                let col = data.column(c)?;
                match &col.data {
                    ColumnData::Categorical { codes, levels } => {
                        Column::categorical(label, codes.clone(), levels.clone())
                    }
                    ColumnData::Numeric(v) => {
                        let vals = NumericLevels::new(v.iter().copied());
                        let codes = v
                            .iter()
                            .map(|&x| {
                                if x.is_nan() {
                                    super::data::NA_CODE
                                } else {
                                    vals.code(x)
                                }
                            })
                            .collect();
                        Column::categorical(label, codes, vals.names())
                    }
                }
            }
            Derivation::AsNumeric(c) => {
                let col = data.column(c)?;
                match &col.data {
                    ColumnData::Numeric(v) => Column::numeric(label, v.clone()),
                    ColumnData::Categorical { codes, levels } => {
                        let parsed: Vec<Option<f64>> = levels
                            .iter()
                            .map(|l| l.trim().parse::<f64>().ok())
                            .collect();
                        if let Some(k) = parsed.iter().position(|p| p.is_none()) {
                            return Err(Error::Usage(format!(
                                "`{label}`: `{c}` has the value `{}`, which is not a number",
                                levels[k]
                            )));
                        }
                        let v = codes
                            .iter()
                            .map(|&k| {
                                if k == super::data::NA_CODE {
                                    f64::NAN
                                } else {
                                    parsed[k as usize].expect("checked")
                                }
                            })
                            .collect();
                        Column::numeric(label, v)
                    }
                }
            }
        })
    }
}

/// `data` with the derived columns added (replacing a column of the same
/// name).
pub fn augment(data: &DataFrame, derived: &[Derived]) -> Result<DataFrame> {
    let mut cols = data.columns.clone();
    for d in derived {
        let c = d.compute(data)?;
        cols.retain(|x| x.name != c.name);
        cols.push(c);
    }
    DataFrame::from_columns(cols)
}

/// R's `poly(x, degree)`: the columns of degree 1..=degree of an
/// orthonormal basis of polynomials in x (centred), each the component of
/// (x − x̄)^d orthogonal to the lower degrees, scaled to unit length, and
/// signed so its coefficient on (x − x̄)^d is positive. Modified
/// Gram–Schmidt, done twice. None with fewer than degree + 1 distinct
/// values.
pub fn poly(x: &[f64], degree: usize) -> Option<Vec<Vec<f64>>> {
    let n = x.len();
    let mean = x.iter().sum::<f64>() / n as f64;
    let xc: Vec<f64> = x.iter().map(|v| v - mean).collect();
    let scale = xc.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    let mut basis: Vec<Vec<f64>> = vec![vec![1.0 / (n as f64).sqrt(); n]];
    for d in 1..=degree {
        // (x − x̄)^d, computed on x scaled to [−1, 1] (the direction is the
        // same) to keep the powers in range.
        let mut v: Vec<f64> = xc.iter().map(|t| (t / scale).powi(d as i32)).collect();
        let norm0 = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        for _ in 0..2 {
            for q in &basis {
                let r: f64 = q.iter().zip(&v).map(|(a, b)| a * b).sum();
                for (vi, qi) in v.iter_mut().zip(q) {
                    *vi -= r * qi;
                }
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if !(norm > 1e-9 * norm0) {
            return None;
        }
        v.iter_mut().for_each(|a| *a /= norm);
        basis.push(v);
    }
    basis.remove(0);
    Some(basis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poly_is_orthonormal_and_refuses_too_few_values() {
        // Degree 1 is the centred x over its norm (R's poly(x, 1)).
        let p = poly(&[1.0, 2.0, 4.0, 7.0, 11.0], 2).unwrap();
        let xc = [-4.0, -3.0, -1.0, 2.0, 6.0];
        let nrm = xc.iter().map(|v: &f64| v * v).sum::<f64>().sqrt();
        for i in 0..5 {
            assert!((p[0][i] - xc[i] / nrm).abs() < 1e-12);
        }
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        assert!((dot(&p[0], &p[0]) - 1.0).abs() < 1e-12);
        assert!((dot(&p[1], &p[1]) - 1.0).abs() < 1e-12);
        assert!(dot(&p[0], &p[1]).abs() < 1e-12);
        assert!(p[1].iter().sum::<f64>().abs() < 1e-12);
        assert!(poly(&[1.0, 1.0, 2.0], 2).is_none());
    }
}
