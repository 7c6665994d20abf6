//! The analyses as types: `lmm_residual` (the LMM on n − p df, added as one
//! variant of `LmmDf`), and the frame-only path of studies without an LMM.

mod common;

use crtsim::analysis::{Analysis, LmmDf};
use crtsim::power::{PowerStudy, Workspace};
use crtsim::stats::t_quantile;

/// `lmm_residual` tests the LMM's estimate with its own SE on n − p df:
/// estimate and SE equal `lmm_z`'s in every replicate, the df is the number
/// of rows analysed minus the fixed effects, and the CI is t_{n−p}-based.
#[test]
fn lmm_residual_uses_n_minus_p_df() {
    let cfg = common::refocus(&["analysis.methods=[\"lmm_z\", \"lmm_residual\"]"]);
    assert_eq!(
        cfg.analysis_methods(),
        [Analysis::Lmm(LmmDf::Z), Analysis::Lmm(LmmDf::Residual)]
    );
    let study = PowerStudy::new(cfg, false).unwrap();
    let mut ws = Workspace::default();
    for rep in 0..20 {
        let out = study.replicate(2011, rep, 0, &mut ws).to_vec();
        let (z, r) = (out[0], out[1]);
        // qpr ~ arm + baseline + site + (1|team): p = 4; every analysed
        // row has a follow-up (baseline is always measured).
        let n = ws.data.n_followup() as f64;
        assert_eq!(r.df, n - 4.0, "replicate {rep}");
        assert_eq!((r.estimate, r.se), (z.estimate, z.se));
        let crit = t_quantile(0.975, n - 4.0);
        assert!((r.hi - r.lo - 2.0 * crit * r.se).abs() < 1e-9);
        assert!(r.p > z.p, "t on n - p df is (slightly) less liberal than z");
    }
    // Its analytic column is the z test's (n − p is large): 0.679 for REFOCUS.
    let s = common::run_study(&study, 200, 5);
    let (az, ar) = (s.rows[0].analytic, s.rows[1].analytic);
    assert_eq!(az, ar);
    assert!((az - 0.679).abs() < 0.001, "{az}");
    // Not run unless asked for.
    assert!(!common::refocus(&[])
        .analysis_methods()
        .contains(&Analysis::Lmm(LmmDf::Residual)));
}

/// A study whose only analysis is `cluster_t` builds the model frame, not
/// the mixed model; its results are those of the same analysis run beside
/// the LMM (where the frame comes from the model).
#[test]
fn cluster_t_alone_matches_cluster_t_beside_the_lmm() {
    let alone = PowerStudy::new(
        common::refocus(&["analysis.methods=[\"cluster_t\"]"]),
        false,
    )
    .unwrap();
    let beside = PowerStudy::new(
        common::refocus(&["analysis.methods=[\"lmm_satterthwaite\", \"cluster_t\"]"]),
        false,
    )
    .unwrap();
    let (mut w1, mut w2) = (Workspace::default(), Workspace::default());
    for rep in 0..50 {
        let a = alone.replicate(2011, rep, 0, &mut w1)[0];
        let b = beside.replicate(2011, rep, 0, &mut w2)[1];
        assert!(!a.failed);
        assert_eq!(a, b, "replicate {rep}");
        assert_eq!(
            a.df,
            27.0 - 3.0,
            "27 teams; treatment and site at team level"
        );
    }
}
