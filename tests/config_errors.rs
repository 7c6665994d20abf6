//! Every invalid value gets an error naming the key and what was expected.

mod common;
use crtsim::config::Config;

fn refocus_err(sets: &[&str]) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus.toml");
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    match Config::load(path, &sets) {
        Ok(_) => panic!("{sets:?} should be rejected"),
        Err(e) => e.to_string(),
    }
}

fn assert_err(sets: &[&str], needles: &[&str]) {
    let msg = refocus_err(sets);
    assert!(!msg.contains('\n'), "one line: {msg}");
    for n in needles {
        assert!(msg.contains(n), "{sets:?}: `{msg}` should mention `{n}`");
    }
}

#[test]
fn icc_out_of_range() {
    assert_err(
        &["outcome.icc=1.2"],
        &["outcome.icc = 1.2: must be in [0, 1)"],
    );
    assert_err(&["outcome.icc=-0.1"], &["outcome.icc = -0.1", "[0, 1)"]);
    assert_err(&["outcome.icc_staff=1"], &["outcome.icc_staff = 1"]);
    assert_err(
        &["outcome.icc=0.6", "outcome.icc_staff=0.4"],
        &["outcome.icc_staff = 0.4", "icc + icc_staff must be < 1"],
    );
}

#[test]
fn autocorrelations_out_of_range() {
    assert_err(
        &["outcome.cac=1.5"],
        &["outcome.cac = 1.5: must be in [-1, 1]"],
    );
    assert_err(
        &["outcome.iac=-1.01"],
        &["outcome.iac = -1.01: must be in [-1, 1]"],
    );
}

#[test]
fn arms_and_teams() {
    assert_err(
        &["clusters.treated=0"],
        &["clusters.treated = 0", "at least 1"],
    );
    assert_err(
        &["clusters.treated=27"],
        &["clusters.treated = 27", "less than clusters.teams"],
    );
    assert_err(&["clusters.treated=30"], &["clusters.treated = 30"]);
    assert_err(
        &["clusters.teams=1", "clusters.site_teams=[1, 0]"],
        &["clusters.teams = 1", "one team per arm"],
    );
    assert_err(
        &["clusters.site_teams=[10, 10]"],
        &["clusters.site_teams", "add up to"],
    );
}

#[test]
fn sizes_sd_and_attrition() {
    assert_err(
        &["outcome.sd=0"],
        &["outcome.sd = 0: must be a finite number in [1e-6, 30]"],
    );
    assert_err(&["outcome.sd=-2"], &["outcome.sd = -2"]);
    assert_err(
        &["clusters.size.mean=0"],
        &["clusters.size.mean = 0: must be a number in [0.1, 100000]"],
    );
    assert_err(&["clusters.size.mean=-5"], &["clusters.size.mean = -5"]);
    assert_err(&["clusters.size.min=0"], &["clusters.size.min = 0"]);
    assert_err(
        &["clusters.size.cv=0.1"],
        &["clusters.size.cv = 0.1", "1/sqrt(mean)"],
    );
    assert_err(
        &["clusters.staff_per_team=0"],
        &["clusters.staff_per_team = 0"],
    );
    assert_err(
        &["attrition.rate=1"],
        &["attrition.rate = 1: must be in [0, 1)"],
    );
    assert_err(&["attrition.rate=-0.1"], &["attrition.rate = -0.1"]);
    assert_err(
        &["attrition.mechanism=mar", "outcome.baseline=false"],
        &["attrition.mechanism", "baseline"],
    );
    assert_err(
        &["outcome.mean=58", "outcome.sd=30"],
        &["outcome.sd = 30", "cannot produce"],
    );
}

#[test]
fn unknown_keys_and_wrong_types() {
    assert_err(
        &["outcome.colour=1"],
        &["outcome.colour", "unknown field `colour`"],
    );
    assert_err(&["bogus.x=1"], &["unknown field `bogus`"]);
    assert_err(&["outcome.icc=high"], &["outcome.icc", "invalid type"]);
    assert_err(&["clusters.teams=2.5"], &["clusters.teams", "invalid type"]);
    assert_err(
        &["clusters.size.dist=gamma"],
        &["clusters.size.dist", "unknown variant `gamma`"],
    );
    assert_err(
        &["outcome.cac=0.8", "outcome.measure=likert"],
        &["outcome.measure"],
    );
    let e = Config::from_toml_str("[trial]\nname = 1\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("trial.name") && e.contains("line 2"), "{e}");
    let e = Config::from_toml_str("[trial]\n[clusters]\nteams = 3\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing field"), "{e}");
    let e = Config::load("/no/such/file.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("/no/such/file.toml"), "{e}");
    let e = Config::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/configs/refocus.toml"),
        &["no_equals_sign".to_string()],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("expected key=value"), "{e}");
}

#[test]
fn overrides_change_values() {
    let c = common::refocus(&[
        "clusters.teams=40",
        "clusters.site_teams=[20, 20]",
        "outcome.icc=0.1",
        "outcome.measure=qpr15_items",
        "clusters.sites=[\"A\", \"B\"]",
        "clusters.size={ dist = \"fixed\", mean = 10 }",
    ]);
    assert_eq!(c.clusters.teams, 40);
    assert_eq!(c.outcome.icc, 0.1);
    assert_eq!(c.clusters.sites, vec!["A", "B"]);
    assert_eq!(c.clusters.size.mean, 10.0);
    assert_eq!(c.outcome.measure, crtsim::config::Measure::Qpr15Items);
}

#[test]
fn given_sizes() {
    let pulsar = |sets: &[&str]| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/pulsar.toml");
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Config::load(path, &sets)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let msg = pulsar(&["clusters.size={dist=\"given\"}"]);
    assert!(
        msg.contains("clusters.size.dist = \"given\": needs clusters.size.per_cluster"),
        "{msg}"
    );
    let msg = pulsar(&["clusters.size={dist=\"given\",per_cluster=[3,4]}"]);
    assert!(msg.contains("clusters.size.per_cluster = 2 sizes: must give one size per cluster (clusters.teams = 14)"), "{msg}");
    let msg = pulsar(&["clusters.size={dist=\"given\",per_cluster_period=[[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2]]}"]);
    assert!(
        msg.contains("row 14 has 2 sizes: every row needs one size per period (3)"),
        "{msg}"
    );
    let msg = pulsar(&["clusters.size={dist=\"given\",per_cluster_period=[[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[1,2,3],[0,0,0]]}"]);
    assert!(
        msg.contains("row 14: no participant in any period"),
        "{msg}"
    );
    let msg = pulsar(&["clusters.size={dist=\"poisson\"}"]);
    assert!(
        msg.contains("clusters.size.mean = (missing): is required"),
        "{msg}"
    );
    let msg = pulsar(&["clusters.size={dist=\"fixed\",mean=4,per_cluster=[1]}"]);
    assert!(
        msg.contains("clusters.size.per_cluster = (given): is only read with dist = \"given\""),
        "{msg}"
    );
    assert_err(
        &["clusters.size={dist=\"given\",per_cluster_period=[[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1],[1]]}"],
        &["clusters.size.per_cluster_period", "cross-sectional stepped-wedge"],
    );
    assert_err(
        &["clusters.size={dist=\"given\",per_cluster=[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,100001]}"],
        &["clusters.size.per_cluster = 100001: (cluster 27) must be in [1, 100000]"],
    );
}
