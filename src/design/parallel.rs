//! Parallel designs: randomisation of teams to arms (simple, or stratified
//! by site with the treated count split over sites), staff per team, and
//! the splitting rules both designs use.

use super::Design;
use crate::config::{Allocation, StaffSpec};
use rand::Rng;

impl Design {
    /// Randomise teams to arms (1 = treated) into `arms` (resized to the
    /// team count); `idx` is scratch.
    pub fn allocate<R: Rng + ?Sized>(&self, rng: &mut R, arms: &mut Vec<u8>, idx: &mut Vec<usize>) {
        let n = self.teams();
        arms.clear();
        arms.resize(n, 0);
        idx.clear();
        match self.allocation {
            Allocation::Simple => match self.treated {
                Some(t) => {
                    idx.extend(0..n);
                    for &i in partial_shuffle(rng, idx, t as usize) {
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
                    for &i in partial_shuffle(rng, idx, t) {
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
}
