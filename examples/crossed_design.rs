//! A generated crossed design for the scaling measurements of
//! benches/crossed_scaling.sh: N rows, each at a uniformly drawn level of
//! factor `a` and of factor `b` (K levels each), with a covariate x and
//! y = 1 + 0.5 x + u_a + v_b + e, u, v ~ N(0, 0.5²), e ~ N(0, 1).
//!
//!   cargo run --release --example crossed_design -- K N SEED > crossed.csv

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use std::io::Write;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("K N SEED: whole numbers"))
        .collect();
    let [k, n, seed] = args[..] else {
        eprintln!("usage: crossed_design K N SEED");
        std::process::exit(2);
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed as u64);
    let re = Normal::new(0.0, 0.5).expect("sd");
    let u: Vec<f64> = (0..k).map(|_| re.sample(&mut rng)).collect();
    let v: Vec<f64> = (0..k).map(|_| re.sample(&mut rng)).collect();
    let out = std::io::stdout();
    let mut w = std::io::BufWriter::new(out.lock());
    writeln!(w, "a,b,x,y").expect("stdout");
    for _ in 0..n {
        let (a, b) = (rng.random_range(0..k), rng.random_range(0..k));
        let x: f64 = rng.random();
        let e: f64 = Normal::new(0.0, 1.0).expect("sd").sample(&mut rng);
        let y = 1.0 + 0.5 * x + u[a] + v[b] + e;
        writeln!(w, "a{a},b{b},{x:.6},{y:.6}").expect("stdout");
    }
}
