//! lme4 formula syntax: `response ~ fixed terms + (random | group)`.
//!
//! Supported: an implicit intercept (`0 +`, `+ 0` or `- 1` removes it, `1`
//! states it), numeric and categorical columns, `a:b` interactions, `a*b`
//! (= `a + b + a:b`), and random terms `(1|g)`, `(x|g)`, `(1 + x|g)`,
//! `(0 + x|g)`, `(1|g1:g2)` and `(1|g1/g2)` (= `(1|g1) + (1|g2:g1)`, lme4's
//! naming), `(1 + x || g)` (= `(1|g) + (0 + x|g)`, uncorrelated), and the
//! functions of [`super::transform`] (`factor(x)`, `I(x^2)`, `log(x)`,
//! `poly(x, 2)`, `offset(x)`, ...). Names are R-style identifiers or
//! `back-quoted`.

use super::transform::{Derivation, Derived, Expr, Func, Op, SUPPORTED};
use crate::error::{Error, Result};

/// A parsed model formula.
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    /// The response column.
    pub response: String,
    /// Whether the fixed part has an intercept.
    pub intercept: bool,
    /// Fixed terms, each a list of column names (one name, or several for an interaction).
    pub fixed: Vec<Vec<String>>,
    /// Random-effects terms.
    pub random: Vec<RandomTerm>,
    /// Columns computed from the data (formula functions), in order.
    pub derived: Vec<Derived>,
    /// The derived column of `offset(...)`, if any.
    pub offset: Option<String>,
    /// How categorical predictors are coded.
    pub contrasts: Contrasts,
    /// The text it was parsed from.
    pub text: String,
}

/// The coding of a categorical predictor's columns (where R uses
/// contrasts rather than one indicator per level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Contrasts {
    /// R's default `contr.treatment`: an indicator for each level but the
    /// first, named column + level (`siteS2`).
    #[default]
    Treatment,
    /// `contr.sum`: column l is +1 at level l and −1 at the last level,
    /// named column + index (`site1`); main effects then average over the
    /// other factors' levels.
    Sum,
}

impl std::str::FromStr for Contrasts {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "treatment" => Ok(Contrasts::Treatment),
            "sum" => Ok(Contrasts::Sum),
            other => Err(format!("unknown contrasts `{other}`: use treatment or sum")),
        }
    }
}

/// One random-effects term `(expr | group)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RandomTerm {
    /// Whether the term has a random intercept.
    pub intercept: bool,
    /// Numeric columns with random slopes.
    pub slopes: Vec<String>,
    /// Columns whose interaction defines the grouping factor.
    pub group: Vec<String>,
}

