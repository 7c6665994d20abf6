//! Silent inconsistencies between the design, the analytic formulas and the
//! analyses (issue 11's bug list), each checked against its right answer.

use crtsim::config::Config;
use crtsim::design::Design;

fn refocus(sets: &[&str]) -> Config {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Config::load(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus.toml"), &sets).unwrap()
}

#[test]
fn ancova_is_decided_by_the_fixed_terms_not_by_a_substring() {
    let cfg = refocus(&[]);
    let d = Design::from_config(&cfg).unwrap();
    let p = |f: &str| crtsim::analytic::power(&cfg, &d, 0.05, false, f);
    let adjusted = p("qpr ~ arm + baseline + site + (1|team)");
    let unadjusted = p("qpr ~ arm + site + (1|team)");
    assert!(adjusted > unadjusted + 0.05, "{adjusted} vs {unadjusted}");
    // A random slope on baseline is no adjustment of the fixed effects (it
    // used to count as one because the formula text contains "baseline").
    assert_eq!(p("qpr ~ arm + site + (baseline|team)"), unadjusted);
}
