//! Adherence: team participation, staff adherence and the dose–response.
//!
//! * Team participation a_j ∈ [0, 1] of a treated team (0 for control) is
//!   Beta(mean, concentration) — shape parameters mean·c and (1 − mean)·c —,
//!   a fixed value per team, or a two-class mixture (high with probability
//!   p_high, else low).
//! * `confounding` ρ is a Gaussian-copula correlation between a_j and the
//!   team's follow-up effect u_j^Y: with z_u = u_j^Y / SD(u), a_j is the
//!   distribution's quantile at Φ(ρ z_u + √(1 − ρ²) ε). ρ = 0: participation
//!   is exogenous; ρ > 0: better teams participate more. (With icc = 0 there
//!   is no u_j^Y to correlate with, and ρ has no effect.)
//! * Staff adherence a_jk ~ Beta(a_j·s, (1 − a_j)·s) around the team's value
//!   (s = `staff_concentration`; absent: a_jk = a_j).
//! * Dose–response g(a) in `δ · A_j · g(a_jk)`: linear g = a; threshold
//!   g = 1{a ≥ τ}; emax g = a (1 + EC50) / (a + EC50). g(1) = 1 in every case,
//!   so δ stays the effect at full adherence.

use crate::config::{AdherenceConfig, DoseKind, TeamAdherenceKind};
use crate::stats::norm_cdf;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use statrs::function::beta::inv_beta_reg;

/// The adherence model of a config (`None` section: everyone adheres fully).
#[derive(Debug, Clone)]
pub struct AdherenceModel {
    team: TeamDist,
    staff_concentration: Option<f64>,
    pub confounding: f64,
    dose: Dose,
    /// The configured high/low cut, if any (else the median of observed participation).
    pub cut: Option<f64>,
}

#[derive(Debug, Clone)]
enum TeamDist {
    Full,
    Beta { a: f64, b: f64 },
    Fixed(Vec<f64>),
    Mixture { high: f64, low: f64, p_high: f64 },
}

/// The dose–response function g.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dose {
    Linear,
    Threshold(f64),
    Emax(f64),
}

impl Dose {
    /// g(a).
    #[inline]
    pub fn g(self, a: f64) -> f64 {
        match self {
            Dose::Linear => a,
            Dose::Threshold(t) => f64::from(u8::from(a >= t)),
            Dose::Emax(ec50) => a * (1.0 + ec50) / (a + ec50),
        }
    }
}

impl AdherenceModel {
    /// Build from the config section (validated elsewhere).
    pub fn new(cfg: Option<&AdherenceConfig>) -> AdherenceModel {
        let Some(c) = cfg else {
            return AdherenceModel {
                team: TeamDist::Full,
                staff_concentration: None,
                confounding: 0.0,
                dose: Dose::Linear,
                cut: None,
            };
        };
        let t = &c.team;
        let team = match t.dist {
            TeamAdherenceKind::Beta => {
                let (m, k) = (t.mean.unwrap_or(0.5), t.concentration.unwrap_or(2.0));
                TeamDist::Beta {
                    a: m * k,
                    b: (1.0 - m) * k,
                }
            }
            TeamAdherenceKind::Fixed => TeamDist::Fixed(t.values.clone().unwrap_or_default()),
            TeamAdherenceKind::Mixture => TeamDist::Mixture {
                high: t.high.unwrap_or(1.0),
                low: t.low.unwrap_or(0.0),
                p_high: t.p_high.unwrap_or(0.5),
            },
        };
        let dose = match c.dose {
            DoseKind::Linear => Dose::Linear,
            DoseKind::Threshold => Dose::Threshold(c.threshold.unwrap_or(0.5)),
            DoseKind::Emax => Dose::Emax(c.ec50.unwrap_or(0.2)),
        };
        AdherenceModel {
            team,
            staff_concentration: c.staff_concentration,
            confounding: c.confounding,
            dose,
            cut: c.cut,
        }
    }

    /// Whether adherence is modelled (draws random numbers).
    pub fn is_active(&self) -> bool {
        !matches!(self.team, TeamDist::Full)
    }

    /// The dose–response function.
    pub fn dose(&self) -> Dose {
        self.dose
    }

    /// Team j's participation if treated; `z_u` is its standardised
    /// follow-up effect (None when the team variance is 0).
    pub fn team<R: Rng + ?Sized>(&self, j: usize, z_u: Option<f64>, rng: &mut R) -> f64 {
        let latent = |rng: &mut R| -> f64 {
            let e: f64 = rng.sample(StandardNormal);
            let r = self.confounding;
            match z_u {
                Some(z) => r * z + (1.0 - r * r).sqrt() * e,
                None => e,
            }
        };
        match &self.team {
            TeamDist::Full => 1.0,
            TeamDist::Fixed(v) => v.get(j).copied().unwrap_or(1.0),
            TeamDist::Beta { a, b } => {
                let p = norm_cdf(latent(rng)).clamp(1e-12, 1.0 - 1e-12);
                inv_beta_reg(*a, *b, p)
            }
            TeamDist::Mixture { high, low, p_high } => {
                let p = norm_cdf(latent(rng));
                if p > 1.0 - p_high {
                    *high
                } else {
                    *low
                }
            }
        }
    }

