//! The penalised least-squares (PLS) system and the profiled deviance in θ
//! (Bates, Mächler, Bolker & Walker 2015, JSS 67(1), section 3).
//!
//! With relative covariance factor Λ_θ (block diagonal: one lower-triangular
//! k×k block T_t per level of term t) the sparse Cholesky factor L_θ satisfies
//! `L L' = Λ'Z'ZΛ + I`. The fixed effects and response are handled as an
//! augmented dense block: with `[R_ZX c_u] = L⁻¹ Λ'Z'[X y]`,
//! `M = [X y]'[X y] − [R_ZX c_u]'[R_ZX c_u] = L_M L_M'`, the last diagonal
//! element of L_M squared is the penalised residual sum of squares r²_θ and
//! the leading p×p block is R_X'. Then
//!
//! * ML deviance: `log|L|² + n (1 + log(2π r²/n))`
//! * REML criterion: `log|L|² + log|R_X|² + (n−p)(1 + log(2π r²/(n−p)))`
//!
//! Structure that never changes across θ or across a new response (the
//! sparsity pattern of L, the elimination order, the recipes mapping θ to the
//! entries of Λ'Z'ZΛ) is computed once in [`Pls::new`]. The random-effects
//! columns are ordered term by term in lme4's order (decreasing number of
//! levels), which gives no fill-in for nested factors: a single factor costs
//! O(levels) per θ, nested team/staff factors O(staff).

use super::frame::ModelFrame;

/// Where θ's entries sit: term `t` has k(k+1)/2 entries, the lower triangle
/// of T_t column by column (lme4's order); see [`tri`].
/// The PLS structure and workspace for one model.
#[derive(Debug, Clone, Default)]
pub struct Pls {
    /// Rows.
    pub n: usize,
    /// Fixed-effect columns.
    pub p: usize,
    /// Random-effect columns.
    pub q: usize,
    /// Per term: (q offset, θ offset, k, levels).
    pub term_layout: Vec<(usize, usize, usize, usize)>,
    /// Length of θ.
    pub ntheta: usize,
    /// Lower bounds of θ (0 on diagonals of T, −∞ below).
    pub lower: Vec<f64>,
    // Z'Z (lower, CSC) in the pattern of C.
    c_colptr: Vec<usize>,
    c_rowind: Vec<usize>,
    ztz: Vec<f64>,
    c_val: Vec<f64>,
    // Recipe for C = Λ'Z'ZΛ + I: for entry e, items rec_ptr[e]..rec_ptr[e+1]
    // of (ztz position, θ index, θ index).
    rec_ptr: Vec<usize>,
    rec: Vec<(u32, u32, u32)>,
    // Recipe for Λ'B: for row r, items lam_ptr[r]..lam_ptr[r+1] of (row of B, θ index).
    lam_ptr: Vec<usize>,
    lam: Vec<(u32, u32)>,
    // L (lower, CSC, diagonal first in each column).
    l_colptr: Vec<usize>,
    l_rowind: Vec<usize>,
    /// Values of L after the last evaluation.
    pub l_val: Vec<f64>,
    // For column j: (k, position of L[j,k] in column k) for all k < j with L[j,k] ≠ 0
    // (columns before `dense_from` only).
    row_ptr: Vec<usize>,
    row_ent: Vec<(usize, usize)>,
    /// The first column of the dense trailing block (q when there is none):
    /// crossed factors fill in the columns left after the largest factor is
    /// eliminated, so these are stored whole in L's pattern and factored as
    /// one dense matrix (see [`Pls::factor`]).
    pub dense_from: usize,
    /// For each column k < `dense_from`: the position in L's column k where
    /// its rows in the dense block begin.
    split: Vec<usize>,
    /// The dense block's Schur complement, then its factor (column-major).
    dense: Vec<f64>,
    /// faer's scratch for factoring it (kept: allocating it per θ costs
    /// page faults).
    dense_scratch: Vec<std::mem::MaybeUninit<u8>>,
    /// Z'[X y]: q × (p+1), row-major.
    pub ztxy: Vec<f64>,
    /// [X y]'[X y]: (p+1) × (p+1), row-major.
    pub xyxy: Vec<f64>,
    /// When L is diagonal (scalar terms whose columns never meet, e.g. one
    /// random intercept): per column, Z'Z's diagonal and its θ index.
    diag: Option<Vec<(f64, u32)>>,
    /// Connected components of the random-effect columns (see
    /// [`Pls::components`]), found once per structure.
    comp_ptr: Vec<usize>,
    comp_cols: Vec<usize>,
    /// Scratch for [`Pls::refresh_structure`].
    runs: RunScratch,
    touched: Vec<bool>,
    // Workspaces.
    work: Vec<f64>,
    /// L⁻¹Λ'Z'[X y] after the last evaluation (q × (p+1), row-major).
    pub rzx: Vec<f64>,
    /// Lower Cholesky factor of M, (p+1) × (p+1) row-major, after the last evaluation.
    pub lm: Vec<f64>,
    /// log|L|² after the last evaluation.
    pub ldl2: f64,
    /// log|R_X|² after the last evaluation.
    pub ldrx2: f64,
    /// Penalised residual sum of squares after the last evaluation.
    pub pwrss: f64,
}

impl Pls {
    /// Analyse the structure of a model frame (once per design).
    pub fn new(mf: &ModelFrame) -> Pls {
        Self::build(mf, DENSE_MIN)
    }