impl RandomTerm {
    /// The grouping factor's name as lme4 prints it, e.g. `cask:batch`.
    pub fn group_name(&self) -> String {
        self.group.join(":")
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Num(String),
    Tilde,
    Plus,
    Minus,
    Colon,
    Star,
    Slash,
    Bar,
    LParen,
    RParen,
    Caret,
    Comma,
}

fn syntax(text: &str, pos: usize, what: &str) -> Error {
    Error::Usage(format!(
        "formula syntax error at position {}: {what}\n  {text}\n  {}^",
        pos + 1,
        " ".repeat(pos)
    ))
    .one_line_formula()
}

impl Error {
    fn one_line_formula(self) -> Error {
        match self {
            Error::Usage(m) => Error::Usage(m.lines().next().unwrap_or("").to_string()),
            e => e,
        }
    }
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>> {
    let b: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                i += 1;
                continue;
            }
            '~' => out.push((Tok::Tilde, i)),
            '+' => out.push((Tok::Plus, i)),
            '-' => out.push((Tok::Minus, i)),
            ':' => out.push((Tok::Colon, i)),
            '*' => out.push((Tok::Star, i)),
            '/' => out.push((Tok::Slash, i)),
            '|' => out.push((Tok::Bar, i)),
            '(' => out.push((Tok::LParen, i)),
            ')' => out.push((Tok::RParen, i)),
            '^' => out.push((Tok::Caret, i)),
            ',' => out.push((Tok::Comma, i)),
            '`' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != '`' {
                    j += 1;
                }
                if j >= b.len() {
                    return Err(syntax(text, i, "unclosed back-quote"));
                }
                out.push((Tok::Name(b[i + 1..j].iter().collect()), start));
                i = j + 1;
                continue;
            }
            c if c.is_ascii_digit() => {
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_digit() || b[j] == '.') {
                    j += 1;
                }
                // An exponent: 1e-3, 2E5.
                if j + 1 < b.len()
                    && (b[j] == 'e' || b[j] == 'E')
                    && (b[j + 1].is_ascii_digit()
                        || ((b[j + 1] == '-' || b[j + 1] == '+')
                            && j + 2 < b.len()
                            && b[j + 2].is_ascii_digit()))
                {
                    j += 2;
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                }
                out.push((Tok::Num(b[i..j].iter().collect()), start));
                i = j;
                continue;
            }
            c if c.is_alphabetic() || c == '.' || c == '_' => {
                let mut j = i;
                while j < b.len() && (b[j].is_alphanumeric() || b[j] == '.' || b[j] == '_') {
                    j += 1;
                }
                out.push((Tok::Name(b[i..j].iter().collect()), start));
                i = j;
                continue;
            }
            other => return Err(syntax(text, i, &format!("unexpected character `{other}`"))),
        }
        i += 1;
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    text: &'a str,
    /// Columns the formula's functions compute, in order of appearance.
    derived: Vec<Derived>,
    /// Nesting depth of the expression being parsed (bounded, so a hostile
    /// formula cannot exhaust the stack).
    depth: usize,
}

/// The deepest nesting of parentheses, unary minus and powers an expression
/// may have.
const MAX_DEPTH: usize = 100;

