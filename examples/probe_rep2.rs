//! Developer probe: profile whole replicates of a config (default REFOCUS) (simulate + REML + Satterthwaite).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use crtsim::config::Config;
use crtsim::power::{PowerStudy, Workspace};
fn main() {
    let cfg = Config::load(
        std::env::args()
            .nth(1)
            .as_deref()
            .unwrap_or("configs/refocus.toml"),
        &["analysis.methods=[\"lmm_satterthwaite\"]".to_string()],
    )
    .unwrap();
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
