//! Small dense row-major matrices that keep their storage between uses: the
//! inference algebra of a power loop runs once per replicate on matrices of
//! the same few shapes, so after the first replicate nothing is allocated.
//! (nalgebra's `DMatrix` expressions allocate a new matrix per operation.)

use std::ops::{Index, IndexMut};

/// A row-major matrix whose buffer is reused by [`Mat::reset`].
#[derive(Debug, Clone, Default)]
pub struct Mat {
    r: usize,
    c: usize,
    d: Vec<f64>,
}

impl Mat {
    /// An r × c matrix of zeros.
    pub fn zeros(r: usize, c: usize) -> Mat {
        Mat {
            r,
            c,
            d: vec![0.0; r * c],
        }
    }

    /// A column vector (n × 1).
    pub fn from_column(v: &[f64]) -> Mat {
        Mat {
            r: v.len(),
            c: 1,
            d: v.to_vec(),
        }
    }

    /// Make this an r × c matrix of zeros (allocates only to grow).
    pub fn reset(&mut self, r: usize, c: usize) {
        self.r = r;
        self.c = c;
        self.d.clear();
        self.d.resize(r * c, 0.0);
    }

    pub fn nrows(&self) -> usize {
        self.r
    }

    pub fn ncols(&self) -> usize {
        self.c
    }

    /// The values, row-major.
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        &mut self.d
    }

    pub fn as_slice(&self) -> &[f64] {
        &self.d
    }

    /// Row i.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.d[i * self.c..(i + 1) * self.c]
    }

    /// Copy `a` into self.
    pub fn assign(&mut self, a: &Mat) {
        self.r = a.r;
        self.c = a.c;
        self.d.clear();
        self.d.extend_from_slice(&a.d);
    }

    /// Copy the leading r × c block of `a` into self.
    pub fn assign_block(&mut self, a: &Mat, r: usize, c: usize) {
        self.reset(r, c);
        for i in 0..r {
            self.d[i * c..(i + 1) * c].copy_from_slice(&a.row(i)[..c]);
        }
    }

    /// self = a · b.
    pub fn set_mul(&mut self, a: &Mat, b: &Mat) {
        debug_assert_eq!(a.c, b.r);
        self.reset(a.r, b.c);
        let m = b.c;
        for i in 0..a.r {
            let out = &mut self.d[i * m..(i + 1) * m];
            for (t, &x) in a.row(i).iter().enumerate() {
                if x != 0.0 {
                    for (o, &y) in out.iter_mut().zip(b.row(t)) {
                        *o += x * y;
                    }
                }
            }
        }
    }

    /// self = a' · b.
    pub fn set_tmul(&mut self, a: &Mat, b: &Mat) {
        debug_assert_eq!(a.r, b.r);
        self.reset(a.c, b.c);
        let m = b.c;
        for t in 0..a.r {
            let brow = b.row(t);
            for (i, &x) in a.row(t).iter().enumerate() {
                if x != 0.0 {
                    let out = &mut self.d[i * m..(i + 1) * m];
                    for (o, &y) in out.iter_mut().zip(brow) {
                        *o += x * y;
                    }
                }
            }
        }
    }

    /// self = a · b · c, with `tmp` for a · b.
    pub fn set_mul3(&mut self, a: &Mat, b: &Mat, c: &Mat, tmp: &mut Mat) {
        tmp.set_mul(a, b);
        self.set_mul(tmp, c);
    }

    /// self += s · a.
    pub fn add_scaled(&mut self, a: &Mat, s: f64) {
        debug_assert_eq!((self.r, self.c), (a.r, a.c));
        for (x, &y) in self.d.iter_mut().zip(&a.d) {
            *x += s * y;
        }
    }

    /// self *= s.
    pub fn scale(&mut self, s: f64) {
        self.d.iter_mut().for_each(|x| *x *= s);
    }

    /// Sum of the diagonal.
    pub fn trace(&self) -> f64 {
        (0..self.r.min(self.c)).map(|i| self[(i, i)]).sum()
    }

    /// Σ_ij a_ij b_ij.
    pub fn dot(a: &Mat, b: &Mat) -> f64 {
        a.d.iter().zip(&b.d).map(|(x, y)| x * y).sum()
    }

    /// Σ_ij a_ij b_ji = tr(a b).
    pub fn dot_t(a: &Mat, b: &Mat) -> f64 {
        let mut s = 0.0;
        for i in 0..a.r {
            for j in 0..a.c {
                s += a[(i, j)] * b[(j, i)];
            }
        }
        s
    }

    /// tr(a b c d) for square matrices of one size, with two scratch matrices.
    pub fn trace4(a: &Mat, b: &Mat, c: &Mat, d: &Mat, t1: &mut Mat, t2: &mut Mat) -> f64 {
        t1.set_mul(a, b);
        t2.set_mul(c, d);
        Mat::dot_t(t1, t2)
    }

    /// Symmetrise in place: (A + A')/2.
    pub fn symmetrise(&mut self) {
        for i in 0..self.r {
            for j in 0..i {
                let v = 0.5 * (self[(i, j)] + self[(j, i)]);
                self[(i, j)] = v;
                self[(j, i)] = v;
            }
        }
    }

    /// Inverse of a symmetric positive-definite matrix into `out` (with
    /// `scratch`); false when it is not positive definite.
    pub fn inverse_spd_into(&self, out: &mut Mat, scratch: &mut Mat) -> bool {
        let n = self.r;
        scratch.assign(self);
        if !crate::lmm::pls::dense_cholesky_lower(&mut scratch.d, n) {
            return false;
        }
        out.reset(n, n);
        let l = &scratch.d;
        // Solve L L' X = I column by column, in the column of `out`.
        for col in 0..n {
            for i in 0..n {
                let mut v = f64::from(u8::from(i == col));
                for t in 0..i {
                    v -= l[i * n + t] * out.d[t * n + col];
                }
                out.d[i * n + col] = v / l[i * n + i];
            }
            for i in (0..n).rev() {
                let mut v = out.d[i * n + col];
                for t in i + 1..n {
                    v -= l[t * n + i] * out.d[t * n + col];
                }
                out.d[i * n + col] = v / l[i * n + i];
            }
        }
        true
    }
}

