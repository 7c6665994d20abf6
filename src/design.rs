//! The resolved trial design: which teams sit in which site, how teams are
//! randomised to arms, and how team sizes and staff numbers are drawn.
//!
//! A [`Design`] is built once from a [`Config`]; each replicate then draws an
//! allocation, team sizes and staff counts from it.

use crate::config::{Allocation, Config, SizeKind, StaffSpec};
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
}

/// Give up redrawing a truncated size after this many tries and use `min`.
const MAX_REDRAWS: usize = 10_000;

impl SizeSampler {
    fn from_config(cfg: &Config) -> Result<Self> {
        let s = &cfg.clusters.size;
        Ok(match s.dist {
            SizeKind::Fixed => SizeSampler::Fixed(s.mean as u32),
            SizeKind::Poisson => SizeSampler::Poisson {
                dist: Poisson::new(s.mean)
                    .map_err(|e| Error::invalid("clusters.size.mean", s.mean, &e.to_string()))?,
                min: s.min,
            },
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

    /// One team size.
    #[inline]
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        match self {
            SizeSampler::Fixed(m) => *m,
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
pub fn size_pmf(kind: SizeKind, mean: f64, cv: f64) -> Vec<f64> {
    match kind {
        SizeKind::Fixed => {
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

/// Mean and variance of the team size after truncation below `min`.
pub fn truncated_size_moments(kind: SizeKind, mean: f64, cv: f64, min: u32) -> (f64, f64) {
    if kind == SizeKind::Fixed {
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

/// The resolved design of a parallel cluster trial.
#[derive(Debug, Clone)]
pub struct Design {
    /// Site names, in config order.
    pub site_names: Vec<String>,
    /// Number of teams in each site.
    pub site_teams: Vec<u32>,
    /// Site index of each team; teams are numbered site by site.
    pub team_site: Vec<u16>,
    /// Allocation scheme.
    pub allocation: Allocation,
    /// Exact treated count overall, if configured.
    pub treated: Option<u32>,
    /// Exact treated count per site (stratified allocation with `treated`).
    pub treated_per_site: Option<Vec<u32>>,
    /// Team-size sampler.
    pub size: SizeSampler,
    /// Staff per team.
    pub staff: StaffSpec,
}

impl Design {
    /// Resolve a validated config into a design.
    pub fn from_config(cfg: &Config) -> Result<Design> {
        let c = &cfg.clusters;
        let nsites = c.sites.len();
        let site_teams = match &c.site_teams {
            Some(v) => v.clone(),
            None => even_split(c.teams, nsites),
        };
        let mut team_site = Vec::with_capacity(c.teams as usize);
        for (s, &n) in site_teams.iter().enumerate() {
            team_site.extend(std::iter::repeat_n(s as u16, n as usize));
        }
        let treated_per_site = match (c.allocation, c.treated) {
            (Allocation::Stratified, Some(t)) => Some(largest_remainder(t, &site_teams)),
            _ => None,
        };
        Ok(Design {
            site_names: c.sites.clone(),
            site_teams,
            team_site,
            allocation: c.allocation,
            treated: c.treated,
            treated_per_site,
            size: SizeSampler::from_config(cfg)?,
            staff: c.staff_per_team,
        })
    }

    /// Number of teams.
    pub fn teams(&self) -> usize {
        self.team_site.len()
    }

    /// Randomise teams to arms (1 = treated) into `arms` (resized to the team count).
    pub fn allocate<R: Rng + ?Sized>(&self, rng: &mut R, arms: &mut Vec<u8>) {
        let n = self.teams();
        arms.clear();
        arms.resize(n, 0);
        let mut idx: Vec<usize> = Vec::with_capacity(n);
        match self.allocation {
            Allocation::Simple => match self.treated {
                Some(t) => {
                    idx.extend(0..n);
                    for &i in partial_shuffle(rng, &mut idx, t as usize) {
                        arms[i] = 1;
                    }
                }
                None => loop {
                    let mut k = 0;
                    for a in arms.iter_mut() {
                        *a = rng.random_bool(0.5) as u8;
                        k += *a as usize;
                    }
                    if k > 0 && k < n {
                        break;
                    }
                },
            },
            Allocation::Stratified => {
                let mut start = 0usize;
                for (s, &ns) in self.site_teams.iter().enumerate() {
                    let ns = ns as usize;
                    let t = match &self.treated_per_site {
                        Some(v) => v[s] as usize,
                        None => ns / 2 + (ns % 2 == 1 && rng.random_bool(0.5)) as usize,
                    };
                    idx.clear();
                    idx.extend(start..start + ns);
                    for &i in partial_shuffle(rng, &mut idx, t) {
                        arms[i] = 1;
                    }
                    start += ns;
                }
                // Without an exact count, tiny designs could leave an arm empty.
                let k: usize = arms.iter().map(|&a| a as usize).sum();
                if self.treated_per_site.is_none() && (k == 0 || k == n) {
                    // Flip one random team so both arms exist (only possible
                    // when every site has a single team).
                    let j = rng.random_range(0..n);
                    arms[j] ^= 1;
                }
            }
        }
    }

    /// Number of staff for one team.
    #[inline]
    pub fn draw_staff<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        match self.staff {
            StaffSpec::Fixed(n) => n,
            StaffSpec::Range { min, max } => rng.random_range(min..=max),
        }
    }
}

/// One cluster-period of a stepped-wedge sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwCell {
    /// The treatment column the analysis sees: 0/1, 0.5 in a half-exposed
    /// transition period, None when the transition period is excluded.
    pub exposure: Option<f64>,
    /// Periods since crossover (0 in the first exposed period; −1 before).
    pub since: i32,
    /// Share of the effect reached (the implementation lag; 1 without one).
    pub lag: f64,
}

/// Period `t` of a sequence's 0/1 `row`: the one rule the simulator and the
/// GLS power both use for transitions and implementation lag.
pub fn sw_cell(row: &[u8], t: usize, transition: crate::config::Transition, lag: &[f64]) -> SwCell {
    use crate::config::Transition;
    let first = row.iter().position(|&x| x == 1);
    let since = match first {
        Some(f) if row[t] == 1 => t as i32 - f as i32,
        _ => -1,
    };
    let exposure = match (since, transition) {
        (0, Transition::Exclude) => None,
        (0, Transition::Half) => Some(0.5),
        _ => Some(f64::from(row[t])),
    };
    let lag = if since >= 0 {
        lag.get(since as usize).copied().unwrap_or(1.0)
    } else {
        1.0
    };
    SwCell {
        exposure,
        since,
        lag,
    }
}

/// Split `n` items over `k` groups as evenly as possible, earlier groups first.
pub fn even_split(n: u32, k: usize) -> Vec<u32> {
    let k32 = k as u32;
    (0..k32).map(|i| n / k32 + u32::from(i < n % k32)).collect()
}

/// Split `t` treated teams over sites in proportion to their sizes, by the
/// largest-remainder rule (ties to the earlier site).
pub fn largest_remainder(t: u32, site_teams: &[u32]) -> Vec<u32> {
    let n: u32 = site_teams.iter().sum();
    let quota: Vec<f64> = site_teams
        .iter()
        .map(|&s| t as f64 * s as f64 / n as f64)
        .collect();
    let mut out: Vec<u32> = quota.iter().map(|q| q.floor() as u32).collect();
    let mut left = t - out.iter().sum::<u32>();
    let mut order: Vec<usize> = (0..site_teams.len()).collect();
    order.sort_by(|&a, &b| {
        let ra = quota[a] - quota[a].floor();
        let rb = quota[b] - quota[b].floor();
        rb.partial_cmp(&ra)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    // Hand out the rest by remainder; a full site is skipped, and a pass in
    // which no site could take one ends the loop (never reached when
    // t <= Σ site_teams, which validation ensures).
    while left > 0 {
        let mut gave = false;
        for &s in &order {
            if left > 0 && out[s] < site_teams[s] {
                out[s] += 1;
                left -= 1;
                gave = true;
            }
        }
        if !gave {
            break;
        }
    }
    out
}

/// Split `n` in proportion to `weights` by the largest-remainder rule, with
/// no cap per part (ties to the earlier part).
pub fn proportional_split(n: u32, weights: &[u32]) -> Vec<u32> {
    let total: u32 = weights.iter().sum();
    if total == 0 || weights.is_empty() {
        return even_split(n, weights.len().max(1));
    }
    let quota: Vec<f64> = weights
        .iter()
        .map(|&w| n as f64 * w as f64 / total as f64)
        .collect();
    let mut out: Vec<u32> = quota.iter().map(|q| q.floor() as u32).collect();
    let left = n - out.iter().sum::<u32>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (quota[a] - quota[a].floor(), quota[b] - quota[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in order.iter().take(left as usize) {
        out[i] += 1;
    }
    out
}

/// Fisher–Yates over the first `k` positions; returns them (a uniform random
/// k-subset in random order).
fn partial_shuffle<'a, R: Rng + ?Sized>(rng: &mut R, v: &'a mut [usize], k: usize) -> &'a [usize] {
    let n = v.len();
    let k = k.min(n);
    for i in 0..k {
        let j = rng.random_range(i..n);
        v.swap(i, j);
    }
    &v[..k]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        assert_eq!(even_split(27, 2), vec![14, 13]);
        assert_eq!(even_split(7, 3), vec![3, 2, 2]);
        assert_eq!(largest_remainder(14, &[14, 13]), vec![7, 7]);
        assert_eq!(largest_remainder(5, &[10, 0]), vec![5, 0]);
        assert_eq!(largest_remainder(3, &[2, 2, 2]), vec![1, 1, 1]);
        assert_eq!(proportional_split(40, &[14, 13]), vec![21, 19]);
        assert_eq!(proportional_split(60, &[14, 13]), vec![31, 29]);
        assert_eq!(proportional_split(5, &[1, 1, 1]), vec![2, 2, 1]);
    }

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
