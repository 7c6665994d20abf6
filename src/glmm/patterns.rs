//! Rows grouped into covariate patterns within clusters: the sufficient
//! statistics that both the one-scalar-effect Laplace fit
//! ([`super::scalar`]) and the GEE ([`super::gee`]) work on.
//!
//! Rows of a cluster with the same row of X and the same random-effect
//! covariate z share η, μ and V(μ), so every sum either fit needs is a sum
//! over patterns of the rows' totals: A = Σ a, S = Σ a y, S₂ = Σ a y²,
//! R = Σ √a and T = Σ √a y (a the prior weights, binomial trials). A trial
//! whose covariates are all at the cluster level (arm, site, period) has
//! one pattern per cluster (-period), whatever the number of people.

use super::family::Family;
use crate::lmm::frame::ModelFrame;
use std::cmp::Ordering;

/// The patterns of a frame, clustered by one random-effects term.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    /// Patterns of cluster c: `ptr[c]..ptr[c + 1]`.
    pub(crate) ptr: Vec<usize>,
    /// Rows in each cluster (m, for an exchangeable working correlation).
    pub(crate) rows: Vec<usize>,
    /// Each pattern's row of X (p per pattern) and z.
    pub(crate) x: Vec<f64>,
    pub(crate) z: Vec<f64>,
    /// Each pattern's totals over its rows (see the module notes).
    pub(crate) a: Vec<f64>,
    pub(crate) s: Vec<f64>,
    pub(crate) s2: Vec<f64>,
    pub(crate) r: Vec<f64>,
    pub(crate) t: Vec<f64>,
    /// The −2 log-likelihood's part that the rows add to the patterns'
    /// (binomial coefficients, log y! terms): a constant in (θ, β).
    pub(crate) constant: f64,
    /// The rows, grouped by cluster and pattern.
    order: Vec<usize>,
    start: Vec<usize>,
}

impl Patterns {
    /// Group the rows of `fr` by the clusters of random-effects term
    /// `term` (and its covariate z), with prior weights `weights`, for a
    /// `family` response. Allocates nothing once it has held a frame this
    /// large.
    pub fn group(&mut self, fr: &ModelFrame, term: usize, family: Family, weights: &[f64]) {
        let t = &fr.terms[term];
        let (refs, z) = (&t.refs[..], &t.z[..]);
        let q = t.nlevels();
        self.cluster_order(refs, q);
        for v in [&mut self.x, &mut self.z, &mut self.a, &mut self.s] {
            v.clear();
        }
        for v in [&mut self.s2, &mut self.r, &mut self.t] {
            v.clear();
        }
        self.ptr.clear();
        self.ptr.push(0);
        self.rows.clear();
        self.constant = 0.0;
        // Rows of a pattern are adjacent when each cluster's rows are in
        // the order of (row of X, z): always, when the covariates are at
        // the cluster level. A cluster whose rows are not is sorted first.
        let mut order = std::mem::take(&mut self.order);
        for c in 0..q {
            let (lo, hi) = (self.start[c], self.start[c + 1]);
            if !self.push_cluster(fr, &order[lo..hi], z, family, weights) {
                order[lo..hi].sort_by(|&a, &b| compare(fr, z, a, b));
                let sorted = self.push_cluster(fr, &order[lo..hi], z, family, weights);
                debug_assert!(sorted);
            }
            self.ptr.push(self.a.len());
            self.rows.push(hi - lo);
        }
        self.order = order;
    }

    /// Append the patterns of one cluster's `rows`, which must be in
    /// pattern order (by row of X, then z); false, with nothing appended,
    /// when they are not.
    fn push_cluster(
        &mut self,
        fr: &ModelFrame,
        rows: &[usize],
        z: &[f64],
        family: Family,
        weights: &[f64],
    ) -> bool {
        let (n, p) = (fr.n, fr.p);
        let first = self.a.len();
        let mut constant = 0.0;
        // The current pattern's first row and totals (A, S, S₂, R, T).
        let mut head = usize::MAX;
        let mut tot = [0.0f64; 5];
        for &i in rows {
            if head != usize::MAX {
                match compare(fr, z, head, i) {
                    Ordering::Equal => {}
                    Ordering::Less => {
                        self.push_totals(&tot);
                        head = usize::MAX;
                    }
                    Ordering::Greater => {
                        self.truncate(first, p);
                        return false;
                    }
                }
            }
            if head == usize::MAX {
                head = i;
                tot = [0.0; 5];
                self.x.extend((0..p).map(|j| fr.x[j * n + i]));
                self.z.push(z[i]);
            }
            let (w, y) = (weights[i], fr.y[i]);
            let s = match family {
                // The number of successes, exact.
                Family::Binomial if w != 1.0 => {
                    let s = (w * y).round();
                    constant -= 2.0 * super::family::ln_choose(w, s);
                    s
                }
                Family::Binomial => y,
                Family::Poisson => {
                    constant += 2.0 * super::family::ln_gamma(y + 1.0);
                    w * y
                }
            };
            let rw = if w == 1.0 { 1.0 } else { w.sqrt() };
            tot[0] += w;
            tot[1] += s;
            tot[2] += w * y * y;
            tot[3] += rw;
            tot[4] += rw * y;
        }
        if head != usize::MAX {
            self.push_totals(&tot);
        }
        self.constant += constant;
        true
    }