    /// [`Pls::new`] with a dense trailing block only when it would have at
    /// least `dense_min` columns (`usize::MAX`: never, all sparse).
    pub(crate) fn build(mf: &ModelFrame, dense_min: usize) -> Pls {
        if mf.terms.len() == 1 && mf.terms[0].k == 1 {
            return Self::single_scalar(mf);
        }
        let n = mf.n;
        let p = mf.p;
        let mut term_layout = Vec::new();
        let (mut qoff, mut toff) = (0usize, 0usize);
        let mut lower = Vec::new();
        for t in &mf.terms {
            term_layout.push((qoff, toff, t.k, t.nlevels()));
            for a in 0..t.k {
                for c in a..t.k {
                    lower.push(if c == a { 0.0 } else { f64::NEG_INFINITY });
                }
            }
            qoff += t.k * t.nlevels();
            toff += t.k * (t.k + 1) / 2;
        }
        let q = qoff;
        let ntheta = toff;

        // Z'Z lower triangle, assembled as in a sparse-matrix compress: the
        // summed products of each run of rows go into per-column buckets (a
        // counting sort by column), then duplicates within a column are
        // summed through a dense marker array. No hashing; O(n·(Σk)² + q).
        let mut trip: Vec<(u32, u32, f64)> = Vec::new();
        ztz_runs(
            mf,
            &term_layout,
            None,
            &mut RunScratch::default(),
            |r, s, v| {
                trip.push((r as u32, s as u32, v));
            },
        );
        let mut bucket = vec![0usize; q + 1];
        for &(_, s, _) in &trip {
            bucket[s as usize + 1] += 1;
        }
        for s in 0..q {
            bucket[s + 1] += bucket[s];
        }
        let mut fill = bucket.clone();
        let mut by_col: Vec<(u32, f64)> = vec![(0, 0.0); trip.len()];
        for &(r, s, v) in &trip {
            by_col[fill[s as usize]] = (r, v);
            fill[s as usize] += 1;
        }
        drop(trip);
        let mut c_colptr = Vec::with_capacity(q + 1);
        c_colptr.push(0usize);
        let mut c_rowind: Vec<usize> = Vec::new();
        let mut ztz: Vec<f64> = Vec::new();
        let mut slot = vec![usize::MAX; q];
        for s in 0..q {
            let start = c_rowind.len();
            for &(r, v) in &by_col[bucket[s]..bucket[s + 1]] {
                let r = r as usize;
                // slot[r] points into this column only if r was seen in it.
                if slot[r] != usize::MAX && slot[r] >= start {
                    ztz[slot[r]] += v;
                } else {
                    slot[r] = c_rowind.len();
                    c_rowind.push(r);
                    ztz.push(v);
                }
            }
            // Sort the column's rows (usually already in order).
            if !c_rowind[start..].is_sorted() {
                let mut col: Vec<(usize, f64)> = c_rowind[start..]
                    .iter()
                    .copied()
                    .zip(ztz[start..].iter().copied())
                    .collect();
                col.sort_unstable_by_key(|e| e.0);
                for (o, (r, v)) in col.into_iter().enumerate() {
                    c_rowind[start + o] = r;
                    ztz[start + o] = v;
                }
            }
            c_colptr.push(c_rowind.len());
        }
        drop(by_col);
        let (c_colptr_ref, c_rowind_ref) = (&c_colptr, &c_rowind);
        // Position of entry (r, s), r ≥ s, in C's pattern (binary search in column s).
        let pos_of = |r: usize, s: usize| -> Option<usize> {
            let (e0, e1) = (c_colptr_ref[s], c_colptr_ref[s + 1]);
            c_rowind_ref[e0..e1].binary_search(&r).ok().map(|k| e0 + k)
        };

        // Which term / level / component each q index is.
        let mut owner: Vec<(usize, usize, usize)> = Vec::with_capacity(q);
        for (t, &(_, _, k, nl)) in term_layout.iter().enumerate() {
            for g in 0..nl {
                for a in 0..k {
                    owner.push((t, g, a));
                }
            }
        }
        let qidx = |t: usize, g: usize, a: usize| term_layout[t].0 + g * term_layout[t].2 + a;
        let th = |t: usize, c: usize, a: usize| {
            let (_, to, k, _) = term_layout[t];
            (to + tri(k, c, a)) as u32
        };

        // Recipe for C entries.
        let mut rec_ptr = vec![0usize];
        let mut rec = Vec::new();
        for s in 0..q {
            for e in c_colptr[s]..c_colptr[s + 1] {
                let r = c_rowind[e];
                let (ti, g, a) = owner[r];
                let (tj, h, b) = owner[s];
                for c in a..term_layout[ti].2 {
                    for d in b..term_layout[tj].2 {
                        let rr = qidx(ti, g, c);
                        let ss = qidx(tj, h, d);
                        let (kr, ks) = if rr >= ss { (rr, ss) } else { (ss, rr) };
                        if let Some(pos) = pos_of(kr, ks) {
                            rec.push((pos as u32, th(ti, c, a), th(tj, d, b)));
                        }
                    }
                }
                rec_ptr.push(rec.len());
            }
        }
        // Recipe for Λ'B.
        let mut lam_ptr = vec![0usize];
        let mut lam = Vec::new();
        for &(t, g, a) in owner.iter() {
            for c in a..term_layout[t].2 {
                lam.push((qidx(t, g, c) as u32, th(t, c, a)));
            }
            lam_ptr.push(lam.len());
        }

        // Symbolic Cholesky: pattern of each column of L.
        let mut pattern: Vec<Vec<usize>> = Vec::with_capacity(q);
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); q];
        let mut mark = vec![usize::MAX; q];
        for j in 0..q {
            let mut pat = vec![j];
            mark[j] = j;
            for e in c_colptr[j]..c_colptr[j + 1] {
                let r = c_rowind[e];
                if mark[r] != j {
                    mark[r] = j;
                    pat.push(r);
                }
            }
            for &ch in &children[j] {
                let pc: &Vec<usize> = &pattern[ch];
                for &r in pc.iter() {
                    if r > j && mark[r] != j {
                        mark[r] = j;
                        pat.push(r);
                    }
                }
            }
            pat[1..].sort_unstable();
            if pat.len() > 1 {
                let parent = pat[1];
                children[parent].push(j);
            }
            pattern.push(pat);
        }
        // The trailing block, if one fills in: the first column from which
        // L is at least half full, when that leaves at least dense_min
        // columns. Nested factors never qualify (their L has no fill).
        let dense_from = dense_start(&pattern, dense_min);
        for (j, pat) in pattern.iter_mut().enumerate().skip(dense_from) {
            pat.clear();
            pat.extend(j..q);
        }
        let mut l_colptr = vec![0usize];
        let mut l_rowind = Vec::new();
        for pat in &pattern {
            l_rowind.extend_from_slice(pat);
            l_colptr.push(l_rowind.len());
        }
        let mut rows: Vec<Vec<(usize, usize)>> = vec![Vec::new(); q];
        let mut split = Vec::with_capacity(dense_from);
        for k in 0..dense_from {
            let (p0, p1) = (l_colptr[k] + 1, l_colptr[k + 1]);
            split.push(p0 + l_rowind[p0..p1].partition_point(|&r| r < dense_from));
            for pos in p0..p1 {
                if l_rowind[pos] < dense_from {
                    rows[l_rowind[pos]].push((k, pos));
                }
            }
        }
        let mut row_ptr = vec![0usize];
        let mut row_ent = Vec::new();
        for r in rows {
            row_ent.extend(r);
            row_ptr.push(row_ent.len());
        }
        let nnz_l = l_rowind.len();
        let nc = c_rowind.len();
        let diag_only = nnz_l == q
            && nc == q
            && (0..nc).all(|e| {
                rec_ptr[e + 1] - rec_ptr[e] == 1 && rec[rec_ptr[e]].1 == rec[rec_ptr[e]].2
            })
            && (0..q).all(|r| lam_ptr[r + 1] - lam_ptr[r] == 1 && lam[lam_ptr[r]].0 as usize == r);
        let diag = diag_only.then(|| (0..q).map(|e| (ztz[e], rec[rec_ptr[e]].1)).collect());
        let mut pls = Pls {
            n,
            p,
            q,
            term_layout,
            ntheta,
            lower,
            c_colptr,
            c_rowind,
            ztz,
            rec_ptr,
            rec,
            lam_ptr,
            lam,
            l_colptr,
            l_rowind,
            row_ptr,
            row_ent,
            dense_from,
            split,
            diag,
            ..Pls::default()
        };
        pls.finish(mf);
        pls
    }

    /// One scalar random term (e.g. `(1|team)`): everything is diagonal, so
    /// the structure is written down directly, without the general analysis.
    fn single_scalar(mf: &ModelFrame) -> Pls {
        let mut pls = Pls {
            p: mf.p,
            term_layout: vec![(0, 0, 1, 0)],
            ntheta: 1,
            lower: vec![0.0],
            diag: Some(Vec::new()),
            ..Pls::default()
        };
        let installed = pls.refresh_single_scalar(mf);
        debug_assert!(installed);
        pls
    }

    /// Size the numeric workspace for the structure, then install the
    /// model's X and y products.
    fn finish(&mut self, mf: &ModelFrame) {
        self.size_workspace();
        (self.comp_ptr, self.comp_cols) = self.find_components();
        self.set_design(mf);
    }

    fn size_workspace(&mut self) {
        let (q, m) = (self.q, self.p + 1);
        for (v, len) in [
            (&mut self.c_val, self.c_rowind.len()),
            (&mut self.l_val, self.l_rowind.len()),
            (&mut self.ztxy, q * m),
            (&mut self.xyxy, m * m),
            (&mut self.work, q),
            (&mut self.rzx, q * m),
            (&mut self.lm, m * m),
            (&mut self.dense, (q - self.dense_from.min(q)).pow(2)),
        ] {
            v.clear();
            v.resize(len, 0.0);
        }
    }

    /// For one random intercept and the same fixed-effect columns: write
    /// down the diagonal structure for the frame's levels (in place, reusing
    /// storage) and install its rows, exactly as `Pls::new` would. Builds
    /// [`Pls::single_scalar`] too. False (nothing changed) for any other
    /// structure.
    pub fn refresh_single_scalar(&mut self, mf: &ModelFrame) -> bool {
        if !self.refresh_single_scalar_structure(mf) {
            return false;
        }
        self.set_design(mf);
        true
    }

    /// [`Pls::refresh_single_scalar`] without installing the rows' X and y
    /// ([`Pls::set_design`]): the structure alone, for a GLMM.
    pub fn refresh_single_scalar_structure(&mut self, mf: &ModelFrame) -> bool {
        let single = mf.terms.len() == 1 && mf.terms[0].k == 1;
        if !single || self.term_layout.len() != 1 || mf.p != self.p || self.diag.is_none() {
            return false;
        }
        let t = &mf.terms[0];
        let q = t.nlevels();
        self.n = mf.n;
        self.q = q;
        // A diagonal L has no dense trailing block (without this the
        // workspace held a q × q one: 3.2 GB at 20,000 levels).
        self.dense_from = q;
        self.term_layout[0] = (0, 0, 1, q);
        self.ztz.clear();
        self.ztz.resize(q, 0.0);
        for i in 0..mf.n {
            self.ztz[t.refs[i] as usize] += t.z[i] * t.z[i];
        }
        if q != self.c_rowind.len() {
            // The diagonal structure for q levels.
            for v in [
                &mut self.c_colptr,
                &mut self.rec_ptr,
                &mut self.lam_ptr,
                &mut self.l_colptr,
                &mut self.comp_ptr,
            ] {
                v.clear();
                v.extend(0..=q);
            }
            for v in [&mut self.c_rowind, &mut self.l_rowind, &mut self.comp_cols] {
                v.clear();
                v.extend(0..q);
            }
            self.rec.clear();
            self.rec.extend((0..q as u32).map(|g| (g, 0, 0)));
            self.lam.clear();
            self.lam.extend((0..q as u32).map(|g| (g, 0)));
            self.row_ptr.clear();
            self.row_ptr.resize(q + 1, 0);
        }
        if let Some(d) = &mut self.diag {
            d.clear();
            d.extend(self.ztz.iter().map(|&v| (v, 0u32)));
        }
        self.size_workspace();
        true
    }

    /// New rows with the same random-effect structure (terms, levels and
    /// the pattern of Z'Z): recompute Z'Z's values in place, as `Pls::new`
    /// would sum them, and size the workspace, without installing the rows'
    /// X and y ([`Pls::set_design`] does). False (the structure must be
    /// rebuilt) when the terms differ or the pattern gains or loses an
    /// entry.
    pub fn refresh_structure(&mut self, mf: &ModelFrame) -> bool {
        if !self.refresh_ztz(mf, None) {
            return false;
        }
        self.n = mf.n;
        self.size_workspace();
        true
    }

    /// Z'Z (or Z'WZ with `weights`) into the existing pattern, summed as
    /// `Pls::new` sums it; false when the terms or the pattern differ.
    fn refresh_ztz(&mut self, mf: &ModelFrame, weights: Option<&[f64]>) -> bool {
        if mf.p != self.p
            || mf.terms.len() != self.term_layout.len()
            || mf
                .terms
                .iter()
                .zip(&self.term_layout)
                .any(|(t, &(_, _, k, nl))| t.k != k || t.nlevels() != nl)
        {
            return false;
        }
        let mut scratch = std::mem::take(&mut self.runs);
        self.touched.clear();
        self.touched.resize(self.ztz.len(), false);
        let mut ok = true;
        let (colptr, rowind) = (&self.c_colptr, &self.c_rowind);
        let (ztz, touched) = (&mut self.ztz, &mut self.touched);
        ztz_runs(mf, &self.term_layout, weights, &mut scratch, |r, s, v| {
            let (e0, e1) = (colptr[s], colptr[s + 1]);
            match rowind[e0..e1].binary_search(&r) {
                Ok(k) if ok => {
                    let pos = e0 + k;
                    if touched[pos] {
                        ztz[pos] += v;
                    } else {
                        ztz[pos] = v;
                        touched[pos] = true;
                    }
                }
                _ => ok = false,
            }
        });
        self.runs = scratch;
        if !ok || self.touched.contains(&false) {
            return false;
        }
        if let Some(d) = &mut self.diag {
            for (e, entry) in d.iter_mut().enumerate() {
                entry.0 = self.ztz[e];
            }
        }
        true
    }

    /// The weighted system of a GLMM's PIRLS step: Z'WZ, Z'W[X r] and
    /// [X r]'W[X r] for positive weights `w` and working response `r` (the
    /// frame's rows and structure). `scratch` holds n values. False when the
    /// structure does not match (a bug, not data).
    pub fn set_weighted(
        &mut self,
        mf: &ModelFrame,
        w: &[f64],
        r: &[f64],
        scratch: &mut Vec<f64>,
    ) -> bool {
        if !self.refresh_ztz(mf, Some(w)) {
            return false;
        }
        let (n, p, m) = (self.n, self.p, self.p + 1);
        self.ztxy.iter_mut().for_each(|v| *v = 0.0);
        for j in 0..m {
            let col = if j < p { &mf.x[j * n..(j + 1) * n] } else { r };
            scratch.clear();
            scratch.extend(col.iter().zip(w).map(|(x, w)| x * w));
            for (t, term) in mf.terms.iter().enumerate() {
                let (qo, _, k, _) = self.term_layout[t];
                accumulate(&mut self.ztxy, m, j, qo, k, &term.refs, &term.z, scratch);
            }
            for a in 0..=j {
                let ca = if a < p { &mf.x[a * n..(a + 1) * n] } else { r };
                let v = super::frame::dot(ca, scratch);
                self.xyxy[a * m + j] = v;
                self.xyxy[j * m + a] = v;
            }
        }
        true
    }

    /// Install new fixed effects and response for the same random-effects
    /// structure (same rows, levels and Z): O(n·p·(k + p)).
    pub fn set_design(&mut self, mf: &ModelFrame) {
        debug_assert_eq!((mf.n, mf.p), (self.n, self.p));
        self.set_x_products(mf);
        self.set_response(mf, &mf.y);
    }

    fn set_x_products(&mut self, mf: &ModelFrame) {
        let (n, p, m) = (self.n, self.p, self.p + 1);
        self.ztxy.iter_mut().for_each(|v| *v = 0.0);
        // Column-outer loops: X is stored column by column.
        for j in 0..p {
            let xj = &mf.x[j * n..(j + 1) * n];
            for (t, term) in mf.terms.iter().enumerate() {
                let (qo, _, k, _) = self.term_layout[t];
                accumulate(&mut self.ztxy, m, j, qo, k, &term.refs, &term.z, xj);
            }
        }
        for a in 0..p {
            for b in 0..p {
                self.xyxy[a * m + b] = mf.xtx[a * p + b];
            }
        }
    }

    /// Install a new response (same design): O(n·(k + p)).
    pub fn set_response(&mut self, mf: &ModelFrame, y: &[f64]) {
        let (n, p, m) = (self.n, self.p, self.p + 1);
        for r in 0..self.q {
            self.ztxy[r * m + p] = 0.0;
        }
        for (t, term) in mf.terms.iter().enumerate() {
            let (qo, _, k, _) = self.term_layout[t];
            accumulate(&mut self.ztxy, m, p, qo, k, &term.refs, &term.z, &y[..n]);
        }
        for a in 0..p {
            let v = super::frame::dot(&mf.x[a * n..(a + 1) * n], y);
            self.xyxy[a * m + p] = v;
            self.xyxy[p * m + a] = v;
        }
        self.xyxy[p * m + p] = super::frame::dot(y, y);
    }

    /// Evaluate the profiled deviance (ML) or REML criterion at θ, leaving
    /// the factorisation in place for [`Pls::extract`].
    pub fn objective(&mut self, theta: &[f64], reml: bool) -> f64 {
        if !self.factor(theta) {
            return f64::INFINITY;
        }
        let n = self.n as f64;
        let p = self.p as f64;
        let r2 = self.pwrss;
        if !(r2 > 0.0) {
            return f64::INFINITY;
        }
        let two_pi = 2.0 * std::f64::consts::PI;
        if reml {
            let nmp = n - p;
            self.ldl2 + self.ldrx2 + nmp * (1.0 + (two_pi * r2 / nmp).ln())
        } else {
            self.ldl2 + n * (1.0 + (two_pi * r2 / n).ln())
        }
    }

    /// Factor the system at θ. Returns false if it is not positive definite.
    pub fn factor(&mut self, theta: &[f64]) -> bool {
        assert_eq!(theta.len(), self.ntheta, "theta has the wrong length");
        if self.diag.is_some() {
            return self.factor_diagonal(theta);
        }
        let q = self.q;
        // SAFETY (all `get_unchecked` below): every index comes from the
        // symbolic analysis in `Pls::new` (recipes, patterns, row lists),
        // which only stores positions inside the arrays they index, and θ's
        // length is checked above.
        unsafe {
            // C = Λ'Z'ZΛ + I.
            for s in 0..q {
                let (e0, e1) = (
                    *self.c_colptr.get_unchecked(s),
                    *self.c_colptr.get_unchecked(s + 1),
                );
                for e in e0..e1 {
                    let (r0, r1) = (
                        *self.rec_ptr.get_unchecked(e),
                        *self.rec_ptr.get_unchecked(e + 1),
                    );
                    let mut v = 0.0;
                    for &(pos, i1, i2) in self.rec.get_unchecked(r0..r1) {
                        v += self.ztz.get_unchecked(pos as usize)
                            * theta.get_unchecked(i1 as usize)
                            * theta.get_unchecked(i2 as usize);
                    }
                    if *self.c_rowind.get_unchecked(e) == s {
                        v += 1.0;
                    }
                    *self.c_val.get_unchecked_mut(e) = v;
                }
            }
            // Numeric left-looking Cholesky of the sparse columns.
            let w = &mut self.work;
            let mut ldl2 = 0.0;
            let mut prod = 1.0f64;
            for j in 0..self.dense_from.min(q) {
                let (e0, e1) = (
                    *self.c_colptr.get_unchecked(j),
                    *self.c_colptr.get_unchecked(j + 1),
                );
                for e in e0..e1 {
                    *w.get_unchecked_mut(*self.c_rowind.get_unchecked(e)) =
                        *self.c_val.get_unchecked(e);
                }
                let (r0, r1) = (
                    *self.row_ptr.get_unchecked(j),
                    *self.row_ptr.get_unchecked(j + 1),
                );
                for &(k, pos) in self.row_ent.get_unchecked(r0..r1) {
                    let ljk = *self.l_val.get_unchecked(pos);
                    let end = *self.l_colptr.get_unchecked(k + 1);
                    for pp in pos..end {
                        *w.get_unchecked_mut(*self.l_rowind.get_unchecked(pp)) -=
                            self.l_val.get_unchecked(pp) * ljk;
                    }
                }
                let d = *w.get_unchecked(j);
                if !(d > 0.0) {
                    w.iter_mut().for_each(|v| *v = 0.0);
                    return false;
                }
                let ljj = d.sqrt();
                // log|L|² accumulated as a product, one log per ~100 columns.
                prod *= d;
                if !(1e-200..=1e200).contains(&prod) {
                    ldl2 += prod.ln();
                    prod = 1.0;
                }
                let start = *self.l_colptr.get_unchecked(j);
                *self.l_val.get_unchecked_mut(start) = ljj;
                *w.get_unchecked_mut(j) = 0.0;
                let inv = 1.0 / ljj;
                for pp in start + 1..*self.l_colptr.get_unchecked(j + 1) {
                    let r = *self.l_rowind.get_unchecked(pp);
                    *self.l_val.get_unchecked_mut(pp) = *w.get_unchecked(r) * inv;
                    *w.get_unchecked_mut(r) = 0.0;
                }
            }
            self.ldl2 = ldl2 + prod.ln();
        }
        if self.dense_from < q && !self.factor_dense_block() {
            return false;
        }
        // [R_ZX c_u] = L⁻¹ Λ' Z'[X y], then M = [X y]'[X y] − rzx' rzx. The
        // row length m = p + 1 is small: fixed-size kernels for m ≤ 8 let
        // the compiler unroll and vectorise the row operations.
        let m = self.p + 1;
        macro_rules! dispatch {
            ($($k:literal)*) => {
                match m {
                    $($k => self.rzx_and_m::<$k>(theta),)*
                    _ => self.rzx_and_m_dyn(theta),
                }
            };
        }
        dispatch!(1 2 3 4 5 6 7 8);
        if !dense_cholesky_lower(&mut self.lm, m) {
            return false;
        }
        let mut ldrx2 = 0.0;
        for a in 0..self.p {
            ldrx2 += 2.0 * self.lm[a * m + a].ln();
        }
        self.ldrx2 = ldrx2;
        let lyy = self.lm[self.p * m + self.p];
        self.pwrss = lyy * lyy;
        true
    }

    /// The trailing block of L (columns `dense_from`..q), after the sparse
    /// columns are factored: its Schur complement C₂₂ − L₂₁L₂₁' formed
    /// dense (each sparse column adds the outer product of its rows in the
    /// block), factored by faer's dense Cholesky, and written into L's
    /// (full) pattern of those columns; log|L|² gains its diagonal. False
    /// when it is not positive definite.
    fn factor_dense_block(&mut self) -> bool {
        let (q, js) = (self.q, self.dense_from);
        let n2 = q - js;
        let d = &mut self.dense;
        d.fill(0.0);
        for s in js..q {
            for e in self.c_colptr[s]..self.c_colptr[s + 1] {
                d[(self.c_rowind[e] - js) + (s - js) * n2] = self.c_val[e];
            }
        }
        for k in 0..js {
            let (a0, a1) = (self.split[k], self.l_colptr[k + 1]);
            let (rows, vals) = (&self.l_rowind[a0..a1], &self.l_val[a0..a1]);
            for (b, (&rb, &lb)) in rows.iter().zip(vals).enumerate() {
                // Rows ascend: column rb of the block takes rows ≥ rb.
                let col = &mut d[(rb - js) * n2..(rb - js + 1) * n2];
                for (&ra, &la) in rows[b..].iter().zip(&vals[b..]) {
                    col[ra - js] -= la * lb;
                }
            }
        }
        let par = faer::Par::Seq;
        let need = faer::linalg::cholesky::llt::factor::cholesky_in_place_scratch::<f64>(
            n2,
            par,
            Default::default(),
        )
        .unaligned_bytes_required();
        if self.dense_scratch.len() < need {
            self.dense_scratch
                .resize(need, std::mem::MaybeUninit::uninit());
        }
        let stack = faer::dyn_stack::MemStack::new(&mut self.dense_scratch);
        let a = faer::MatMut::from_column_major_slice_mut(d, n2, n2);
        if faer::linalg::cholesky::llt::factor::cholesky_in_place(
            a,
            Default::default(),
            par,
            stack,
            Default::default(),
        )
        .is_err()
        {
            return false;
        }
        let mut ldl2 = 0.0;
        for j in js..q {
            let c = j - js;
            let start = self.l_colptr[j];
            let col = &d[c * n2 + c..(c + 1) * n2];
            self.l_val[start..self.l_colptr[j + 1]].copy_from_slice(col);
            ldl2 += 2.0 * col[0].ln();
        }
        if !ldl2.is_finite() {
            return false;
        }
        self.ldl2 += ldl2;
        true
    }

    /// `factor` when L is diagonal: L_jj² = θ² (Z'Z)_jj + 1 and
    /// rzx_j = θ (Z'[X y])_j / L_jj, with no sparse machinery.
    fn factor_diagonal(&mut self, theta: &[f64]) -> bool {
        let m = self.p + 1;
        let diag = self.diag.as_ref().expect("diagonal structure");
        self.lm.copy_from_slice(&self.xyxy);
        let mut prod = 1.0f64;
        let mut ldl2 = 0.0;
        for (j, &(ztz, ti)) in diag.iter().enumerate() {
            let t = theta[ti as usize];
            let c = t * t * ztz + 1.0;
            prod *= c;
            if !(1e-200..=1e200).contains(&prod) {
                ldl2 += prod.ln();
                prod = 1.0;
            }
            let ljj = c.sqrt();
            self.l_val[j] = ljj;
            let f = t / ljj;
            let row = &mut self.rzx[j * m..(j + 1) * m];
            for (r, &z) in row.iter_mut().zip(&self.ztxy[j * m..(j + 1) * m]) {
                *r = f * z;
            }
            for a in 0..m {
                let ra = row[a];
                if ra == 0.0 {
                    continue;
                }
                for b in 0..=a {
                    self.lm[a * m + b] -= ra * row[b];
                }
            }
        }
        self.ldl2 = ldl2 + prod.ln();
        if !dense_cholesky_lower(&mut self.lm, m) {
            return false;
        }
        self.ldrx2 = (0..self.p).map(|a| 2.0 * self.lm[a * m + a].ln()).sum();
        let lyy = self.lm[self.p * m + self.p];
        self.pwrss = lyy * lyy;
        true
    }

    /// rzx and M for a fixed row length M = p + 1.
    fn rzx_and_m<const M: usize>(&mut self, theta: &[f64]) {
        let q = self.q;
        // SAFETY: lam/l_rowind entries are < q (symbolic analysis); rzx and
        // ztxy have q·M entries; θ indices were checked by `factor`.
        unsafe {
            let rzx = self.rzx.as_mut_ptr() as *mut [f64; M];
            let ztxy = self.ztxy.as_ptr() as *const [f64; M];
            for r in 0..q {
                let mut acc = [0.0; M];
                let (l0, l1) = (
                    *self.lam_ptr.get_unchecked(r),
                    *self.lam_ptr.get_unchecked(r + 1),
                );
                for &(src, ti) in self.lam.get_unchecked(l0..l1) {
                    let t = *theta.get_unchecked(ti as usize);
                    let srow = &*ztxy.add(src as usize);
                    for c in 0..M {
                        acc[c] += t * srow[c];
                    }
                }
                *rzx.add(r) = acc;
            }
            // Forward solve L X = rzx, row by row.
            for j in 0..q {
                let start = *self.l_colptr.get_unchecked(j);
                let inv = 1.0 / *self.l_val.get_unchecked(start);
                let xj = &mut *rzx.add(j);
                for c in 0..M {
                    xj[c] *= inv;
                }
                let xj = *xj;
                for pp in start + 1..*self.l_colptr.get_unchecked(j + 1) {
                    let xi = &mut *rzx.add(*self.l_rowind.get_unchecked(pp));
                    let lij = *self.l_val.get_unchecked(pp);
                    for c in 0..M {
                        xi[c] -= lij * xj[c];
                    }
                }
            }
            let mut acc = [[0.0; M]; M];
            for r in 0..q {
                let row = &*rzx.add(r);
                for a in 0..M {
                    let ra = row[a];
                    for b in 0..M {
                        acc[a][b] += ra * row[b];
                    }
                }
            }
            for a in 0..M {
                for b in 0..=a {
                    *self.lm.get_unchecked_mut(a * M + b) =
                        *self.xyxy.get_unchecked(a * M + b) - acc[a][b];
                }
            }
        }
    }

    /// rzx and M for any row length (many fixed effects).
    fn rzx_and_m_dyn(&mut self, theta: &[f64]) {
        let q = self.q;
        let m = self.p + 1;
        // SAFETY: as in `rzx_and_m`.
        unsafe {
            for r in 0..q {
                let dst = self.rzx.as_mut_ptr().add(r * m);
                for c in 0..m {
                    *dst.add(c) = 0.0;
                }
                let (l0, l1) = (
                    *self.lam_ptr.get_unchecked(r),
                    *self.lam_ptr.get_unchecked(r + 1),
                );
                for &(src, ti) in self.lam.get_unchecked(l0..l1) {
                    let t = *theta.get_unchecked(ti as usize);
                    let srow = self.ztxy.as_ptr().add(src as usize * m);
                    for c in 0..m {
                        *dst.add(c) += t * *srow.add(c);
                    }
                }
            }
        }
        self.forward_solve_rzx();
        self.lm.copy_from_slice(&self.xyxy);
        // SAFETY: rzx has q·m entries and lm m·m; a, b < m.
        unsafe {
            let lm = self.lm.as_mut_ptr();
            for r in 0..q {
                let row = self.rzx.as_ptr().add(r * m);
                for a in 0..m {
                    let ra = *row.add(a);
                    if ra == 0.0 {
                        continue;
                    }
                    for b in 0..=a {
                        *lm.add(a * m + b) -= ra * *row.add(b);
                    }
                }
            }
        }
    }

    fn forward_solve_rzx(&mut self) {
        let m = self.p + 1;
        // SAFETY: row indices come from L's pattern (< q); rzx has q·m entries.
        unsafe {
            let x = self.rzx.as_mut_ptr();
            for j in 0..self.q {
                let start = *self.l_colptr.get_unchecked(j);
                let inv = 1.0 / *self.l_val.get_unchecked(start);
                let xj = x.add(j * m);
                for c in 0..m {
                    *xj.add(c) *= inv;
                }
                for pp in start + 1..*self.l_colptr.get_unchecked(j + 1) {
                    let xi = x.add(*self.l_rowind.get_unchecked(pp) * m);
                    let lij = *self.l_val.get_unchecked(pp);
                    for c in 0..m {
                        *xi.add(c) -= lij * *xj.add(c);
                    }
                }
            }
        }
    }

    /// L_X⁻¹ (p × p, row-major) into `linv`, for the leading p × p block
    /// L_X of L_M after the last evaluation (L_X L_X' = R_X'R_X): column by
    /// column, by forward substitution.
    pub fn lx_inverse_into(&self, linv: &mut Vec<f64>) {
        let (p, m, lm) = (self.p, self.p + 1, &self.lm);
        linv.clear();
        linv.resize(p * p, 0.0);
        for c in 0..p {
            for r in 0..p {
                let mut e = f64::from(u8::from(r == c));
                for k in 0..r {
                    e -= lm[r * m + k] * linv[k * p + c];
                }
                linv[r * p + c] = e / lm[r * m + r];
            }
        }
    }

    /// The deviance (−2 log-likelihood, REML's with `reml`) at the θ of the
    /// last evaluation and a given σ, β profiled out: log|L|² (plus
    /// log|R_X|² for REML) plus ν log(2πσ²) plus r²/σ², with ν = n − p
    /// (REML) or n. At σ̂² = r²/ν it is [`Pls::objective`].
    pub fn deviance_at_sigma(&self, reml: bool, sigma: f64) -> f64 {
        let s2 = sigma * sigma;
        let (ld, nu) = if reml {
            (self.ldl2 + self.ldrx2, (self.n - self.p) as f64)
        } else {
            (self.ldl2, self.n as f64)
        };
        ld + nu * (2.0 * std::f64::consts::PI * s2).ln() + self.pwrss / s2
    }

    /// Solve L' x = b in place (b has length q).
    pub fn backward_solve(&self, x: &mut [f64]) {
        for j in (0..self.q).rev() {
            let start = self.l_colptr[j];
            let mut v = x[j];
            for pp in start + 1..self.l_colptr[j + 1] {
                v -= self.l_val[pp] * x[self.l_rowind[pp]];
            }
            x[j] = v / self.l_val[start];
        }
    }

    /// Solve L x = b in place (b has length q).
    pub fn forward_solve(&self, x: &mut [f64]) {
        for j in 0..self.q {
            let start = self.l_colptr[j];
            x[j] /= self.l_val[start];
            let xj = x[j];
            for pp in start + 1..self.l_colptr[j + 1] {
                x[self.l_rowind[pp]] -= self.l_val[pp] * xj;
            }
        }
    }

    /// Multiply by Λ (b = Λ u), using the θ recipe.
    pub fn lambda_times(&self, theta: &[f64], u: &[f64]) -> Vec<f64> {
        let mut b = Vec::new();
        self.lambda_times_into(theta, u, &mut b);
        b
    }

    /// [`Pls::lambda_times`] into a reused vector.
    pub fn lambda_times_into(&self, theta: &[f64], u: &[f64], b: &mut Vec<f64>) {
        // (Λ u)[s] = Σ_r Λ[s, r] u[r]; the Λ' recipe lists, for row r of Λ', (s, θ).
        b.clear();
        b.resize(self.q, 0.0);
        for (r, &ur) in u.iter().enumerate().take(self.q) {
            for &(s, ti) in &self.lam[self.lam_ptr[r]..self.lam_ptr[r + 1]] {
                b[s as usize] += theta[ti as usize] * ur;
            }
        }
    }

    /// Dense Λ (q × q, row-major).
    pub fn lambda_dense(&self, theta: &[f64]) -> Vec<f64> {
        let q = self.q;
        let mut l = vec![0.0; q * q];
        for r in 0..q {
            for &(s, ti) in &self.lam[self.lam_ptr[r]..self.lam_ptr[r + 1]] {
                l[s as usize * q + r] += theta[ti as usize];
            }
        }
        l
    }

    /// Dense Z'Z (q × q, row-major, symmetric).
    pub fn ztz_dense(&self) -> Vec<f64> {
        let q = self.q;
        let mut a = vec![0.0; q * q];
        for s in 0..q {
            for e in self.c_colptr[s]..self.c_colptr[s + 1] {
                let r = self.c_rowind[e];
                a[r * q + s] = self.ztz[e];
                a[s * q + r] = self.ztz[e];
            }
        }
        a
    }

    /// Connected components of the random-effect columns (two columns are
    /// connected when some observation has both), as offsets into a list of
    /// columns (component c is `cols[ptr[c]..ptr[c+1]]`, ascending). V is
    /// block diagonal over them: for nested factors a component is one outer
    /// cluster with all its inner levels; for a single factor, one level.
    pub fn components(&self) -> (&[usize], &[usize]) {
        (&self.comp_ptr, &self.comp_cols)
    }

    fn find_components(&self) -> (Vec<usize>, Vec<usize>) {
        let q = self.q;
        if self.diag.is_some() {
            // Diagonal structure: every column is its own component.
            return ((0..=q).collect(), (0..q).collect());
        }
        let mut parent: Vec<usize> = (0..q).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        for s in 0..q {
            for e in self.c_colptr[s]..self.c_colptr[s + 1] {
                let (a, b) = (find(&mut parent, self.c_rowind[e]), find(&mut parent, s));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
        // Number the components by first column, then counting-sort columns.
        let mut id = vec![usize::MAX; q];
        let mut comp = vec![0usize; q];
        let mut n = 0;
        for r in 0..q {
            let root = find(&mut parent, r);
            if id[root] == usize::MAX {
                id[root] = n;
                n += 1;
            }
            comp[r] = id[root];
        }
        let mut ptr = vec![0usize; n + 1];
        for &c in &comp {
            ptr[c + 1] += 1;
        }
        for c in 0..n {
            ptr[c + 1] += ptr[c];
        }
        let mut next = ptr.clone();
        let mut cols = vec![0usize; q];
        for (r, &c) in comp.iter().enumerate() {
            cols[next[c]] = r;
            next[c] += 1;
        }
        (ptr, cols)
    }

    /// Entries of Z'Z as (row, column, value), lower triangle.
    pub fn ztz_entries(&self) -> impl Iterator<Item = (usize, usize, f64)> + '_ {
        (0..self.q).flat_map(move |s| {
            (self.c_colptr[s]..self.c_colptr[s + 1])
                .map(move |e| (self.c_rowind[e], s, self.ztz[e]))
        })
    }

    /// Entries of Λ as (row, column, θ index): Λ[row, col] = θ[index].
    pub fn lambda_entries(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        (0..self.q).flat_map(move |r| {
            self.lam[self.lam_ptr[r]..self.lam_ptr[r + 1]]
                .iter()
                .map(move |&(src, ti)| (src as usize, r, ti as usize))
        })
    }

    /// Diagonal entry j of L after the last evaluation.
    pub fn l_diag(&self, j: usize) -> f64 {
        self.l_val[self.l_colptr[j]]
    }

    /// Number of non-zeros in L (for diagnostics).
    pub fn nnz_l(&self) -> usize {
        self.l_rowind.len()
    }
}

