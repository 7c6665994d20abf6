//! Library API properties of the LMM engine.

use crtsim::lmm::data::DataFrame;
use crtsim::lmm::Model;

/// The vendored REFOCUS-like reference data (a missing fixture fails).
fn crt() -> DataFrame {
    DataFrame::read_csv(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/lme4/data/crt_parallel.csv"
    ))
    .expect("tests/data/lme4/data/crt_parallel.csv")
}

#[test]
fn model_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model>();
    assert_send_sync::<crtsim::lmm::Fit>();
}

#[test]
fn refit_with_new_response_equals_fresh_fit() {
    let data = crt();
    let f = "qpr ~ arm + baseline + site + (1|team)";
    let mut model = Model::new(f, &data, true).unwrap();
    let first = model.fit();
    // A new response: the fitted model's response shifted by team-level noise.
    let y2: Vec<f64> = model
        .frame
        .y
        .iter()
        .enumerate()
        .map(|(i, y)| y + ((i * 7919) % 13) as f64 * 0.3)
        .collect();
    model.set_response(&y2).unwrap();
    let refit = model.fit();
    // Build the same data from scratch with the new response.
    let rows = model.frame.rows.clone();
    let mut qpr = vec![f64::NAN; data.nrows()];
    for (k, &i) in rows.iter().enumerate() {
        qpr[i] = y2[k];
    }
    let mut fresh_data = data.clone();
    fresh_data.set_numeric("qpr", qpr).unwrap();
    let fresh = Model::new(f, &fresh_data, true).unwrap().fit();
    assert!((refit.objective - fresh.objective).abs() < 1e-9);
    for j in 0..refit.beta.len() {
        assert!((refit.beta[j] - fresh.beta[j]).abs() < 1e-7 * (1.0 + fresh.beta[j].abs()));
    }
    assert!(
        (refit.objective - first.objective).abs() > 1e-3,
        "the response did change"
    );
}

#[test]
fn aliased_columns_are_dropped_and_named() {
    let data = crt();
    // `arm:site` plus `arm` and `site` is fine; adding a column equal to
    // another is aliased. Build one: dup = baseline.
    let mut cols = data.columns.clone();
    let mut dup = data.column("baseline").unwrap().clone();
    dup.name = "baseline2".into();
    cols.push(dup);
    let d = DataFrame::from_columns(cols).unwrap();
    let mut m = Model::new("qpr ~ arm + baseline + baseline2 + (1|team)", &d, true).unwrap();
    assert_eq!(m.frame.dropped, vec!["baseline2".to_string()]);
    assert_eq!(m.frame.x_names, vec!["(Intercept)", "arm", "baseline"]);
    let fit = m.fit();
    let tests = crtsim::lmm::inference::coef_tests(&m, &fit);
    let text = crtsim::lmm::report::summary(
        &m,
        &fit,
        &tests,
        crtsim::lmm::report::Intervals::default(),
        None,
    );
    assert!(
        text.contains("rank deficient so dropping 1 column(s): baseline2"),
        "{text}"
    );
}

#[test]
fn interactions_and_no_intercept_follow_r_coding() {
    let data = crt();
    let m = Model::new("qpr ~ arm * site + (1|team)", &data, true).unwrap();
    assert_eq!(
        m.frame.x_names,
        vec!["(Intercept)", "arm", "siteS2", "arm:siteS2"]
    );
    let m = Model::new("qpr ~ 0 + site + arm + (1|team)", &data, true).unwrap();
    assert_eq!(m.frame.x_names, vec!["siteS1", "siteS2", "arm"]);
}

/// Stepped-wedge data from the simulator: two replicates with the same
/// structure (fixed sizes) and one with a different cluster-period size.
fn sw_frames() -> (DataFrame, DataFrame, DataFrame) {
    use crtsim::config::Config;
    use crtsim::rng::replicate_rng;
    use crtsim::simulate::{Dataset, Simulator};
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/pulsar.toml");
    let frame = |over: &[&str], rep: u64| {
        let over: Vec<String> = over.iter().map(|s| s.to_string()).collect();
        let sim = Simulator::new(Config::load(path, &over).unwrap()).unwrap();
        let mut d = Dataset::default();
        sim.simulate_into(&mut replicate_rng(7, rep), &mut d);
        sim.data_frame(&d)
    };
    (
        frame(&[], 1),
        frame(&[], 2),
        frame(&["clusters.size={dist=\"fixed\",mean=11}"], 3),
    )
}

#[test]
fn update_data_equals_a_fresh_model() {
    let (a, b, c) = sw_frames();
    let f = "qpr ~ treat + period + (1|cluster) + (1|cluster:period)";
    let mut model = Model::new(f, &a, true).unwrap();
    model.fit();
    // Same structure (reused sparse analysis), then a different one (rebuilt).
    for data in [&b, &c, &a] {
        model.update_data(data).unwrap();
        let updated = model.fit();
        let fresh = Model::new(f, data, true).unwrap().fit();
        assert_eq!(updated.theta, fresh.theta);
        assert_eq!(updated.beta, fresh.beta);
        assert_eq!(updated.objective, fresh.objective);
        assert_eq!(model.frame.n, data.nrows());
    }
}

#[test]
fn interaction_levels_in_r_order() {
    // R's `a:b` orders levels with a's level varying slowest; with cluster
    // names C1, C10, C11, ... (sorted as text) that is C1:t1, C1:t2, C1:t3,
    // C10:t1, ... — not a sort of the joined names (C10:t1 < C1:t1).
    let (a, _, _) = sw_frames();
    let model = Model::new(
        "qpr ~ treat + period + (1|cluster) + (1|cluster:period)",
        &a,
        true,
    )
    .unwrap();
    let t = &model.frame.terms[0];
    assert_eq!(t.group, "cluster:period");
    let names: Vec<&str> = (0..5).map(|k| t.levels.name(k)).collect();
    assert_eq!(names, ["C1:t1", "C1:t2", "C1:t3", "C10:t1", "C10:t2"]);
}