    fn push_totals(&mut self, tot: &[f64; 5]) {
        self.a.push(tot[0]);
        self.s.push(tot[1]);
        self.s2.push(tot[2]);
        self.r.push(tot[3]);
        self.t.push(tot[4]);
    }

    /// Drop the patterns from `k` on (p coefficients each).
    fn truncate(&mut self, k: usize, p: usize) {
        self.x.truncate(k * p);
        for v in [&mut self.z, &mut self.a, &mut self.s, &mut self.s2] {
            v.truncate(k);
        }
        self.r.truncate(k);
        self.t.truncate(k);
    }

    /// `order` and `start`: the rows by cluster (a counting sort; the
    /// identity when they are in cluster order already, as simulated).
    fn cluster_order(&mut self, refs: &[u32], q: usize) {
        let n = refs.len();
        self.start.clear();
        self.start.resize(q + 1, 0);
        for &r in refs {
            self.start[r as usize + 1] += 1;
        }
        for c in 0..q {
            self.start[c + 1] += self.start[c];
        }
        self.order.clear();
        if refs.windows(2).all(|w| w[0] <= w[1]) {
            self.order.extend(0..n);
            return;
        }
        self.order.resize(n, 0);
        let mut next = std::mem::take(&mut self.ptr);
        next.clear();
        next.extend_from_slice(&self.start[..q]);
        for (i, &r) in refs.iter().enumerate() {
            self.order[next[r as usize]] = i;
            next[r as usize] += 1;
        }
        self.ptr = next;
    }

    /// The number of patterns.
    pub fn len(&self) -> usize {
        self.a.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    /// The number of clusters.
    pub fn clusters(&self) -> usize {
        self.rows.len()
    }

    /// The rows, grouped by cluster and then by pattern.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

/// Rows `a` and `b` by their row of X, then by z (values that compare
/// equal, such as 0 and −0, are equal: they give the same η).
#[inline]
fn compare(fr: &ModelFrame, z: &[f64], a: usize, b: usize) -> Ordering {
    let n = fr.n;
    for j in 0..fr.p {
        let (u, v) = (fr.x[j * n + a], fr.x[j * n + b]);
        if u != v {
            return u.total_cmp(&v);
        }
    }
    if z[a] != z[b] {
        return z[a].total_cmp(&z[b]);
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lmm::data::DataFrame;
    use crate::lmm::formula::Formula;

    fn patterns(csv: &str, formula: &str, family: Family) -> (Patterns, usize) {
        let data = DataFrame::from_reader(csv.as_bytes()).expect("csv");
        let fr = ModelFrame::new(&Formula::parse(formula).unwrap(), &data).unwrap();
        let mut pt = Patterns::default();
        pt.group(&fr, 0, family, &vec![1.0; fr.n]);
        assert_eq!(pt.order().len(), fr.n);
        (pt, fr.n)
    }

    /// Rows in any order give the same patterns as rows grouped by cluster
    /// and covariates (the counting sort by cluster, then each cluster's
    /// sort), with totals that count every row once: on the vendored
    /// binary trial, with a within-cluster covariate, its rows reversed
    /// (rows with an NA response drop out of the frame in both orders; the
    /// fixture itself must exist).
    #[test]
    fn row_order_does_not_change_the_patterns() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/glmm/data/crt_binary_parallel.csv"
        );
        let text = std::fs::read_to_string(path).expect("vendored fixture");
        let mut lines: Vec<&str> = text.lines().collect();
        let header = lines.remove(0);
        let mut reversed = String::from(header);
        for l in lines.iter().rev() {
            reversed.push('\n');
            reversed.push_str(l);
        }
        for (formula, family) in [
            (
                "recovered ~ arm + baseline_high + (1|team)",
                Family::Binomial,
            ),
            ("contacts ~ arm + baseline_high + (1|team)", Family::Poisson),
        ] {
            let (a, n) = patterns(&text, formula, family);
            let (b, _) = patterns(&reversed, formula, family);
            assert_eq!((&a.ptr, &a.rows, &a.x, &a.z), (&b.ptr, &b.rows, &b.x, &b.z));
            assert_eq!(
                (&a.a, &a.s, &a.s2, &a.r, &a.t),
                (&b.a, &b.s, &b.s2, &b.r, &b.t)
            );
            assert!((a.constant - b.constant).abs() <= 1e-9 * a.constant.abs().max(1.0));
            // Two patterns (baseline_high 0 and 1) in most clusters, and
            // every complete row counted once.
            assert!(a.len() > a.clusters() && a.len() <= 2 * a.clusters());
            assert_eq!(a.a.iter().sum::<f64>() as usize, n);
            assert_eq!(a.rows.iter().sum::<usize>(), n);
        }
    }
}