/// A dense trailing block smaller than this is left to the sparse
/// factorisation (small crossed designs such as Penicillin's 6 × 24).
pub const DENSE_MIN: usize = 64;

/// Where L's dense trailing block starts: the column js that minimises the
/// estimated cost of a factorisation, Σ_{j<js} |L_j|² for the sparse
/// columns (each updates the later ones with its pattern's outer product)
/// plus (q − js)³/3 for the dense block, at 1/16 the cost per operation
/// (faer's blocked SIMD kernel against the scalar sparse loop); q, the
/// number of columns (no dense block), when the best block has fewer than
/// `dense_min` columns. `pattern[j]` lists column j's rows (all ≥ j).
fn dense_start(pattern: &[Vec<usize>], dense_min: usize) -> usize {
    let q = pattern.len();
    let sparse: f64 = pattern.iter().map(|p| (p.len() as f64).powi(2)).sum();
    let (mut best, mut best_cost) = (q, sparse);
    let mut before = sparse;
    for js in (0..q).rev() {
        before -= (pattern[js].len() as f64).powi(2);
        let n2 = (q - js) as f64;
        let cost = before + n2 * n2 * n2 / 48.0;
        if cost < best_cost {
            (best, best_cost) = (js, cost);
        }
    }
    if q - best >= dense_min {
        best
    } else {
        q
    }
}

