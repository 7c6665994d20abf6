//! Heap allocations per power replicate in steady state (after 100
//! warm-up replicates), by a counting global allocator: the measure of
//! "a replicate allocates nothing" (issue 11; see the README's Performance).
//!
//! cargo run --release --example replicate_allocations -- [REPS] [METHODS] [CONFIG]
//! e.g. `-- 1000 '["lmm_satterthwaite"]' configs/refocus.toml`

use crtsim::config::Config;
use crtsim::power::{PowerStudy, Workspace};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static CALLS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(n, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() -> Result<(), crtsim::Error> {
    let mut args = std::env::args().skip(1);
    let reps: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let methods = args.next();
    let path = args.next().unwrap_or_else(|| "configs/refocus.toml".into());
    // `default` keeps the config's own analyses.
    let sets: Vec<String> = methods
        .filter(|m| m != "default")
        .map(|m| format!("analysis.methods={m}"))
        .into_iter()
        .collect();
    let study = PowerStudy::new(Config::load(&path, &sets)?, false)?;
    let mut ws = Workspace::default();
    let mut sink = 0.0;
    for rep in 0..100 {
        sink += study.replicate(2011, rep, 0, &mut ws)[0].p;
    }
    let (c0, b0) = (CALLS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    for rep in 100..100 + reps {
        sink += study.replicate(2011, rep, 0, &mut ws)[0].p;
    }
    let (c1, b1) = (CALLS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    println!(
        "{path} {:?}: {:.3} allocations ({} in {reps} replicates) and {:.0} bytes per replicate (checksum {sink:.3})",
        study.methods.iter().map(|m| m.name()).collect::<Vec<_>>(),
        (c1 - c0) as f64 / reps as f64,
        c1 - c0,
        (b1 - b0) as f64 / reps as f64
    );
    Ok(())
}