    /// Participation at copula quantile `p` (Beta and mixture teams; the
    /// draw in [`AdherenceModel::team`] is this at p = Φ(latent)). None for
    /// fixed or full participation, which do not depend on the team effect.
    pub fn team_at(&self, p: f64) -> Option<f64> {
        match &self.team {
            TeamDist::Beta { a, b } => Some(inv_beta_reg(*a, *b, p.clamp(1e-12, 1.0 - 1e-12))),
            TeamDist::Mixture { high, low, p_high } => {
                Some(if p > 1.0 - p_high { *high } else { *low })
            }
            TeamDist::Full | TeamDist::Fixed(_) => None,
        }
    }

    /// A staff member's adherence around the team's value.
    pub fn staff<R: Rng + ?Sized>(&self, team: f64, rng: &mut R) -> f64 {
        match self.staff_concentration {
            Some(s) if team > 0.0 && team < 1.0 => {
                match rand_distr::Beta::new(team * s, (1.0 - team) * s) {
                    Ok(d) => d.sample(rng),
                    Err(_) => team,
                }
            }
            _ => team,
        }
    }

    /// E[g(a_jk) | a_j = a] over staff adherence (quadrature on staff quantiles).
    pub(crate) fn staff_mean_g(&self, a: f64) -> f64 {
        match (self.staff_concentration, self.dose) {
            (_, Dose::Linear) | (None, _) => self.dose.g(a),
            (Some(s), d) if a > 0.0 && a < 1.0 => {
                let n = 60;
                (0..n)
                    .map(|i| {
                        d.g(inv_beta_reg(
                            a * s,
                            (1.0 - a) * s,
                            (i as f64 + 0.5) / n as f64,
                        ))
                    })
                    .sum::<f64>()
                    / n as f64
            }
            (_, d) => d.g(a),
        }
    }

    /// Team participation values with weights, for expectations under ρ = 0.
    pub(crate) fn team_support(&self, teams: usize) -> Vec<(f64, f64)> {
        match &self.team {
            TeamDist::Full => vec![(1.0, 1.0)],
            TeamDist::Fixed(v) => {
                let n = v.len().min(teams).max(1);
                v.iter().take(n).map(|&a| (a, 1.0 / n as f64)).collect()
            }
            TeamDist::Mixture { high, low, p_high } => vec![(*high, *p_high), (*low, 1.0 - p_high)],
            TeamDist::Beta { a, b } => {
                let n = 200;
                (0..n)
                    .map(|i| {
                        (
                            inv_beta_reg(*a, *b, (i as f64 + 0.5) / n as f64),
                            1.0 / n as f64,
                        )
                    })
                    .collect()
            }
        }
    }

    /// E[g(a)] over treated teams and their staff: the ITT effect is δ·E[g].
    pub fn mean_g(&self, teams: usize) -> f64 {
        if self.dose == Dose::Linear {
            // Staff adherence averages to the team's: E[g] = E[a], exactly.
            return self.team_moments(teams).0;
        }
        self.team_support(teams)
            .iter()
            .map(|&(a, w)| w * self.staff_mean_g(a))
            .sum()
    }

    /// Mean and variance of team participation (treated teams).
    pub fn team_moments(&self, teams: usize) -> (f64, f64) {
        if let TeamDist::Beta { a, b } = self.team {
            let t = a + b;
            return (a / t, a * b / (t * t * (t + 1.0)));
        }
        let s = self.team_support(teams);
        let m: f64 = s.iter().map(|&(a, w)| w * a).sum();
        let v: f64 = s.iter().map(|&(a, w)| w * (a - m).powi(2)).sum();
        (m, v)
    }

    /// The causal high-versus-low contrast per unit δ under exogeneity:
    /// E[g | a > cut] − E[g | a ≤ cut], cut = the configured cut or the
    /// median of team participation.
    pub fn high_low_contrast(&self, teams: usize) -> f64 {
        let s = self.team_support(teams);
        let cut = self.cut.unwrap_or_else(|| {
            let mut v: Vec<f64> = s.iter().map(|x| x.0).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                0.5 * (v[n / 2 - 1] + v[n / 2])
            }
        });
        let (mut hi, mut wh, mut lo, mut wl) = (0.0, 0.0, 0.0, 0.0);
        for &(a, w) in &s {
            let g = self.staff_mean_g(a);
            if a > cut {
                hi += w * g;
                wh += w;
            } else {
                lo += w * g;
                wl += w;
            }
        }
        if wh == 0.0 || wl == 0.0 {
            return f64::NAN;
        }
        hi / wh - lo / wl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dose_functions_are_one_at_full_adherence() {
        for d in [Dose::Linear, Dose::Threshold(0.6), Dose::Emax(0.3)] {
            assert!((d.g(1.0) - 1.0).abs() < 1e-15);
            assert_eq!(d.g(0.0), 0.0);
        }
        assert_eq!(Dose::Threshold(0.6).g(0.59), 0.0);
        assert!((Dose::Emax(0.2).g(0.2) - 0.6).abs() < 1e-12);
    }
}