/// A summand on the right-hand side before expansion.
enum Summand {
    Intercept(bool),
    Fixed(Vec<Vec<String>>),
    Random(Vec<RandomTerm>),
    /// `offset(e)`: the derived column's name.
    Offset(String),
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }
    fn at(&self) -> usize {
        self.toks
            .get(self.pos)
            .map(|t| t.1)
            .unwrap_or(self.text.chars().count())
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.0.clone());
        self.pos += 1;
        t
    }
    fn expect(&mut self, t: Tok, what: &str) -> Result<()> {
        let at = self.at();
        match self.next() {
            Some(ref x) if *x == t => Ok(()),
            _ => Err(syntax(self.text, at, &format!("expected {what}"))),
        }
    }
    fn name(&mut self) -> Result<String> {
        let at = self.at();
        match self.next() {
            Some(Tok::Name(n)) => Ok(n),
            _ => Err(syntax(self.text, at, "expected a column name")),
        }
    }

    /// A model variable: a column, or a function of columns (its derived
    /// column registered); `poly(x, k)` gives k variables.
    fn variable(&mut self) -> Result<Vec<String>> {
        let at = self.at();
        let name = self.name()?;
        if self.peek() != Some(&Tok::LParen) {
            return Ok(vec![name]);
        }
        self.next();
        let out = match name.as_str() {
            "factor" | "as.numeric" => {
                let col = self.name()?;
                let how = if name == "factor" {
                    Derivation::Factor(col.clone())
                } else {
                    Derivation::AsNumeric(col.clone())
                };
                vec![self.register(format!("{name}({col})"), how)]
            }
            "I" => {
                let e = self.expr()?;
                vec![self.register(format!("I({})", e.deparse()), Derivation::Numeric(e))]
            }
            "log" | "exp" | "sqrt" => {
                let f = Func::from_name(&name).expect("listed");
                let e = Expr::Call(f, Box::new(self.expr()?));
                vec![self.register(e.deparse(), Derivation::Numeric(e))]
            }
            "scale" => {
                let e = self.expr()?;
                vec![self.register(format!("scale({})", e.deparse()), Derivation::Scale(e))]
            }
            "poly" => {
                let e = self.expr()?;
                self.expect(Tok::Comma, "`, degree` in poly(x, degree)")?;
                let kat = self.at();
                let k = match self.next() {
                    Some(Tok::Num(n)) => n.parse::<usize>().ok().filter(|k| (1..=20).contains(k)),
                    _ => None,
                }
                .ok_or_else(|| syntax(self.text, kat, "poly's degree must be a whole number from 1 to 20"))?;
                let base = format!("poly({}, {k})", e.deparse());
                (1..=k)
                    .map(|index| {
                        self.register(
                            format!("{base}{index}"),
                            Derivation::Poly {
                                x: e.clone(),
                                degree: k,
                                index,
                            },
                        )
                    })
                    .collect()
            }
            "offset" => {
                return Err(syntax(
                    self.text,
                    at,
                    "offset() is a term of its own: write `+ offset(x)`, not inside an interaction or a random-effects term",
                ))
            }
            other => {
                return Err(syntax(
                    self.text,
                    at,
                    &format!("unsupported function `{other}()`: formulas may use {SUPPORTED}"),
                ))
            }
        };
        self.expect(Tok::RParen, "`)` closing the function call")?;
        Ok(out)
    }

    /// The name of a derived column, registered once.
    fn register(&mut self, name: String, how: Derivation) -> String {
        if !self.derived.iter().any(|d| d.name == name) {
            self.derived.push(Derived {
                name: name.clone(),
                how,
            });
        }
        name
    }

    /// expr := product (('+'|'-') product)*
    fn expr(&mut self) -> Result<Expr> {
        let mut e = self.product()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Plus) => Op::Add,
                Some(Tok::Minus) => Op::Sub,
                _ => return Ok(e),
            };
            self.next();
            e = Expr::Bin(op, Box::new(e), Box::new(self.product()?));
        }
    }

    /// product := unary (('*'|'/') unary)*
    fn product(&mut self) -> Result<Expr> {
        let mut e = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Star) => Op::Mul,
                Some(Tok::Slash) => Op::Div,
                _ => return Ok(e),
            };
            self.next();
            e = Expr::Bin(op, Box::new(e), Box::new(self.unary()?));
        }
    }

    /// unary := '-' unary | atom ['^' unary]
    fn unary(&mut self) -> Result<Expr> {
        if self.depth >= MAX_DEPTH {
            return Err(syntax(
                self.text,
                self.at(),
                &format!("the expression nests more than {MAX_DEPTH} deep"),
            ));
        }
        self.depth += 1;
        let e = self.unary_inner();
        self.depth -= 1;
        e
    }

    fn unary_inner(&mut self) -> Result<Expr> {
        if self.peek() == Some(&Tok::Minus) {
            self.next();
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        let a = self.atom()?;
        if self.peek() == Some(&Tok::Caret) {
            self.next();
            return Ok(Expr::Bin(Op::Pow, Box::new(a), Box::new(self.unary()?)));
        }
        Ok(a)
    }

    /// atom := number | column | log|exp|sqrt '(' expr ')' | '(' expr ')'
    fn atom(&mut self) -> Result<Expr> {
        let at = self.at();
        match self.next() {
            Some(Tok::Num(n)) => match n.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Expr::Num(v)),
                _ => Err(syntax(
                    self.text,
                    at,
                    &format!("`{n}` is not a finite number"),
                )),
            },
            Some(Tok::LParen) => {
                let e = self.expr()?;
                self.expect(Tok::RParen, "`)`")?;
                Ok(Expr::Paren(Box::new(e)))
            }
            Some(Tok::Name(n)) => {
                if self.peek() != Some(&Tok::LParen) {
                    return Ok(Expr::Col(n));
                }
                let Some(f) = Func::from_name(&n) else {
                    return Err(syntax(
                        self.text,
                        at,
                        &format!("unsupported function `{n}()` in an expression: use log(), exp() or sqrt() (formulas may use {SUPPORTED})"),
                    ));
                };
                self.next();
                let e = self.expr()?;
                self.expect(Tok::RParen, "`)` closing the function call")?;
                Ok(Expr::Call(f, Box::new(e)))
            }
            _ => Err(syntax(
                self.text,
                at,
                "expected a number, a column or `(` in the expression",
            )),
        }
    }

    /// sum := ['-'] summand (('+'|'-') summand)*
    fn sum(&mut self, allow_random: bool) -> Result<Vec<(bool, Summand)>> {
        let mut out = Vec::new();
        let mut sign = true;
        if self.peek() == Some(&Tok::Minus) {
            self.next();
            sign = false;
        }
        loop {
            let s = self.summand(allow_random)?;
            out.push((sign, s));
            match self.peek() {
                Some(Tok::Plus) => {
                    self.next();
                    sign = true;
                }
                Some(Tok::Minus) => {
                    self.next();
                    sign = false;
                }
                _ => break,
            }
        }
        Ok(out)
    }

    fn summand(&mut self, allow_random: bool) -> Result<Summand> {
        let at = self.at();
        match self.peek().cloned() {
            Some(Tok::Num(n)) => {
                self.next();
                match n.as_str() {
                    "0" => Ok(Summand::Intercept(false)),
                    "1" => Ok(Summand::Intercept(true)),
                    _ => Err(syntax(self.text, at, "only 0 or 1 may appear as a number")),
                }
            }
            Some(Tok::LParen) if allow_random => {
                self.next();
                let inner = self.sum(false)?;
                let bar_at = self.at();
                if self.peek() != Some(&Tok::Bar) {
                    return Err(syntax(
                        self.text,
                        bar_at,
                        "expected `|` in a random-effects term",
                    ));
                }
                self.next();
                // `||`: uncorrelated, one term per column.
                let uncorrelated = self.peek() == Some(&Tok::Bar);
                if uncorrelated {
                    self.next();
                }
                let mut groups = vec![vec![self.name()?]];
                loop {
                    match self.peek() {
                        Some(Tok::Colon) => {
                            self.next();
                            let n = self.name()?;
                            groups.last_mut().expect("non-empty").push(n);
                        }
                        Some(Tok::Slash) => {
                            self.next();
                            groups.push(vec![self.name()?]);
                        }
                        _ => break,
                    }
                }
                self.expect(Tok::RParen, "`)` closing the random-effects term")?;
                let mut intercept = true;
                let mut slopes = Vec::new();
                for (sign, s) in inner {
                    match s {
                        Summand::Intercept(i) => intercept = if sign { i } else { !i },
                        Summand::Fixed(ts) => {
                            for t in ts {
                                if t.len() != 1 {
                                    return Err(syntax(
                                        self.text,
                                        at,
                                        "interactions inside a random-effects term are not supported",
                                    ));
                                }
                                if sign {
                                    slopes.push(t[0].clone());
                                } else {
                                    slopes.retain(|x| x != &t[0]);
                                }
                            }
                        }
                        Summand::Random(_) => unreachable!("random terms are not parsed inside"),
                        Summand::Offset(_) => return Err(syntax(
                            self.text,
                            at,
                            "offset() belongs in the fixed part, not inside a random-effects term",
                        )),
                    }
                }
                if !intercept && slopes.is_empty() {
                    return Err(syntax(
                        self.text,
                        at,
                        "a random-effects term with no columns",
                    ));
                }
                // g1/g2/g3 = g1 + g2:g1 + g3:g2:g1 (lme4 names the nested factor inner-first).
                let mut terms = Vec::new();
                let mut acc: Vec<String> = Vec::new();
                for g in groups {
                    let mut name = g.clone();
                    name.extend(acc.iter().cloned());
                    acc = name.clone();
                    if uncorrelated {
                        // (1 + x || g) = (1|g) + (0 + x|g), as lme4 expands it.
                        if intercept {
                            terms.push(RandomTerm {
                                intercept: true,
                                slopes: Vec::new(),
                                group: name.clone(),
                            });
                        }
                        for sl in &slopes {
                            terms.push(RandomTerm {
                                intercept: false,
                                slopes: vec![sl.clone()],
                                group: name.clone(),
                            });
                        }
                    } else {
                        terms.push(RandomTerm {
                            intercept,
                            slopes: slopes.clone(),
                            group: name,
                        });
                    }
                }
                Ok(Summand::Random(terms))
            }
            Some(Tok::LParen) => Err(syntax(
                self.text,
                at,
                "parentheses are only for random-effects terms",
            )),
            Some(Tok::Name(n))
                if n == "offset"
                    && matches!(self.toks.get(self.pos + 1), Some((Tok::LParen, _))) =>
            {
                self.next();
                self.next();
                let e = self.expr()?;
                self.expect(Tok::RParen, "`)` closing offset(")?;
                if matches!(self.peek(), Some(Tok::Colon | Tok::Star)) {
                    return Err(syntax(
                        self.text,
                        self.at(),
                        "offset() is a term of its own: it cannot be in an interaction",
                    ));
                }
                let name =
                    self.register(format!("offset({})", e.deparse()), Derivation::Numeric(e));
                Ok(Summand::Offset(name))
            }
            Some(Tok::Name(_)) => {
                // Each factor's variables (poly gives several).
                let mut factors = vec![self.variable()?];
                let mut star = false;
                loop {
                    match self.peek() {
                        Some(Tok::Colon) => {
                            self.next();
                            factors.push(self.variable()?);
                        }
                        Some(Tok::Star) => {
                            self.next();
                            star = true;
                            factors.push(self.variable()?);
                        }
                        _ => break,
                    }
                }
                // The products of the factors' variables, one from each.
                let product = |fs: &[&Vec<String>]| -> Vec<Vec<String>> {
                    let mut out: Vec<Vec<String>> = vec![Vec::new()];
                    for f in fs {
                        out = out
                            .iter()
                            .flat_map(|t| {
                                f.iter().map(move |v| {
                                    let mut t = t.clone();
                                    t.push(v.clone());
                                    t
                                })
                            })
                            .collect();
                    }
                    out
                };
                if star {
                    // a*b*c = all non-empty subsets, by order.
                    let k = factors.len();
                    let mut terms: Vec<Vec<String>> = Vec::new();
                    for mask in 1u32..(1 << k) {
                        let fs: Vec<&Vec<String>> = (0..k)
                            .filter(|i| mask & (1 << i) != 0)
                            .map(|i| &factors[i])
                            .collect();
                        terms.extend(product(&fs));
                    }
                    terms.sort_by_key(|t| t.len());
                    Ok(Summand::Fixed(terms))
                } else {
                    let fs: Vec<&Vec<String>> = factors.iter().collect();
                    Ok(Summand::Fixed(product(&fs)))
                }
            }
            _ => Err(syntax(self.text, at, "expected a term")),
        }
    }
}

