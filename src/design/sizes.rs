//! Cluster sizes: the samplers a replicate draws from, the size
//! distribution's pmf and its moments after truncation.

use crate::config::{Config, SizeDist, SizeKind};
use crate::error::{Error, Result};
use rand::Rng;
use rand_distr::{Distribution, Gamma, Poisson};

/// Draws the number of service users in a team.
#[derive(Debug, Clone)]
pub enum SizeSampler {
    /// Every team has this many.
    Fixed(u32),
    /// Poisson(mean), redrawn while below `min`.
    Poisson { dist: Poisson<f64>, min: u32 },
    /// Gamma–Poisson mixture with the configured mean and CV, redrawn while below `min`.
    Negbin { gamma: Gamma<f64>, min: u32 },
    /// Given sizes: one row per cluster, with one size (every period) or
    /// one per period.
    Given(Vec<Vec<u32>>),
}

/// Give up redrawing a truncated size after this many tries and use `min`.
const MAX_REDRAWS: usize = 10_000;

impl SizeSampler {
    pub(super) fn from_config(cfg: &Config) -> Result<Self> {
        let s = &cfg.clusters.size;
        Ok(match s.dist {
            SizeKind::Fixed => SizeSampler::Fixed(s.mean as u32),
            SizeKind::Poisson => SizeSampler::Poisson {
                dist: Poisson::new(s.mean)
                    .map_err(|e| Error::invalid("clusters.size.mean", s.mean, &e.to_string()))?,
                min: s.min,
            },
            SizeKind::Given => SizeSampler::Given(match (&s.per_cluster, &s.per_cluster_period) {
                (_, Some(m)) => m.clone(),
                (Some(v), None) => v.iter().map(|&n| vec![n]).collect(),
                (None, None) => {
                    return Err(Error::invalid(
                        "clusters.size.dist",
                        "\"given\"",
                        "needs clusters.size.per_cluster or per_cluster_period",
                    ))
                }
            }),
            SizeKind::Negbin => {
                let (shape, scale) = negbin_gamma(s.mean, s.cv.unwrap_or(0.0));
                SizeSampler::Negbin {
                    gamma: Gamma::new(shape, scale).map_err(|e| {
                        Error::invalid("clusters.size.cv", s.cv.unwrap_or(0.0), &e.to_string())
                    })?,
                    min: s.min,
                }
            }
        })
    }

    /// The size of cluster `c` (a parallel team, or a closed cohort): its
    /// given size, or a draw.
    #[inline]
    pub fn cluster<R: Rng + ?Sized>(&self, c: usize, rng: &mut R) -> u32 {
        self.cell(c, 0, rng)
    }

    /// The size of cluster `c` in period `t` (a cross-sectional stepped
    /// wedge): its given size, or a fresh draw.
    #[inline]
    pub fn cell<R: Rng + ?Sized>(&self, c: usize, t: usize, rng: &mut R) -> u32 {
        match self {
            SizeSampler::Given(rows) => {
                let r = &rows[c];
                r[t.min(r.len() - 1)]
            }
            _ => self.draw(rng),
        }
    }

    /// One drawn team size (a given size has no draw: see [`Self::cell`]).
    #[inline]
    fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        match self {
            SizeSampler::Fixed(m) => *m,
            SizeSampler::Given(_) => unreachable!("given sizes are read by cell"),
            SizeSampler::Poisson { dist, min } => {
                for _ in 0..MAX_REDRAWS {
                    let k = dist.sample(rng) as u32;
                    if k >= *min {
                        return k;
                    }
                }
                *min
            }
            SizeSampler::Negbin { gamma, min } => {
                for _ in 0..MAX_REDRAWS {
                    let lambda = gamma.sample(rng);
                    let k = if lambda > 0.0 {
                        match Poisson::new(lambda) {
                            Ok(p) => p.sample(rng) as u32,
                            Err(_) => 0,
                        }
                    } else {
                        0
                    };
                    if k >= *min {
                        return k;
                    }
                }
                *min
            }
        }
    }
}