/// Scratch for [`ztz_runs`].
#[derive(Debug, Clone, Default)]
struct RunScratch {
    keys: Vec<usize>,
    zs: Vec<f64>,
    run_keys: Vec<usize>,
    acc: Vec<f64>,
}

/// The lower triangle of Z'Z as (row, column, value) contributions, in row
/// order: consecutive rows with the same random-effect columns (the usual
/// layout: rows sorted by cluster) are summed in a small buffer and emitted
/// once per run. `Pls::new` collects them into its pattern and
/// `Pls::refresh_structure` adds them into an existing one, in the same order.
fn ztz_runs(
    mf: &ModelFrame,
    term_layout: &[(usize, usize, usize, usize)],
    weights: Option<&[f64]>,
    s: &mut RunScratch,
    mut emit: impl FnMut(usize, usize, f64),
) {
    let per_row: usize = mf.terms.iter().map(|t| t.k).sum();
    s.run_keys.clear();
    s.acc.clear();
    s.acc.resize(per_row * per_row, 0.0);
    let mut flush = |run_keys: &[usize], acc: &[f64]| {
        let w = run_keys.len();
        for (a, &r) in run_keys.iter().enumerate() {
            for (b, &c) in run_keys.iter().enumerate() {
                if r >= c {
                    emit(r, c, acc[a * w + b]);
                }
            }
        }
    };
    for i in 0..mf.n {
        s.keys.clear();
        s.zs.clear();
        for (t, term) in mf.terms.iter().enumerate() {
            let (qo, _, k, _) = term_layout[t];
            let base = qo + term.refs[i] as usize * k;
            for a in 0..k {
                s.keys.push(base + a);
                s.zs.push(term.z[i * k + a]);
            }
        }
        if s.keys != s.run_keys {
            if !s.run_keys.is_empty() {
                flush(&s.run_keys, &s.acc);
            }
            s.run_keys.clone_from(&s.keys);
            s.acc.iter_mut().for_each(|v| *v = 0.0);
        }
        if let Some(w) = weights {
            let wi = w[i];
            for a in 0..per_row {
                for b in 0..per_row {
                    s.acc[a * per_row + b] += wi * s.zs[a] * s.zs[b];
                }
            }
        } else {
            for a in 0..per_row {
                for b in 0..per_row {
                    s.acc[a * per_row + b] += s.zs[a] * s.zs[b];
                }
            }
        }
    }
    if !s.run_keys.is_empty() {
        flush(&s.run_keys, &s.acc);
    }
}

