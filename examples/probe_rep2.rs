//! Developer probe: profile whole replicates of a config (default REFOCUS),
//! e.g. `probe_rep2 configs/pulsar.toml 'clusters.size={dist="poisson",mean=18}'`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use crtsim::config::Config;
use crtsim::power::{PowerStudy, Workspace};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("configs/refocus.toml");
    let mut sets = vec!["analysis.methods=[\"lmm_satterthwaite\"]".to_string()];
    sets.extend(args.iter().skip(2).cloned());
    let cfg = Config::load(path, &sets).unwrap();
    let study = PowerStudy::new(cfg, false).unwrap();
    let mut buf = Workspace::default();
    let t = std::time::Instant::now();
    for r in 0..20000 {
        std::hint::black_box(study.replicate(1, r, 0, &mut buf));
    }
    println!(
        "{:.1} µs per replicate",
        t.elapsed().as_secs_f64() / 20000.0 * 1e6
    );
}