impl Index<(usize, usize)> for Mat {
    type Output = f64;
    #[inline]
    fn index(&self, (i, j): (usize, usize)) -> &f64 {
        &self.d[i * self.c + j]
    }
}

impl IndexMut<(usize, usize)> for Mat {
    #[inline]
    fn index_mut(&mut self, (i, j): (usize, usize)) -> &mut f64 {
        &mut self.d[i * self.c + j]
    }
}

/// Eigen-decomposition of a small symmetric matrix by cyclic Jacobi
/// rotations (accurate to rounding for the few-parameter matrices of the
/// df computations): eigenvalues into `vals`, eigenvectors as the columns
/// of `vecs`; `a` is overwritten.
pub fn sym_eigen(a: &mut Mat, vals: &mut Vec<f64>, vecs: &mut Mat) {
    let n = a.r;
    vecs.reset(n, n);
    for i in 0..n {
        vecs[(i, i)] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..i).map(move |j| (i, j)))
            .map(|(i, j)| a[(i, j)] * a[(i, j)])
            .sum();
        let diag: f64 = (0..n).map(|i| a[(i, i)] * a[(i, i)]).sum();
        if off <= f64::EPSILON * f64::EPSILON * diag || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[(p, q)];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[(q, q)] - a[(p, p)]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[(k, p)], a[(k, q)]);
                    a[(k, p)] = c * akp - s * akq;
                    a[(k, q)] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[(p, k)], a[(q, k)]);
                    a[(p, k)] = c * apk - s * aqk;
                    a[(q, k)] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (vecs[(k, p)], vecs[(k, q)]);
                    vecs[(k, p)] = c * vkp - s * vkq;
                    vecs[(k, q)] = s * vkp + c * vkq;
                }
            }
        }
    }
    vals.clear();
    vals.extend((0..n).map(|i| a[(i, i)]));
}

/// Σ_i f(λ_i) v_i v_i' over the eigenpairs with `keep(λ_i)`, into `out`.
pub fn spectral_sum(
    vals: &[f64],
    vecs: &Mat,
    out: &mut Mat,
    keep: impl Fn(f64) -> bool,
    f: impl Fn(f64) -> f64,
) -> usize {
    let n = vals.len();
    out.reset(n, n);
    let mut kept = 0;
    for (k, &ev) in vals.iter().enumerate() {
        if !keep(ev) {
            continue;
        }
        kept += 1;
        let w = f(ev);
        for i in 0..n {
            let vi = vecs[(i, k)] * w;
            for j in 0..n {
                out[(i, j)] += vi * vecs[(j, k)];
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_matches_a_known_spectrum() {
        // [[2,1,0],[1,2,1],[0,1,2]]: eigenvalues 2 − √2, 2, 2 + √2.
        let mut a = Mat::zeros(3, 3);
        for (i, j, v) in [
            (0, 0, 2.0),
            (1, 1, 2.0),
            (2, 2, 2.0),
            (0, 1, 1.0),
            (1, 2, 1.0),
        ] {
            a[(i, j)] = v;
            a[(j, i)] = v;
        }
        let orig = a.clone();
        let (mut vals, mut vecs) = (Vec::new(), Mat::default());
        sym_eigen(&mut a, &mut vals, &mut vecs);
        let mut s = vals.clone();
        s.sort_by(f64::total_cmp);
        let r2 = 2f64.sqrt();
        for (x, y) in s.iter().zip([2.0 - r2, 2.0, 2.0 + r2]) {
            assert!((x - y).abs() < 1e-14, "{x} vs {y}");
        }
        // V diag(λ) V' reproduces the matrix.
        let mut back = Mat::default();
        spectral_sum(&vals, &vecs, &mut back, |_| true, |l| l);
        for i in 0..3 {
            for j in 0..3 {
                assert!((back[(i, j)] - orig[(i, j)]).abs() < 1e-14);
            }
        }
        // And the inverse through the spectrum equals the Cholesky inverse.
        let mut inv = Mat::default();
        spectral_sum(&vals, &vecs, &mut inv, |_| true, |l| 1.0 / l);
        let (mut inv2, mut scratch) = (Mat::default(), Mat::default());
        assert!(orig.inverse_spd_into(&mut inv2, &mut scratch));
        for i in 0..3 {
            for j in 0..3 {
                assert!((inv[(i, j)] - inv2[(i, j)]).abs() < 1e-14);
            }
        }
        // [[0.75,-0.5,0.25],...] is the exact inverse.
        assert!((inv2[(0, 0)] - 0.75).abs() < 1e-15 && (inv2[(0, 1)] + 0.5).abs() < 1e-15);
    }
}