impl Formula {
    /// Parse a formula such as `qpr ~ arm + baseline + site + (1|team)`.
    pub fn parse(text: &str) -> Result<Formula> {
        let toks = lex(text)?;
        let mut p = Parser {
            toks,
            pos: 0,
            text,
            derived: Vec::new(),
            depth: 0,
        };
        let response = p.name().map_err(|_| {
            syntax(
                text,
                0,
                "a formula starts with the response column, e.g. `qpr ~ arm + (1|team)`",
            )
        })?;
        p.expect(Tok::Tilde, "`~` after the response")?;
        let rhs = p.sum(true)?;
        if p.pos < p.toks.len() {
            return Err(syntax(text, p.at(), "unexpected text after the formula"));
        }
        let mut intercept = true;
        let mut fixed: Vec<Vec<String>> = Vec::new();
        let mut random: Vec<RandomTerm> = Vec::new();
        let mut offset: Option<String> = None;
        for (sign, s) in rhs {
            match s {
                Summand::Offset(name) => {
                    if !sign || offset.is_some() {
                        return Err(syntax(
                            text,
                            0,
                            "give one offset(...), added (+): combine several in one, e.g. offset(log(a) + b)",
                        ));
                    }
                    offset = Some(name);
                }
                Summand::Intercept(i) => intercept = if sign { i } else { !i },
                Summand::Fixed(ts) => {
                    for t in ts {
                        let same =
                            |a: &Vec<String>| a.len() == t.len() && t.iter().all(|x| a.contains(x));
                        if sign {
                            if !fixed.iter().any(same) {
                                fixed.push(t);
                            }
                        } else {
                            fixed.retain(|a| !same(a));
                        }
                    }
                }
                Summand::Random(rs) => {
                    if !sign {
                        return Err(syntax(
                            text,
                            0,
                            "a random-effects term cannot be subtracted",
                        ));
                    }
                    for r in rs {
                        if random.contains(&r) {
                            return Err(syntax(
                                text,
                                0,
                                &format!(
                                    "the random-effects term for `{}` is given twice; its variance would be split between two identical terms: keep one",
                                    r.group_name()
                                ),
                            ));
                        }
                        random.push(r);
                    }
                }
            }
        }
        // R orders fixed terms by degree (main effects, then interactions).
        fixed.sort_by_key(|t| t.len());
        Ok(Formula {
            response,
            intercept,
            fixed,
            random,
            derived: p.derived,
            offset,
            contrasts: Contrasts::Treatment,
            text: text.to_string(),
        })
    }