/// Add Z'v into column `col` of the q × m row-major `dst`, for one term
/// (q offset `qo`, k columns). Runs of rows in the same level (the usual,
/// sorted layout) accumulate in registers.
#[allow(clippy::too_many_arguments)]
fn accumulate(
    dst: &mut [f64],
    m: usize,
    col: usize,
    qo: usize,
    k: usize,
    refs: &[u32],
    z: &[f64],
    v: &[f64],
) {
    if k == 1 {
        let mut i = 0;
        let n = v.len();
        while i < n {
            let g = refs[i];
            let mut acc = 0.0;
            while i < n && refs[i] == g {
                acc += z[i] * v[i];
                i += 1;
            }
            dst[(qo + g as usize) * m + col] += acc;
        }
        return;
    }
    for (i, &x) in v.iter().enumerate() {
        let base = qo + refs[i] as usize * k;
        for a in 0..k {
            dst[(base + a) * m + col] += z[i * k + a] * x;
        }
    }
}

/// Index of T[c, a] (c ≥ a) in the column-wise lower triangle of a k×k matrix.
#[inline]
pub fn tri(k: usize, c: usize, a: usize) -> usize {
    // Column b holds k − b entries.
    let before: usize = (0..a).map(|b| k - b).sum();
    before + (c - a)
}