/// Gamma (shape, scale) of the Poisson rate giving a negative binomial with
/// mean `m` and coefficient of variation `cv`: Var = m + m²/r = (cv·m)², so
/// 1/r = cv² − 1/m.
pub fn negbin_gamma(m: f64, cv: f64) -> (f64, f64) {
    let r = 1.0 / (cv * cv - 1.0 / m);
    (r, m / r)
}

/// Probability mass function of the configured size distribution, before
/// truncation, for sizes 0..=kmax (kmax chosen so the tail is negligible).
/// Given sizes have no distribution: their mean is treated as fixed (their
/// own moments are [`crate::config::SizeDist::moments`]).
pub fn size_pmf(kind: SizeKind, mean: f64, cv: f64) -> Vec<f64> {
    match kind {
        SizeKind::Fixed | SizeKind::Given => {
            let m = mean as usize;
            let mut p = vec![0.0; m + 1];
            p[m] = 1.0;
            p
        }
        SizeKind::Poisson | SizeKind::Negbin => {
            let sd = if kind == SizeKind::Poisson {
                mean.sqrt()
            } else {
                cv * mean
            };
            let kmax = (mean + 40.0 * sd + 50.0).ceil() as usize;
            let mut p = Vec::with_capacity(kmax + 1);
            if kind == SizeKind::Poisson {
                let mut lp = -mean;
                for k in 0..=kmax {
                    if k > 0 {
                        lp += mean.ln() - (k as f64).ln();
                    }
                    p.push(lp.exp());
                }
            } else {
                let (r, _) = negbin_gamma(mean, cv);
                // p(0) = (r/(r+m))^r; p(k+1)/p(k) = (k+r)/(k+1) · m/(m+r).
                let q = mean / (mean + r);
                let mut lp = r * (r / (r + mean)).ln();
                for k in 0..=kmax {
                    if k > 0 {
                        let kf = (k - 1) as f64;
                        lp += ((kf + r) / (kf + 1.0)).ln() + q.ln();
                    }
                    p.push(lp.exp());
                }
            }
            p
        }
    }
}

/// Mean and variance of a cluster's size (of a cluster-period's, for sizes
/// given per cluster and period): the truncated distribution's moments, or
/// the given sizes' own (population variance).
pub fn size_moments(s: &SizeDist) -> (f64, f64) {
    match s.given_moments() {
        Some(mv) if s.dist == SizeKind::Given => mv,
        _ => truncated_size_moments(s.dist, s.mean, s.cv.unwrap_or(0.0), s.min),
    }
}

/// Mean and variance of the team size after truncation below `min`.
pub fn truncated_size_moments(kind: SizeKind, mean: f64, cv: f64, min: u32) -> (f64, f64) {
    if matches!(kind, SizeKind::Fixed | SizeKind::Given) {
        return (mean, 0.0);
    }
    let p = size_pmf(kind, mean, cv);
    let (mut s0, mut s1, mut s2) = (0.0, 0.0, 0.0);
    for (k, &pk) in p.iter().enumerate().skip(min as usize) {
        let kf = k as f64;
        s0 += pk;
        s1 += pk * kf;
        s2 += pk * kf * kf;
    }
    let m = s1 / s0;
    (m, s2 / s0 - m * m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pmf_moments() {
        let (m, v) = truncated_size_moments(SizeKind::Negbin, 15.0, 0.4, 0);
        assert!((m - 15.0).abs() < 1e-9, "{m}");
        assert!((v - 36.0).abs() < 1e-7, "{v}");
        let (m, v) = truncated_size_moments(SizeKind::Poisson, 8.0, 0.0, 0);
        assert!((m - 8.0).abs() < 1e-9 && (v - 8.0).abs() < 1e-9);
        let (m, _) = truncated_size_moments(SizeKind::Poisson, 8.0, 0.0, 5);
        assert!(m > 8.0);
    }
}