    /// Every variable of the model, by its name in the model (a function's
    /// derived column by its name, e.g. `log(x)`), the offset last.
    pub fn model_variables(&self) -> Vec<String> {
        let mut v = vec![self.response.clone()];
        let mut add = |s: &String| {
            if !v.contains(s) {
                v.push(s.clone());
            }
        };
        for t in &self.fixed {
            t.iter().for_each(&mut add);
        }
        for r in &self.random {
            r.slopes.iter().for_each(&mut add);
            r.group.iter().for_each(&mut add);
        }
        if let Some(o) = &self.offset {
            add(o);
        }
        v
    }

    /// Every data column the formula reads (a function's columns in place
    /// of its derived column).
    pub fn variables(&self) -> Vec<String> {
        let mut out = Vec::new();
        for v in self.model_variables() {
            match self.derived.iter().find(|d| d.name == v) {
                Some(d) => d.columns(&mut out),
                None => {
                    if !out.contains(&v) {
                        out.push(v)
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trial_formulas() {
        let f = Formula::parse("qpr ~ arm + baseline + site + (1|team)").unwrap();
        assert_eq!(f.response, "qpr");
        assert!(f.intercept);
        assert_eq!(f.fixed.len(), 3);
        assert_eq!(f.random[0].group, vec!["team"]);
        let f = Formula::parse("strength ~ 1 + (1|batch/cask)").unwrap();
        assert_eq!(f.random.len(), 2);
        assert_eq!(f.random[1].group_name(), "cask:batch");
        let f = Formula::parse("Reaction ~ Days + (1|Subject) + (0 + Days|Subject)").unwrap();
        assert!(!f.random[1].intercept && f.random[1].slopes == vec!["Days"]);
        let f = Formula::parse("y ~ 0 + a:b + c").unwrap();
        assert!(!f.intercept);
        assert_eq!(
            f.fixed,
            vec![vec!["c".to_string()], vec!["a".into(), "b".into()]]
        );
        let f = Formula::parse("y ~ a*b - 1 + (x|g)").unwrap();
        assert_eq!(f.fixed.len(), 3);
        assert!(!f.intercept);
        assert!(f.random[0].intercept && f.random[0].slopes == vec!["x"]);
        let f = Formula::parse("y ~ x + (1|c:p)").unwrap();
        assert_eq!(f.random[0].group_name(), "c:p");
    }

    #[test]
    fn syntax_errors_have_positions() {
        for (text, pos) in [
            ("qpr ~ arm + (1|team", 20),
            ("qpr ~ arm + + site", 13),
            ("qpr arm", 5),
            ("qpr ~ arm $ site", 11),
        ] {
            let e = Formula::parse(text).unwrap_err().to_string();
            assert!(e.contains(&format!("position {pos}")), "{text}: {e}");
        }
    }
}