/// Solve L L' x = b in place for the lower factor `l` (m × m, row-major)
/// of [`dense_cholesky_lower`].
pub fn cholesky_solve(l: &[f64], m: usize, b: &mut [f64]) {
    for r in 0..m {
        for s in 0..r {
            b[r] -= l[r * m + s] * b[s];
        }
        b[r] /= l[r * m + r];
    }
    for r in (0..m).rev() {
        for s in r + 1..m {
            b[r] -= l[s * m + r] * b[s];
        }
        b[r] /= l[r * m + r];
    }
}

/// In-place lower Cholesky of an m×m row-major symmetric matrix (reads the
/// lower triangle, zeroes the upper). Returns false if not positive definite.
pub fn dense_cholesky_lower(a: &mut [f64], m: usize) -> bool {
    for j in 0..m {
        let mut d = a[j * m + j];
        for k in 0..j {
            d -= a[j * m + k] * a[j * m + k];
        }
        if !(d > 0.0) {
            return false;
        }
        let ljj = d.sqrt();
        a[j * m + j] = ljj;
        for i in j + 1..m {
            let mut v = a[i * m + j];
            for k in 0..j {
                v -= a[i * m + k] * a[j * m + k];
            }
            a[i * m + j] = v / ljj;
        }
        for i in 0..j {
            a[i * m + j] = 0.0;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lmm::data::{Column, DataFrame};
    use crate::lmm::formula::Formula;

    /// One random intercept has a diagonal L and no dense trailing block:
    /// its workspace holds none, built or refreshed for new rows (it once
    /// held a q × q block, 3.2 GB at 20,000 levels).
    #[test]
    fn single_scalar_structure_has_no_dense_block() {
        let q = 2000;
        let g: Vec<f64> = (0..2 * q).map(|i| (i % q) as f64).collect();
        let y: Vec<f64> = (0..2 * q).map(|i| ((i * 7919) % 101) as f64).collect();
        let data = DataFrame::from_columns(vec![Column::numeric("g", g), Column::numeric("y", y)])
            .expect("columns");
        let mf = ModelFrame::new(&Formula::parse("y ~ 1 + (1|g)").unwrap(), &data).unwrap();
        let mut pls = Pls::new(&mf);
        assert_eq!((pls.q, pls.dense_from, pls.dense.len()), (q, q, 0));
        assert!(pls.refresh_single_scalar(&mf));
        assert_eq!((pls.dense_from, pls.dense.len()), (q, 0));
        assert!(pls.factor(&[0.7]));
    }

    /// A crossed `(1|a) + (1|b)` design (150 × 80 levels, 3,000 rows) and a
    /// crossed random slope, each factored with the dense trailing block and
    /// all sparse: the same deviance, factor and solves, to rounding.
    #[test]
    fn dense_trailing_block_equals_the_sparse_factor() {
        let n = 3000;
        let mut state = 12345u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut a, mut b, mut x, mut y) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            a.push((next() * 150.0).floor());
            b.push((next() * 80.0).floor());
            x.push(next());
            y.push(next() * 4.0);
        }
        let data = DataFrame::from_columns(vec![
            Column::numeric("a", a),
            Column::numeric("b", b),
            Column::numeric("x", x),
            Column::numeric("y", y),
        ])
        .expect("columns");
        for (formula, thetas) in [
            (
                "y ~ x + (1|a) + (1|b)",
                vec![vec![0.3, 0.8], vec![1.5, 0.05], vec![0.0, 2.0]],
            ),
            (
                "y ~ x + (1|a) + (x|b)",
                vec![vec![0.4, 0.9, -0.3, 0.5], vec![1.1, 0.2, 0.1, 0.7]],
            ),
        ] {
            let mf = ModelFrame::new(&Formula::parse(formula).unwrap(), &data).unwrap();
            let mut dense = Pls::new(&mf);
            let mut sparse = Pls::build(&mf, usize::MAX);
            assert!(
                dense.dense_from < dense.q && dense.dense_from >= 150,
                "{formula}: the crossed factor's columns form the dense block (from {} of {})",
                dense.dense_from,
                dense.q
            );
            assert_eq!(sparse.dense_from, sparse.q);
            for theta in thetas {
                for reml in [true, false] {
                    let (d, s) = (
                        dense.objective(&theta, reml),
                        sparse.objective(&theta, reml),
                    );
                    assert!(
                        (d - s).abs() < 1e-9 * s.abs(),
                        "{formula} at {theta:?}: {d} dense, {s} sparse"
                    );
                }
                for (u, v) in dense.rzx.iter().zip(&sparse.rzx) {
                    assert!((u - v).abs() < 1e-9 * (1.0 + v.abs()));
                }
                let rhs: Vec<f64> = (0..dense.q).map(|i| (i as f64 * 0.37).sin()).collect();
                let (mut u, mut v) = (rhs.clone(), rhs);
                dense.backward_solve(&mut u);
                sparse.backward_solve(&mut v);
                for (u, v) in u.iter().zip(&v) {
                    assert!((u - v).abs() < 1e-9 * (1.0 + v.abs()));
                }
            }
        }
    }
}
